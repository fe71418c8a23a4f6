import pytest

from semverlite import InvalidVersion, Version


def test_parse():
    v = Version.parse("1.2.3-beta.1+build.5")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)
    assert v.prerelease == ("beta", "1")
    assert v.build == ("build", "5")
    assert str(v) == "1.2.3-beta.1+build.5"


def test_leading_v_is_accepted():
    assert Version.parse("v2.0.0") == Version.parse("2.0.0")


@pytest.mark.parametrize("text", ["1.2", "01.2.3", "1.2.3-", "1.2.3+", "one.two.three"])
def test_invalid(text):
    with pytest.raises(InvalidVersion):
        Version.parse(text)


@pytest.mark.parametrize(
    "lower,higher",
    [
        ("1.9.0", "1.10.0"),
        ("1.0.0-alpha", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-beta", "1.0.0-rc.1"),
    ],
)
def test_ordering(lower, higher):
    assert Version.parse(lower) < Version.parse(higher)


def test_build_metadata_is_ignored_in_comparisons():
    assert Version.parse("1.0.0+a") == Version.parse("1.0.0+b")


def test_bump():
    v = Version.parse("1.2.3-rc.1")
    assert str(v.bump("major")) == "2.0.0"
    assert str(v.bump("minor")) == "1.3.0"
    assert str(v.bump("patch")) == "1.2.4"
