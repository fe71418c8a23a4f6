"""Libraries imported without the optional integrations ampbench never uses, and the
versions a manifest records."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import pytest

from harness.results import versions


def _in_fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_cassettes_load_vcrpy_without_the_libraries_it_would_patch() -> None:
    # vcrpy's patch module imports every HTTP library it can patch; ampbench patches none.
    out = _in_fresh_python(
        "import sys, harness.cassettes, harness.recorded\n"
        "print(sorted(m for m in ('aiohttp', 'requests', 'botocore', 'tornado', 'httpx') if m in sys.modules))\n"
        "import vcr.patch\n"
        "print(hasattr(vcr.patch, 'CassettePatcherBuilder'))\n"
    )
    assert out.splitlines() == ["[]", "True"]


@pytest.mark.parametrize("sdk", ["openai:AsyncOpenAI", "anthropic:AsyncAnthropic"])
def test_an_sdk_loads_without_its_aiohttp_transport_and_aiohttp_still_imports(sdk: str) -> None:
    if importlib.util.find_spec("aiohttp") is None:
        pytest.skip("aiohttp is not installed: nothing to leave out")
    out = _in_fresh_python(
        "import sys\n"
        "from harness.clients.base import _import\n"
        f"client = _import({sdk!r})\n"
        "print('aiohttp' in sys.modules, client.__name__)\n"
        "import aiohttp\n"  # left out for the SDK only: anyone else can import it afterwards
        "print(aiohttp.__name__)\n"
    )
    assert out.splitlines() == [f"False {sdk.split(':')[1]}", "aiohttp"]


def test_skipping_marks_only_what_is_not_imported_yet_and_undoes_it() -> None:
    from harness.imports import skipping

    assert "json" in sys.modules
    with skipping(["json", "ampbench_no_such_module_x"]):
        import json  # noqa: F401  (already imported: untouched)

        with pytest.raises(ImportError):
            import ampbench_no_such_module_x  # type: ignore[import-not-found]  # noqa: F401
        assert sys.modules["ampbench_no_such_module_x"] is None
    assert "ampbench_no_such_module_x" not in sys.modules


def test_manifest_versions_are_the_packaging_metadata_versions() -> None:
    recorded = versions()
    for dist, version in recorded.items():
        if dist == "python":
            continue
        try:
            expected = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            expected = "missing"
        assert version == expected, dist
