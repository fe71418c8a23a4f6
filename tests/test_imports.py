"""Libraries imported without the optional integrations ampbench never uses, and the
versions a manifest records."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

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


def test_collector_paused_restores_what_was_there() -> None:
    import gc

    from harness.imports import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # someone else's choice is kept
    finally:
        gc.enable()


def test_heap_frozen_unfreezes_its_own_and_leaves_someone_elses() -> None:
    import gc

    from harness.imports import heap_frozen

    assert gc.get_freeze_count() == 0
    with heap_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()  # e.g. a parent about to fork
    try:
        frozen = gc.get_freeze_count()
        with heap_frozen():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_run_freezes_its_sdk_for_the_task_runs_and_unfreezes_after() -> None:
    # Full collections during the task runs must not walk the SDK's ~650 pydantic models:
    # the SDK is imported before the heap is frozen. Afterwards nothing stays frozen.
    out = _in_fresh_python(
        "import gc, sys, tempfile\n"
        "from harness.clients import base\n"
        "from harness.runner import RunConfig, Runner\n"
        "seen = []\n"
        "send = base.BaseClient._send\n"
        "async def spy(self, *args):\n"
        "    turn = await send(self, *args)\n"
        "    if not seen:\n"
        "        collected = {id(o) for g in (0, 1, 2) for o in gc.get_objects(generation=g)}\n"
        "        sdk = vars(sys.modules['openai'])\n"
        "        seen.append((gc.get_freeze_count() > 0, id(sdk) in collected))\n"
        "    return turn\n"
        "base.BaseClient._send = spy\n"
        "out = tempfile.mkdtemp() + '/run'\n"
        "Runner(RunConfig(suite='snitch', models=['sim:terse'], out=out), progress=False).run()\n"
        "print(seen, gc.get_freeze_count())\n"
    )
    assert out.splitlines()[-1] == "[(True, False)] 0"


def _package(root: Path, init: str, **modules: str) -> None:
    pkg = root / "lazypkg_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(init)
    for name, text in modules.items():
        (pkg / f"{name}.py").write_text(text)


@pytest.fixture
def fresh_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "lazypkg_demo" or m.startswith("lazypkg_demo.")]:
        del sys.modules[name]


def test_a_reexporting_package_loads_each_name_on_first_use(fresh_demo: Path) -> None:
    from harness.imports import lazy_packages

    _package(
        fresh_demo,
        '"""Re-exports."""\nfrom __future__ import annotations\nfrom .a import A as A, B\nfrom . import c\nfrom .f import f as f\n',
        a="A = 'a'\nB = 'b'\n",
        c="C = 'c'\n",
        f="def f():\n    return 'the function'\n",
    )
    with lazy_packages(["lazypkg_demo"]):
        import lazypkg_demo
    assert "lazypkg_demo.a" not in sys.modules and "lazypkg_demo.c" not in sys.modules
    assert {"A", "B", "c", "f"} <= set(dir(lazypkg_demo))
    assert lazypkg_demo.A == "a" and "lazypkg_demo.a" in sys.modules
    from lazypkg_demo import B

    assert B == "b"
    assert lazypkg_demo.c.C == "c"
    import lazypkg_demo.f  # the submodule: the package's `f` stays the function, as an eager import has it

    assert lazypkg_demo.f() == "the function"
    assert not any(type(f).__name__ == "_LazyPackageFinder" for f in sys.meta_path)


@pytest.mark.parametrize(
    "init",
    [
        "from .a import A as A\nX = 1\n",  # a statement of its own
        "from .a import A as Renamed\n",  # a renaming
        "from .a import *\n",
    ],
)
def test_any_other_package_init_runs_as_usual(fresh_demo: Path, init: str) -> None:
    from harness.imports import lazy_packages

    _package(fresh_demo, init, a="A = 'a'\n")
    with lazy_packages(["lazypkg_demo"]):
        import lazypkg_demo  # noqa: F401
    assert "lazypkg_demo.a" in sys.modules


@pytest.mark.parametrize("package", ["openai.types", "openai.types.chat", "anthropic.types"])
def test_a_lazily_loaded_sdk_package_has_the_same_names_as_an_eager_one(package: str) -> None:
    # Every name the package's __init__ binds resolves to the same class of the same module.
    # An eager import also binds each submodule it ran as an attribute; a lazy one, those it ran.
    listing = (
        "import importlib, json, types\n"
        f"package = importlib.import_module({package!r})\n"
        "print(json.dumps({n: 'module' if isinstance(v, types.ModuleType) else\n"
        '                  f\'{getattr(v, "__module__", "")}:{getattr(v, "__qualname__", repr(v))}\'\n'
        "                  for n in dir(package) if not n.startswith('_') for v in [getattr(package, n)]}))\n"
    )
    sdk = package.split(".")[0]
    eager = json.loads(_in_fresh_python(listing))
    lazy = json.loads(
        _in_fresh_python(
            f"from harness.clients.base import _import\n_import('{sdk}:__version__')\n" + listing
        )
    )
    exported = {name: value for name, value in eager.items() if value != "module"}
    assert len(exported) > 10
    assert {name: lazy.get(name) for name in exported} == exported
    assert {name for name, value in lazy.items() if value == "module"} <= set(eager)
