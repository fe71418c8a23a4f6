from wrapline import hanging, indent


def test_indent_skips_blank_lines():
    assert indent("a\n\nb", "> ") == "> a\n\n> b"


def test_hanging_indent():
    text = "install the package and run the tests"
    assert hanging(text, 16) == "- install the\n  package and\n  run the tests"
