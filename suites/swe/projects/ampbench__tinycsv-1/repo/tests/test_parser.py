import pytest

from tinycsv import ParseError, parse, parse_line


def test_simple_fields():
    assert parse_line("a,b,c") == ["a", "b", "c"]


def test_empty_line_has_no_fields():
    assert parse_line("") == []


def test_empty_field_in_the_middle():
    assert parse_line("a,,c") == ["a", "", "c"]


def test_quoted_delimiter():
    assert parse_line('a,"b,c",d') == ["a", "b,c", "d"]


def test_doubled_quotes():
    assert parse_line('"say ""hi""",x') == ['say "hi"', "x"]


def test_other_delimiter():
    assert parse_line("a;b", delimiter=";") == ["a", "b"]


def test_unterminated_quote():
    with pytest.raises(ParseError):
        parse_line('a,"b')


def test_quote_inside_unquoted_field():
    with pytest.raises(ParseError):
        parse_line('ab"c')


def test_parse_skips_blank_lines():
    assert parse("a,b\n\n c,d \n") == [["a", "b"], [" c", "d "]]
