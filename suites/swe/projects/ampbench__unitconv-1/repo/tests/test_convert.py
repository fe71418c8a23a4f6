import pytest

from unitconv import IncompatibleUnits, UnknownUnit, convert


def test_length():
    assert convert(5, "km", "m") == pytest.approx(5000)
    assert convert(1, "mi", "km") == pytest.approx(1.609344)
    assert convert(12, "in", "ft") == pytest.approx(1)


def test_mass():
    assert convert(1, "lb", "g") == pytest.approx(453.59237)


def test_time():
    assert convert(90, "min", "h") == pytest.approx(1.5)


def test_identity():
    assert convert(-40, "C", "C") == pytest.approx(-40)
    assert convert(300, "K", "K") == pytest.approx(300)


def test_incompatible_units():
    with pytest.raises(IncompatibleUnits):
        convert(1, "m", "s")


def test_unknown_unit():
    with pytest.raises(UnknownUnit):
        convert(1, "parsec", "m")
