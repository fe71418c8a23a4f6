from pathguard import sanitize_filename


def test_replaces_unsafe_characters():
    assert sanitize_filename("my:report?.pdf") == "my_report_.pdf"


def test_strips_dots_and_spaces_at_the_ends():
    assert sanitize_filename("  notes.txt. ") == "notes.txt"


def test_empty_and_dot_names():
    assert sanitize_filename("") == "_"
    assert sanitize_filename("..") == "_"


def test_reserved_windows_names():
    assert sanitize_filename("con.txt") == "_con.txt"


def test_max_length():
    assert sanitize_filename("a" * 300) == "a" * 255
