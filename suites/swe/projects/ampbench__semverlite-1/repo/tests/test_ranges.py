from semverlite import max_satisfying, satisfies


def test_comparators():
    assert satisfies("1.5.0", ">=1.2.0,<2.0.0")
    assert not satisfies("2.0.0", ">=1.2.0,<2.0.0")
    assert satisfies("1.2.0", "=1.2.0")


def test_caret():
    assert satisfies("1.9.9", "^1.2.0")
    assert not satisfies("2.0.0", "^1.2.0")
    assert not satisfies("0.3.0", "^0.2.1")


def test_tilde():
    assert satisfies("1.2.9", "~1.2.0")
    assert not satisfies("1.3.0", "~1.2.0")


def test_max_satisfying():
    assert max_satisfying(["1.2.0", "1.10.1", "1.9.0", "2.0.0"], "^1.0.0") == "1.10.1"
    assert max_satisfying(["3.0.0"], "<1.0.0") is None
