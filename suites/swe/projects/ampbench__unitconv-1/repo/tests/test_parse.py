import pytest

from unitconv import convert_text, parse_quantity


def test_parse_quantity():
    assert parse_quantity("12.5 km") == (12.5, "km")
    assert parse_quantity("-3e2m") == (-300.0, "m")


def test_parse_quantity_rejects_garbage():
    with pytest.raises(ValueError):
        parse_quantity("twelve km")


def test_convert_text():
    assert convert_text("90 min in h") == "1.5 h"
    assert convert_text("1 mi to m") == "1609.344 m"


def test_convert_text_needs_a_target():
    with pytest.raises(ValueError):
        convert_text("5 km")
