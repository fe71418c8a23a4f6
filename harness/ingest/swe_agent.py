"""SWE-agent trajectories (`*.traj`).

`info.model_stats` holds the per-instance totals: `api_calls`, `tokens_sent`,
`tokens_received`, `instance_cost`. Requeries after format errors or blocked
actions are model calls that add no step, so `api_calls` can exceed
`len(trajectory)`: both are kept (`model_calls` and `steps`). Token counts
exist only per instance, so exchange rows carry none and the task row carries
the totals. Each trajectory step with an action is one tool call, named by
its command (`edit`, `python`, `submit`, ...) or by the function of a
function-calling model.

Some trajectories had no provider behind them: demonstrations (steps written
by hand, `api_calls` 0) and runs of SWE-agent's non-API models (`replay`,
which re-issues a trajectory's recorded actions, `human`, `human_thought`,
`instant_empty_submit`), named in `replay_config.agent.model.name` or, for
old trajectories, by the `<model>__...` run folder. Their calls count no
tokens, so calls with `tokens_sent` and `tokens_received` both 0 are replays
too. Such tasks get 0 model calls and no exchange rows, unknown tokens, their
steps and tool calls, and a `no_provider_reason`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.ingest._common import (
    IngestFormatError,
    Origin,
    TaskRecord,
    exchange_row,
    notes_text,
    tool_row,
    without_provider,
)

NAME = "swe-agent"
SOURCE = "ingest:swe-agent"
SUFFIX = ".traj"
LIMITS = [
    "SWE-agent trajectories count model calls (info.model_stats.api_calls), not HTTP attempts: "
    "retries are invisible, so exchanges are a lower bound.",
    "SWE-agent reports tokens per instance only: exchange rows have no tokens; tasks.csv carries the "
    "instance totals (tokens_sent as input_tokens, tokens_received as output_tokens); cache and "
    "reasoning tokens are unknown.",
]

# SWE-agent's models that answer without a provider (sweagent/agent/models.py, get_model) -> reason.
_NO_PROVIDER_MODELS = {
    "replay": "replay",
    "human": "human",
    "human_thought": "human",
    "instant_empty_submit": "test model",
}

# Old run directories are named <model>__<data>__<config>__t-<temp>__p-<top_p>__c-<cost>__install-<n>.
_RUN_DIR = re.compile(r"^(?P<model>[^_].*?)__.*__t-[\d.]+__p-[\d.]+__c-[\d.]+")

_EXITS = {
    "submitted": ("ok", "completed"),
    "exit_cost": ("ok", "cost_limit"),
    "exit_context": ("ok", "context_limit"),
    "exit_format": ("ok", "format_error"),
    "exit_command": ("ok", "completed"),
    "exit_forfeit": ("ok", "forfeit"),
    "exit_total_execution_time": ("ok", "time_limit"),
    "exit_error": ("error", "error"),
    "exit_api": ("error", "error"),
    "exit_environment_error": ("error", "error"),
}


def sniff(name: str, head: bytes, tail: bytes) -> bool:
    if name.endswith(SUFFIX):
        return True
    text = head + tail
    return (
        name.endswith(".json")
        and head.lstrip().startswith(b"{")
        and b'"trajectory"' in head
        and b'"model_stats"' in text
    )


def _configured_model(data: dict[str, Any]) -> str | None:
    """The model named in the trajectory's replay_config (a JSON string in files of SWE-agent 1.x)."""
    replay = data.get("replay_config")
    if isinstance(replay, str):
        try:
            replay = json.loads(replay)
        except json.JSONDecodeError:
            replay = None
    if isinstance(replay, dict):
        name = ((replay.get("agent") or {}).get("model") or {}).get("name")
        if name:
            return str(name)
    return None


def _run_folders(path: Path) -> list[str]:
    return [path.parent.name, path.parent.parent.name]


def _model(data: dict[str, Any], path: Path) -> str:
    name = _configured_model(data)
    if name:
        return name
    for folder in _run_folders(path):
        match = _RUN_DIR.match(folder)
        if match:
            return match.group("model")
    return "unknown"


def _no_provider(
    data: dict[str, Any], path: Path, stats: dict[str, Any], steps: int
) -> tuple[str, str] | None:
    """(reason, evidence) when no provider saw this trajectory's model calls; None for a model's run."""
    name = _configured_model(data)
    if name in _NO_PROVIDER_MODELS:
        return _NO_PROVIDER_MODELS[name], f"replay_config names the {name!r} model"
    for folder in _run_folders(path):
        # Run folders start with the model: <model>__<data>__... (and replay___<traj> for run-replay).
        head = folder.split("__", 1)[0]
        if "__" in folder and head in _NO_PROVIDER_MODELS:
            return _NO_PROVIDER_MODELS[head], f"run folder {folder!r} names the {head!r} model"
    api_calls = stats.get("api_calls")
    if api_calls == 0 and steps:
        return "demonstration", f"model_stats.api_calls is 0 for {steps} steps"
    sent, received = stats.get("tokens_sent"), stats.get("tokens_received")
    if isinstance(api_calls, int) and api_calls > 0 and sent == 0 and received == 0:
        # Every provider call sends and counts a prompt; only SWE-agent's non-API models count none.
        return "replay", f"{api_calls} api_calls with tokens_sent and tokens_received both 0"
    return None


def _exit(exit_status: str) -> tuple[str, str | None]:
    key = exit_status.strip().lower()
    if key in _EXITS:
        return _EXITS[key]
    if key.startswith("submitted"):  # "submitted (exit_cost)": autosubmitted after a limit
        inner = key[key.find("(") + 1 : key.rfind(")")] if "(" in key else ""
        return "ok", _EXITS.get(inner, ("ok", "completed"))[1]
    if not key:
        return "ok", None
    return ("error", "error") if "error" in key else ("ok", key)


def _tool_name(step: dict[str, Any], assistant: dict[str, Any] | None) -> str:
    calls = (assistant or {}).get("tool_calls")
    if isinstance(calls, list) and calls:
        fn = (calls[0] or {}).get("function") or {}
        if fn.get("name"):
            return str(fn["name"])
    action = str(step.get("action") or "").strip()
    return action.split(None, 1)[0] if action else "unknown"


def read(path: Path, *, run_id: str) -> list[TaskRecord]:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestFormatError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("trajectory"), list):
        raise IngestFormatError("no trajectory[] list: not a SWE-agent trajectory")
    info = data.get("info") or {}
    stats = info.get("model_stats") or {}
    api_calls = stats.get("api_calls")
    if not isinstance(api_calls, int):
        raise IngestFormatError("info.model_stats.api_calls missing: not a SWE-agent trajectory")
    origin = Origin(run_id=run_id, task_id=path.name.removesuffix(SUFFIX), model=_model(data, path))
    trajectory = [s for s in data["trajectory"] if isinstance(s, dict)]
    history = [h for h in data.get("history") or [] if isinstance(h, dict)]
    # Demonstrations are replayed examples, not calls of this run.
    assistants = [h for h in history if h.get("role") == "assistant" and not h.get("is_demo")]
    record = TaskRecord(origin)
    notes: list[str] = []

    for index, step in enumerate(trajectory, start=1):
        assistant = assistants[index - 1] if index - 1 < len(assistants) else None
        action = str(step.get("action") or "").strip()
        record.exchanges.append(
            exchange_row(
                origin,
                SOURCE,
                step=index,
                status=200,
                tool_calls=1 if action else 0,
                tool_names=[_tool_name(step, assistant)] if action else [],
            )
        )
        if action:
            observation = step.get("observation")
            seconds = step.get("execution_time")
            record.tool_calls.append(
                tool_row(
                    origin,
                    SOURCE,
                    step=index,
                    tool=_tool_name(step, assistant),
                    output_bytes=len(observation.encode()) if isinstance(observation, str) else None,
                    duration_ms=round(seconds * 1000, 3) if isinstance(seconds, int | float) else None,
                    user_turn=1,
                )
            )
    no_provider = _no_provider(data, path, stats, len(trajectory))
    requeries = api_calls - len(trajectory)
    if no_provider is not None:
        pass  # its api_calls, if any, were not provider calls: no requeries to add
    elif requeries > 0:
        # Requeries are real calls whose step the file does not record.
        notes.append(f"{requeries} model calls beyond the {len(trajectory)} steps (requeries)")
        for _ in range(requeries):
            record.exchanges.append(exchange_row(origin, SOURCE, step=None, status=200))
    elif requeries < 0:
        notes.append(f"api_calls={api_calls} but {len(trajectory)} steps")

    exit_status = str(info.get("exit_status") or "")
    status, stop_reason = _exit(exit_status)
    cost = stats.get("instance_cost")
    sent, received = stats.get("tokens_sent"), stats.get("tokens_received")
    record.row.update(
        status=status,
        stop_reason=stop_reason,
        exit_status=exit_status or None,
        user_turns=1,
        model_calls=api_calls,
        steps=len(trajectory),
        input_tokens=sent if isinstance(sent, int) else None,
        output_tokens=received if isinstance(received, int) else None,
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        error=exit_status if status == "error" else None,
        format=f"swe-agent-{info['swe_agent_version']}" if info.get("swe_agent_version") else "swe-agent",
        ingest_notes=notes_text(notes),
    )
    if no_provider is not None:
        reason, evidence = no_provider
        without_provider(record, reason, f"{evidence}; api_calls={api_calls} not counted as exchanges")
    return [record]
