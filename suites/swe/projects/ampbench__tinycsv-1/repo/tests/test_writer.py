from tinycsv import format_row, parse_line


def test_plain():
    assert format_row(["a", "b"]) == "a,b"


def test_quotes_delimiter_and_quote():
    assert format_row(["b,c", 'say "hi"']) == '"b,c","say ""hi"""'


def test_none_and_numbers():
    assert format_row([1, None, 2.5]) == '1,"",2.5'


def test_round_trip():
    row = ["x", "y,z", '"q"', "", "end"]
    assert parse_line(format_row(row)) == row
