from moneybag import Money, format_money


def test_format_with_grouping():
    assert format_money(Money("1234567.5", "USD")) == "$1,234,567.50"


def test_format_without_grouping():
    assert format_money(Money("1234.5", "GBP"), grouping=False) == "£1234.50"


def test_format_negative():
    assert format_money(Money("-3", "EUR")) == "-€3.00"


def test_format_multi_character_symbol():
    assert format_money(Money("9.9", "CHF")) == "CHF 9.90"
