"""A simulated LLM provider on loopback, speaking the real Anthropic and OpenAI wire formats.

`SimServer` serves Anthropic Messages (`/v1/messages`), OpenAI Chat
Completions (`/v1/chat/completions`) and Responses (`/v1/responses`) with
deterministic simulated agents (`PROFILES`, picked by the request's `model`),
injects faults on request and counts every request it receives: the ground
truth tests hold ampbench's ledger against.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.sim.faults import FAULT_KINDS, FaultPlan
    from harness.sim.profiles import PROFILES, Profile, register, register_lazy
    from harness.sim.server import REPEAT_HEADER, SIMULATED_HEADER, SimServer, shared_server
    from harness.sim.view import Reply, ReplyCall, View

# Imported on first use: a run against `sim:` models looks up a profile name without
# importing the server and its wire formats (and a --sim-url run never starts one).
_EXPORTS = {
    "FAULT_KINDS": "faults",
    "FaultPlan": "faults",
    "PROFILES": "profiles",
    "Profile": "profiles",
    "register": "profiles",
    "register_lazy": "profiles",
    "REPEAT_HEADER": "server",
    "SIMULATED_HEADER": "server",
    "SimServer": "server",
    "shared_server": "server",
    "Reply": "view",
    "ReplyCall": "view",
    "View": "view",
}

__all__ = [
    "FAULT_KINDS",
    "PROFILES",
    "REPEAT_HEADER",
    "SIMULATED_HEADER",
    "FaultPlan",
    "Profile",
    "Reply",
    "ReplyCall",
    "SimServer",
    "View",
    "register",
    "register_lazy",
    "shared_server",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(f"harness.sim.{module}"), name)
