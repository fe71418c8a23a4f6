import pytest

from memocache import CacheInfo, memoize


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_caches_by_positional_arguments():
    calls = []

    @memoize()
    def square(x):
        calls.append(x)
        return x * x

    assert square(3) == 9
    assert square(3) == 9
    assert square(4) == 16
    assert calls == [3, 4]
    assert square.cache_info() == CacheInfo(hits=1, misses=2, size=2)


def test_ttl_expires_entries():
    clock = FakeClock()
    calls = []

    @memoize(ttl=10, clock=clock)
    def load(name):
        calls.append(name)
        return name.upper()

    load("a")
    clock.now = 9.9
    load("a")
    clock.now = 10.0
    load("a")
    assert calls == ["a", "a"]


def test_cache_clear():
    @memoize()
    def ident(x):
        return x

    ident(1)
    ident.cache_clear()
    assert ident.cache_info() == CacheInfo(0, 0, 0)


def test_unhashable_arguments_raise():
    @memoize()
    def total(items):
        return sum(items)

    with pytest.raises(TypeError):
        total([1, 2])


def test_rejects_non_positive_ttl():
    with pytest.raises(ValueError):
        memoize(ttl=0)


def test_keeps_function_metadata():
    @memoize()
    def documented():
        """Docs."""

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Docs."
