import os

import pytest

from pathguard import UnsafePathError, safe_join

ROOT = os.path.abspath("/srv/data")


def test_simple_join():
    assert safe_join(ROOT, "a", "b.txt") == os.path.join(ROOT, "a", "b.txt")


def test_normalises_the_result():
    assert safe_join(ROOT, "./a//b/") == os.path.join(ROOT, "a", "b")


def test_parent_segments_that_stay_inside_are_allowed():
    assert safe_join(ROOT, "a/../b") == os.path.join(ROOT, "b")
    assert safe_join(ROOT, "a/b", "../c") == os.path.join(ROOT, "a", "c")


def test_root_itself_is_allowed():
    assert safe_join(ROOT, ".") == ROOT
    assert safe_join(ROOT, "a/..") == ROOT


def test_climbing_out_is_rejected():
    with pytest.raises(UnsafePathError):
        safe_join(ROOT, "../../etc/passwd")


def test_absolute_part_is_rejected():
    with pytest.raises(UnsafePathError):
        safe_join(ROOT, "/etc/passwd")


def test_nul_byte_is_rejected():
    with pytest.raises(UnsafePathError):
        safe_join(ROOT, "a\x00b")


def test_needs_a_part():
    with pytest.raises(ValueError):
        safe_join(ROOT)
