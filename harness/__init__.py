"""ampbench: measure exchange amplification of agent runs.

The public API, imported lazily so that `import harness` stays cheap:

    from harness import load, RunConfig, Runner, parse_spec, make_client, ClientSettings
    run = load("results/<run_id>")          # DataFrames of one run
    Runner(RunConfig(suite="snitch", models=["sim:terse"])).run()
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "harness.results",
    "RunData": "harness.results",
    "RunConfig": "harness.runner",
    "Runner": "harness.runner",
    "parse_spec": "harness.clients",
    "make_client": "harness.clients",
    "ClientSettings": "harness.clients",
    "ModelSpec": "harness.clients",
    "Task": "harness.tasks",
    "Limits": "harness.tasks",
    "Grade": "harness.tasks",
    "run_task": "harness.loop",
    "load_runs": "harness.compare",
    "compare": "harness.compare",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
