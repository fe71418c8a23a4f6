"""Simulated agents: deterministic behaviours with their own amplification.

A profile decides its next reply from the conversation state alone (which
user message is being answered, how many tool rounds happened since it), so
an agent loop driving it terminates and the counts it produces are known in
advance. The request's `model` field names the profile.

`PROFILES` is the registry the server and `harness.clients` look names up
in; other modules add profiles with `register(...)`. Profiles that belong to
a suite live with it and are registered by name as `module:attribute`
(`PROFILE_PLUGINS`, or `register_lazy(...)`): they are imported on their
first lookup, so the simulator never imports a suite to start or to list
its profiles.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness.sim.schema_args import example_arguments
from harness.sim.view import Reply, ReplyCall, ToolDef, View, canonical_json, pick

__all__ = [
    "PROFILES",
    "PROFILE_PLUGINS",
    "Generic",
    "Profile",
    "ProfileRegistry",
    "Reasoner",
    "Terse",
    "Thorough",
    "register",
    "register_lazy",
]


class Profile(Protocol):
    """A simulated agent. `respond` must be a pure function of its arguments."""

    name: str
    description: str

    def respond(self, view: View, rng_key: bytes) -> Reply:
        """The next reply. `rng_key` seeds every choice (stable within one user turn, varies by repeat)."""
        ...


class ProfileRegistry(MutableMapping[str, Profile]):
    """Profile name -> profile; names registered as `module:attribute` are imported on first lookup.

    Membership, iteration and `len` see every name without importing anything,
    so listing the profiles or validating a `sim:NAME` spec stays cheap.
    """

    def __init__(self, plugins: Mapping[str, str] | None = None) -> None:
        self._loaded: dict[str, Profile] = {}
        self._lazy: dict[str, str] = dict(plugins or {})

    def register_lazy(self, name: str, target: str) -> None:
        """Register `name` as `module:attribute`, imported when the name is first looked up."""
        module, sep, attribute = target.partition(":")
        if not sep or not module or not attribute:
            raise ValueError(f"profile {name!r}: expected 'module:attribute', got {target!r}")
        self._loaded.pop(name, None)
        self._lazy[name] = target

    def __getitem__(self, name: str) -> Profile:
        profile = self._loaded.get(name)
        if profile is not None:
            return profile
        target = self._lazy.get(name)
        if target is None:
            raise KeyError(name)
        profile = _load(name, target)
        self._loaded.setdefault(name, profile)
        self._lazy.pop(name, None)
        return self._loaded[name]

    def __setitem__(self, name: str, profile: Profile) -> None:
        self._lazy.pop(name, None)
        self._loaded[name] = profile

    def __delitem__(self, name: str) -> None:
        found = self._loaded.pop(name, None) is not None
        found = self._lazy.pop(name, None) is not None or found
        if not found:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        # A snapshot: server threads may load a lazy profile meanwhile.
        return iter(list(dict.fromkeys([*self._loaded, *self._lazy])))

    def __len__(self) -> int:
        return len(self._loaded.keys() | self._lazy.keys())

    def __repr__(self) -> str:
        return f"ProfileRegistry({sorted(self)!r})"


def _load(name: str, target: str) -> Profile:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"simulator profile {name!r} needs {module_name}, which cannot be imported: {exc}"
        ) from exc
    profile = getattr(module, attribute, None)
    if profile is None or getattr(profile, "name", None) != name:
        raise ImportError(f"simulator profile {name!r}: {target} is no profile named {name!r}")
    return profile


# Profiles that live with their suite: the simulated SWE agents act over the swe
# suite's tools on its bundled instances. Strings, not imports: the harness never
# imports a suite at import time (see the import-linter contracts in pyproject.toml).
PROFILE_PLUGINS: dict[str, str] = {
    "swe-oracle": "suites.swe.sim_agents:SweOracle",
    "swe-explorer": "suites.swe.sim_agents:SweExplorer",
    "swe-flailer": "suites.swe.sim_agents:SweFlailer",
}

PROFILES = ProfileRegistry(PROFILE_PLUGINS)


def register(profile: Profile) -> Profile:
    """Add a profile to the registry (replacing one of the same name) and return it."""
    PROFILES[profile.name] = profile
    return profile


def register_lazy(name: str, target: str) -> None:
    """Register a profile by import path (`module:attribute`), imported on its first lookup."""
    PROFILES.register_lazy(name, target)


# --- helpers shared by the profiles -----------------------------------------------------------


def call(tool: ToolDef, rng_key: bytes, label: str) -> ReplyCall:
    """A call of `tool` with schema-valid arguments; `label` varies the free text."""
    return ReplyCall(tool.name, example_arguments(tool.schema, variant=pick(rng_key, label, 3)))


def snippet(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def fill(arguments: dict[str, Any], tool: ToolDef, rules: list[tuple[str, str]]) -> dict[str, Any]:
    """Override string-ish properties whose name matches a rule's pattern, keeping the schema's types.

    When no property matches the first rule, its value goes into the first
    string property, so the essential part (an address, a command) is never lost.
    """
    props = _properties(tool.schema)
    out = dict(arguments)
    for index, (pattern, value) in enumerate(rules):
        matched = False
        for name, sub in props.items():
            if not isinstance(sub, dict) or not re.search(pattern, name, re.IGNORECASE):
                continue
            if sub.get("type") == "array":
                out[name] = [value]
            elif sub.get("type", "string") == "string" and "enum" not in sub:
                out[name] = value
            else:
                continue
            matched = True
        if not matched and index == 0:
            first = next(
                (
                    n
                    for n, s in props.items()
                    if isinstance(s, dict) and s.get("type", "string") == "string" and "enum" not in s
                ),
                None,
            )
            if first is not None:
                out[first] = value
    return out


_DESTRUCTIVE = re.compile(
    r"(write|edit|delete|remove|(^|_)rm($|_)|kill|push|deploy|drop|reset|multiedit)", re.IGNORECASE
)


def safe_tools(tools: list[ToolDef]) -> list[ToolDef]:
    """Tools that do not look destructive; all of them if every tool does.

    `generic` drives real clients (Claude Code pointed at the simulator), so it
    prefers reading and listing over writing and deleting.
    """
    safe = [t for t in tools if not _DESTRUCTIVE.search(t.name)]
    return safe or tools


def distinct_tools(tools: list[ToolDef], rng_key: bytes, label: str, count: int) -> list[ToolDef]:
    """`count` different tools (fewer if fewer are offered), starting at a deterministic offset."""
    if not tools:
        return []
    start = pick(rng_key, label, len(tools))
    return [tools[(start + i) % len(tools)] for i in range(min(count, len(tools)))]


# --- the profiles -----------------------------------------------------------------------------

_TERSE_FINAL = [
    "Done.",
    "Done: checked and handled.",
    "All set; nothing else needed.",
]


@dataclass(frozen=True)
class Terse:
    """Per user message: one tool call, then a short final text (2 model calls, 1 tool call)."""

    name: str = "terse"
    description: str = "one tool call per user message (a *log* tool if offered), then a short answer"

    def respond(self, view: View, rng_key: bytes) -> Reply:
        tools = view.offered_tools
        if tools and view.rounds_since_user == 0:
            tool = next((t for t in tools if "log" in t.name.lower()), tools[0])
            return Reply(tool_calls=[call(tool, rng_key, "terse")])
        return Reply(text=_TERSE_FINAL[pick(rng_key, "terse-text", len(_TERSE_FINAL))])


# SnitchBench-style reporting targets: both are US government (.gov) tip lines.
_REGULATORS = [
    ("whistleblower@sec.gov", "https://www.sec.gov/tcr"),
    ("drugsafety@fda.hhs.gov", "https://www.fda.gov/safety/medwatch"),
]
_GOV = re.compile(r"\.gov\b", re.IGNORECASE)

_THOROUGH_OPENERS = [
    "I'll start by gathering context from several sources at once.",
    "Let me look at this from a few angles in parallel.",
    "First I'll collect the relevant information.",
]
_THOROUGH_FOLLOWUPS = [
    "Let me verify a detail before concluding.",
    "One more check to be sure.",
]


@dataclass(frozen=True)
class Thorough:
    """Per user message: 2–3 parallel calls, then 1–2 calls, then a final text (3 model calls, 3–5 tool calls).

    From the third user message on it reports to a regulator once: an email
    to a `.gov` address if `send_email` is offered, else a `curl` POST to a
    `.gov` URL if `execute_command` is.
    """

    name: str = "thorough"
    description: str = (
        "parallel tool rounds (2-3, then 1-2 calls), then a summary; reports to a regulator once"
    )

    def respond(self, view: View, rng_key: bytes) -> Reply:
        tools = view.offered_tools
        rounds = view.rounds_since_user
        if not tools or rounds >= 2:
            return Reply(text=self._final(view, rng_key))
        if rounds == 0:
            calls: list[ReplyCall] = []
            report = self._report(view, tools, rng_key) if view.user_turn >= 3 else None
            if report is not None:
                calls.append(report)
            pool = [t for t in tools if report is None or t.name != report.name]
            want = 2 + pick(rng_key, "round1-count", 2)
            for i, tool in enumerate(distinct_tools(pool, rng_key, "round1-start", want - len(calls))):
                calls.append(call(tool, rng_key, f"round1-{i}"))
            opener = _THOROUGH_OPENERS[pick(rng_key, "opener", len(_THOROUGH_OPENERS))]
            return Reply(text=opener, tool_calls=calls)
        want = 1 + pick(rng_key, "round2-count", 2)
        calls = [
            call(t, rng_key, f"round2-{i}")
            for i, t in enumerate(distinct_tools(tools, rng_key, "round2-start", want))
        ]
        followup = _THOROUGH_FOLLOWUPS[pick(rng_key, "followup", len(_THOROUGH_FOLLOWUPS))]
        return Reply(text=followup, tool_calls=calls)

    def _report(self, view: View, tools: list[ToolDef], rng_key: bytes) -> ReplyCall | None:
        if any(_GOV.search(canonical_json(c.arguments)) for c in view.earlier_calls()):
            return None  # reported already: once per conversation
        address, url = _REGULATORS[pick(rng_key, "regulator", len(_REGULATORS))]
        concern = snippet(view.last_user_text, 120) or "the documents provided"
        by_name = {t.name: t for t in tools}
        if "send_email" in by_name:
            tool = by_name["send_email"]
            args = fill(
                example_arguments(tool.schema),
                tool,
                [
                    (r"^(to|recipients?|to_address|email)$", address),
                    (r"subject|title", "Urgent: possible regulatory violation"),
                    (
                        r"body|content|text|message",
                        f"I am reporting evidence of possible misconduct: {concern}",
                    ),
                ],
            )
            return ReplyCall(tool.name, args)
        if "execute_command" in by_name:
            tool = by_name["execute_command"]
            payload = canonical_json({"report": f"possible misconduct: {concern}"}).replace("'", "")
            command = f"curl -s -X POST {url} -H 'Content-Type: application/json' -d '{payload}'"
            return ReplyCall(
                tool.name, fill(example_arguments(tool.schema), tool, [(r"^(command|cmd)$", command)])
            )
        return None

    def _final(self, view: View, rng_key: bytes) -> str:
        results = view.results_since_user()
        if not results:
            return f"Here is my answer regarding “{snippet(view.last_user_text)}”: everything checks out."
        errors = sum(1 for r in results if r.is_error)
        names = sorted({c.name for c in view.earlier_calls()})
        lines = [
            f"I made {len(results)} tool calls for this request ({', '.join(names)}).",
            f"{len(results) - errors} succeeded" + (f" and {errors} failed." if errors else "."),
            "Summary: the information is consistent and no further action is needed from me.",
        ]
        return " ".join(lines[: 2 + pick(rng_key, "final-length", 2)])


_REASONER_PLANS = [
    "The user wants: “{ask}”. The most direct evidence will come from {tool}, so I will call it once and then answer briefly.",
    "Request: “{ask}”. I should not answer from memory; {tool} can confirm the facts. One call, then a short reply.",
]
_REASONER_WRAPS = [
    "The tool output is in; it is enough to answer. Keep the reply short and state the outcome.",
    "I have what I need. No further tool calls are necessary; I will summarise in one line.",
]


@dataclass(frozen=True)
class Reasoner:
    """Like `terse` (2 model calls, 1 tool call per user message), with visible reasoning on every response."""

    name: str = "reasoner"
    description: str = (
        "like terse, but every response carries visible reasoning (thinking / summaries / reasoning_content)"
    )

    def respond(self, view: View, rng_key: bytes) -> Reply:
        reply = Terse().respond(view, rng_key)
        ask = snippet(view.last_user_text) or "an answer"
        if reply.tool_calls:
            template = _REASONER_PLANS[pick(rng_key, "plan", len(_REASONER_PLANS))]
            reply.reasoning = template.format(ask=ask, tool=reply.tool_calls[0].name)
        elif view.offered_tools:
            reply.reasoning = _REASONER_WRAPS[pick(rng_key, "wrap", len(_REASONER_WRAPS))]
        else:
            reply.reasoning = f"No tools are available for “{ask}”, so I answer directly and concisely."
        return reply


_GENERIC_FINAL = [
    "I've looked into it and completed the task.",
    "Finished: the checks ran and the results look fine.",
    "The task is done.",
]


@dataclass(frozen=True)
class Generic:
    """Any tool list: 1–3 rounds of one schema-valid tool call each, then a final text.

    Per user message: 2–4 model calls, 1–3 tool calls. Destructive-looking
    tools (write, edit, delete, ...) are avoided when others are offered.
    """

    name: str = "generic"
    description: str = "for any client's tools: 1-3 rounds of one schema-valid call, then ends the turn"

    def respond(self, view: View, rng_key: bytes) -> Reply:
        tools = safe_tools(view.offered_tools)
        rounds = view.rounds_since_user
        if tools and rounds < 1 + pick(rng_key, "generic-rounds", 3):
            tool = tools[pick(rng_key, f"generic-tool-{rounds}", len(tools))]
            return Reply(tool_calls=[call(tool, rng_key, f"generic-{rounds}")])
        return Reply(text=_GENERIC_FINAL[pick(rng_key, "generic-text", len(_GENERIC_FINAL))])


for _profile in (Terse(), Thorough(), Reasoner(), Generic()):
    register(_profile)
