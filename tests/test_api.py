"""The curated public API of `harness` resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import harness


def test_every_exported_name_resolves():
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    with pytest.raises(AttributeError):
        _ = harness.no_such_thing


def test_import_is_cheap():
    # Nothing heavy happens at import time: no SDK, no pandas.
    code = "import sys, harness; print(any(m in sys.modules for m in ('pandas', 'anthropic', 'openai')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
