"""Importing libraries cheaply: without the optional integrations they load and ampbench
never uses, without the type modules it never uses, and without the cyclic collector
walking what they build.

Some libraries import every optional backend that happens to be installed, at import
time: vcrpy's patch module imports aiohttp, requests, botocore, tornado and httpx to be
ready to patch them (0.2 s), and the openai and anthropic SDKs import their aiohttp
transport (0.1 s and two TLS contexts). ampbench uses vcrpy's cassettes without its
patching, and hands the SDKs its own httpx2 client. `skipping` makes those modules look
not installed while such a library is imported, so it takes the path it already has for
that case; afterwards they import normally for anyone who wants them.

The SDKs' `types` packages only re-export their submodules' classes, and import all of
them: `import openai` ran 535 modules (~650 pydantic models, 0.30 s CPU) for the dozen
types a chat client needs. `lazy_packages` loads such a package with lazy_loader's
attributes instead, so that each name imports its submodule on first use: 129 modules,
0.06 s.

What an import builds (modules, classes, the SDKs' ~650 pydantic models) lives as long as
the process, yet the cyclic collector walks it again and again: during the imports, and
in every full collection of the run after them. Measured on a 384-exchange run, the
collector took ~0.14 s of ~1.5 s CPU; `collector_paused` around the big imports and
`heap_frozen` around a run take that to ~0.05 s.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# What vcrpy's patch module tries to import. httpx2 is not here: ampbench itself uses it.
VCR_PATCH_TARGETS = (
    "aiohttp",
    "botocore",
    "requests",
    "httplib2",
    "tornado",
    "httpx",
    "httpx_curl_cffi",
    "pyreqwest",
)
SDK_AIOHTTP_TRANSPORTS = ("openai._vendor.httpx_aiohttp", "anthropic._vendor.httpx_aiohttp")
SDK_TYPE_PACKAGES = ("openai.types", "anthropic.types")


@contextlib.contextmanager
def skipping(modules: Iterable[str]) -> Iterator[None]:
    """Within the block, `import` of any of `modules` not imported yet raises ImportError."""
    marked = [name for name in modules if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not found"
    try:
        yield
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection within the block (reference counting still frees everything else)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """Within the block, collections skip every object that existed when it began.

    A no-op when something else froze objects already (`gc.freeze` before a fork, say): the
    permanent generation is theirs, and unfreezing it at the end would undo their work.
    Otherwise everything is unfrozen at the end, so that garbage that happened to exist at
    the start is collected later, not kept for the life of the process.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def lazy_packages(prefixes: Iterable[str]) -> Iterator[None]:
    """Within the block, a package at or under `prefixes` whose `__init__` only re-exports
    names of its submodules (`from .x import A as A`, `from . import x`) binds them lazily.

    Any other `__init__` (another statement, a renaming `as`, a star import) runs as usual,
    and so does every package imported after the block.
    """
    finder = _LazyPackageFinder(tuple(prefixes))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


class _LazyPackageFinder(importlib.abc.MetaPathFinder):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if not any(fullname == p or fullname.startswith(p + ".") for p in self.prefixes):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.submodule_search_locations or not spec.has_location or not spec.origin:
            return None  # not a package on disk: the usual finders take it
        exports = _reexports(Path(spec.origin))
        if exports is None:
            return None
        spec.loader = _LazyPackageLoader(exports)
        return spec


class _LazyPackageLoader(importlib.abc.Loader):
    def __init__(self, exports: _Exports) -> None:
        self.exports = exports

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        import __future__

        import lazy_loader

        for feature in self.exports.features:  # bound by `from __future__ import ...`, as when run
            setattr(module, feature, getattr(__future__, feature))
        getattr_, _, names = lazy_loader.attach(
            module.__name__, self.exports.submodules, self.exports.attributes
        )
        module.__getattr__ = getattr_  # type: ignore[method-assign]
        # `from package import *` loads every name, as it would have found them all bound.
        module.__all__ = names
        module.__dir__ = lambda: sorted(set(vars(module)) | set(names))  # type: ignore[method-assign]


@dataclass
class _Exports:
    features: list[str] = field(default_factory=list)
    submodules: list[str] = field(default_factory=list)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    """{submodule: names it exports}"""


def _reexports(init: Path) -> _Exports | None:
    """What `init` binds, when it does nothing but re-export its submodules; else None."""
    try:
        tree = ast.parse(init.read_bytes(), str(init))
    except (OSError, SyntaxError, ValueError):
        return None
    exports = _Exports()
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            exports.features += [alias.name for alias in node.names]
            continue
        if not (isinstance(node, ast.ImportFrom) and node.level == 1):
            return None
        for alias in node.names:
            if alias.name == "*" or (alias.asname or alias.name) != alias.name:
                return None
            if node.module is None:
                exports.submodules.append(alias.name)
            else:
                exports.attributes.setdefault(node.module, []).append(alias.name)
    return exports
