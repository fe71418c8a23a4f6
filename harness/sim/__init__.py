"""A simulated LLM provider on loopback, speaking the real Anthropic and OpenAI wire formats.

`SimServer` serves Anthropic Messages (`/v1/messages`), OpenAI Chat
Completions (`/v1/chat/completions`) and Responses (`/v1/responses`) with
deterministic simulated agents (`PROFILES`, picked by the request's `model`),
injects faults on request and counts every request it receives: the ground
truth tests hold ampbench's ledger against.
"""

from harness.sim.faults import FAULT_KINDS, FaultPlan
from harness.sim.profiles import PROFILES, Profile, register, register_lazy
from harness.sim.server import REPEAT_HEADER, SIMULATED_HEADER, SimServer, shared_server
from harness.sim.view import Reply, ReplyCall, View

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
