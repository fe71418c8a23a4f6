import pytest

from wrapline import fill, wrap


def test_short_text_is_one_line():
    assert wrap("hello world", 40) == ["hello world"]


def test_wraps_between_words():
    assert wrap("the quick brown fox jumps", 10) == ["the quick", "brown fox", "jumps"]


def test_collapses_whitespace_and_newlines():
    assert wrap("a  b\n\nc", 40) == ["a b c"]


def test_long_word_gets_its_own_line():
    assert wrap("see https://example.com/a/very/long/path now", 12) == [
        "see",
        "https://example.com/a/very/long/path",
        "now",
    ]


def test_empty_text():
    assert wrap("   ", 10) == []


def test_rejects_zero_width():
    with pytest.raises(ValueError):
        wrap("x", 0)


def test_fill():
    assert fill("one two three", 8) == "one two\nthree"
