"""Importing libraries without the optional integrations they load and ampbench never uses.

Some libraries import every optional backend that happens to be installed, at import
time: vcrpy's patch module imports aiohttp, requests, botocore, tornado and httpx to be
ready to patch them (0.2 s), and the openai and anthropic SDKs import their aiohttp
transport (0.1 s and two TLS contexts). ampbench uses vcrpy's cassettes without its
patching, and hands the SDKs its own httpx2 client. `skipping` makes those modules look
not installed while such a library is imported, so it takes the path it already has for
that case; afterwards they import normally for anyone who wants them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator

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
