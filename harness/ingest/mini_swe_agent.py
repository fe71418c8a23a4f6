"""mini-swe-agent trajectories (`*.traj.json`, formats "mini-swe-agent-1" and "mini-swe-agent-1.1").

Model calls come from `info.model_stats.api_calls`, cross-checked against the
assistant messages (a mismatch is written to `ingest_notes`). Each assistant
message carries the provider's response in `extra.response`, so its usage
gives per-call tokens. Tool calls: in v1 files one bash action per assistant
message with exactly one action block; in v1.1 files the message's
`tool_calls` (tool calling) or `extra.actions` (text-based models).

A trajectory written by mini-swe-agent's scripted test models
(`minisweagent.models.test_models.Deterministic*Model`, named in
`info.config.model_type`, default model names `deterministic...`) or with
`api_calls` 0 behind its responses had no provider: 0 model calls, no exchange
rows, unknown tokens and cost (the test models report a made-up cost per
call), its tool calls kept, and a `no_provider_reason`.
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

NAME = "mini-swe-agent"
SOURCE = "ingest:mini-swe-agent"
SUFFIX = ".traj.json"
LIMITS = [
    "mini-swe-agent trajectories count model calls (info.model_stats.api_calls), not HTTP attempts: "
    "retries inside the model client are invisible, so exchanges are a lower bound.",
    "mini-swe-agent exchange rows carry no latency, byte sizes or HTTP status (status 200 is assumed "
    "for every recorded model call).",
]

_DEFAULT_ACTION_RE = r"```bash\s*\n(.*?)\n```"
_RETURNCODE = re.compile(r"<returncode>(-?\d+)</returncode>")
_OUTPUT = re.compile(r"<output>\n?(.*?)</output>", re.DOTALL)

# exit_status -> (status, stop_reason). Anything else is an exception that ended the run.
_EXITS = {
    "submitted": ("ok", "completed"),
    "limitsexceeded": ("ok", "limit"),
    "userinterruption": ("ok", "interrupted"),
    "formaterror": ("ok", "format_error"),
}


# mini-swe-agent's scripted models (minisweagent/models/test_models.py) and their default model names.
_TEST_MODEL_MODULE = "minisweagent.models.test_models."
_TEST_MODEL_NAMES = {"deterministic", "deterministic_toolcall", "deterministic_response_api_toolcall"}


def _no_provider(
    config: dict[str, Any], model: str, api_calls: int, responses: int
) -> tuple[str, str] | None:
    """(reason, evidence) when no provider answered this trajectory's model calls; None for a model's run."""
    model_type = str(config.get("model_type") or "")
    if model_type.startswith(_TEST_MODEL_MODULE) or model_type.rsplit(".", 1)[-1].startswith("Deterministic"):
        return "test model", f"info.config.model_type is {model_type}"
    if model in _TEST_MODEL_NAMES:
        return "test model", f"model_name is {model!r}"
    if api_calls == 0 and responses:
        return "demonstration", f"model_stats.api_calls is 0 for {responses} model responses"
    return None


def sniff(name: str, head: bytes, tail: bytes) -> bool:
    if name.endswith(SUFFIX):
        return True
    if not (name.endswith(".json") and head.lstrip().startswith(b"{") and b'"info"' in head + tail):
        return False
    text = head + tail
    return (b'"trajectory_format"' in text and b'"mini-swe-agent-1' in text) or b'"mini_version"' in text


def _endpoint(response: dict[str, Any]) -> str | None:
    kind = response.get("object")
    if kind == "chat.completion":
        return "/chat/completions"
    if kind == "response":
        return "/responses"
    return None


def usage_tokens(usage: dict[str, Any] | None) -> dict[str, int | None]:
    """Normalise a litellm-style usage object (chat or responses shape) to OTel names.

    `prompt_tokens` already includes cached tokens, so it is the input total as is.
    """
    out: dict[str, int | None] = {
        "input_tokens": None,
        "output_tokens": None,
        "cache_read_input_tokens": None,
        "cache_creation_input_tokens": None,
        "reasoning_tokens": None,
    }
    if not isinstance(usage, dict):
        return out
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        out["input_tokens"] = usage.get("prompt_tokens")
        out["output_tokens"] = usage.get("completion_tokens")
        in_details = usage.get("prompt_tokens_details") or {}
        out_details = usage.get("completion_tokens_details") or {}
    else:
        out["input_tokens"] = usage.get("input_tokens")
        out["output_tokens"] = usage.get("output_tokens")
        in_details = usage.get("input_tokens_details") or {}
        out_details = usage.get("output_tokens_details") or {}
    if isinstance(in_details, dict):
        out["cache_read_input_tokens"] = in_details.get("cached_tokens")
        out["cache_creation_input_tokens"] = in_details.get("cache_creation_tokens")
    if out["cache_creation_input_tokens"] is None:
        # litellm puts Anthropic's cache writes at the top level of usage.
        out["cache_creation_input_tokens"] = usage.get("cache_creation_input_tokens")
    if isinstance(out_details, dict):
        out["reasoning_tokens"] = out_details.get("reasoning_tokens")
    return out


def _reasoning_chars(message: dict[str, Any], response: dict[str, Any]) -> int:
    choices = response.get("choices") or [{}]
    provider_msg = (choices[0] or {}).get("message") or {}
    for source in (message, provider_msg):
        for key in ("reasoning_content", "reasoning"):
            text = source.get(key)
            if isinstance(text, str) and text:
                return len(text)
    return 0


def _observation(msg: dict[str, Any] | None) -> tuple[bool | None, int | None]:
    """ok and output bytes of an observation message, from extra fields or the rendered template."""
    if msg is None:
        return None, None
    extra = msg.get("extra") or {}
    if isinstance(extra, dict) and "returncode" in extra:
        raw = extra.get("raw_output")
        rc = extra.get("returncode")
        return (rc == 0) if rc is not None else None, len(raw.encode()) if isinstance(raw, str) else None
    content = msg.get("content")
    if not isinstance(content, str):
        return None, None
    match = _RETURNCODE.search(content)
    if match is None:
        return None, None
    out = _OUTPUT.search(content)
    return int(match.group(1)) == 0, len(out.group(1).encode()) if out else None


def read(path: Path, *, run_id: str) -> list[TaskRecord]:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestFormatError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise IngestFormatError("no messages[] list: not a mini-swe-agent trajectory")
    info = data.get("info") or {}
    stats = info.get("model_stats") or {}
    api_calls = stats.get("api_calls")
    if not isinstance(api_calls, int):
        raise IngestFormatError("info.model_stats.api_calls missing: not a mini-swe-agent trajectory")
    version = str(data.get("trajectory_format") or "mini-swe-agent-1")
    config = info.get("config") or {}
    model = str((config.get("model") or {}).get("model_name") or "unknown")
    task_id = str(data.get("instance_id") or path.name.removesuffix(SUFFIX).removesuffix(".json"))
    origin = Origin(run_id=run_id, task_id=task_id, model=model)
    action_re = re.compile(
        str(
            (config.get("model") or {}).get("action_regex")
            or (config.get("agent") or {}).get("action_regex")
            or _DEFAULT_ACTION_RE
        ),
        re.DOTALL,
    )
    exit_status = str(info.get("exit_status") or "")
    messages: list[dict[str, Any]] = [m for m in data["messages"] if isinstance(m, dict)]
    record = TaskRecord(origin)
    notes: list[str] = []

    step = 0
    for index, msg in enumerate(messages):
        extra = msg.get("extra") if isinstance(msg.get("extra"), dict) else {}
        role = msg.get("role")
        # v1.1 counts a call whose output could not be parsed (api_calls) but keeps no assistant message
        # for it, only the FormatError message (with the raw response when the model class saved it).
        format_error = role == "user" and extra.get("interrupt_type") == "FormatError"
        if role != "assistant" and not format_error:
            continue
        step += 1
        response = extra.get("response") if isinstance(extra.get("response"), dict) else {}
        choices = response.get("choices") or [{}]
        tokens = usage_tokens(response.get("usage"))
        calls = _tool_calls(msg, extra, action_re, version) if not format_error else []
        record.exchanges.append(
            exchange_row(
                origin,
                SOURCE,
                step=step,
                endpoint=_endpoint(response),
                status=200,
                tool_calls=len(calls),
                tool_names=[name for name, _ in calls],
                visible_reasoning_chars=_reasoning_chars(msg, response),
                stop_reason=(choices[0] or {}).get("finish_reason"),
                response_model=response.get("model"),
                usage=response.get("usage"),
                **tokens,
            )
        )
        observations = _observations_after(messages, index, calls)
        for (name, call_id), obs in zip(calls, observations, strict=True):
            ok, size = _observation(obs)
            if ok is None and obs is not None and obs is messages[-1] and exit_status.lower() == "submitted":
                # The submit command ended the run: its output (the patch) is the final message
                # (v1: a user message; v1.1: the `exit` message, patch in extra.submission).
                patch = (obs.get("extra") or {}).get("submission") or obs.get("content") or ""
                ok, size = True, len(str(patch).encode())
            record.tool_calls.append(
                tool_row(
                    origin,
                    SOURCE,
                    step=step,
                    tool=name,
                    ok=ok,
                    tool_call_id=call_id,
                    output_bytes=size,
                    user_turn=1,
                )
            )

    no_provider = _no_provider(config, model, api_calls, step)
    if no_provider is None and step != api_calls:
        notes.append(f"api_calls={api_calls} but {step} model responses in messages")
    if no_provider is None:
        # Calls the stats count but the messages do not show still happened: keep them, without tokens.
        for extra_step in range(step + 1, api_calls + 1):
            record.exchanges.append(exchange_row(origin, SOURCE, step=extra_step, status=200))
        missing = sum(1 for r in record.exchanges if r["input_tokens"] is None)
        if missing:
            notes.append(f"model calls without usage: {missing} (token totals are a lower bound)")

    status, stop_reason = _EXITS.get(exit_status.lower(), ("error", "error") if exit_status else ("ok", None))
    cost = stats.get("instance_cost")
    record.row.update(
        status=status,
        stop_reason=stop_reason,
        exit_status=exit_status or None,
        user_turns=1,
        model_calls=api_calls,
        steps=step,
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        error=exit_status if status == "error" else None,
        format=version,
        ingest_notes=notes_text(notes),
    )
    if no_provider is not None:
        reason, evidence = no_provider
        without_provider(record, reason, f"{evidence}; api_calls={api_calls} not counted as exchanges")
    return [record]


def _tool_calls(
    msg: dict[str, Any], extra: dict[str, Any], action_re: re.Pattern[str], version: str
) -> list[tuple[str, str | None]]:
    """(tool name, tool call id) of each action the agent executed for this response."""
    native = msg.get("tool_calls")
    if isinstance(native, list) and native:
        out = []
        for call in native:
            fn = (call or {}).get("function") or {}
            out.append((str(fn.get("name") or call.get("name") or "unknown"), call.get("id")))
        return out
    actions = extra.get("actions")
    if isinstance(actions, list):
        return [(str((a or {}).get("tool") or "bash"), (a or {}).get("tool_call_id")) for a in actions]
    if version == "mini-swe-agent-1":
        content = msg.get("content")
        if isinstance(content, str) and len(action_re.findall(content)) == 1:
            return [("bash", None)]
    return []


def _observations_after(
    messages: list[dict[str, Any]], index: int, calls: list[tuple[str, str | None]]
) -> list[dict[str, Any] | None]:
    """The observation message of each action of messages[index] (by tool call id, else by position)."""
    window: list[dict[str, Any]] = []
    for msg in messages[index + 1 :]:
        if msg.get("role") not in ("user", "tool", "exit"):
            break
        window.append(msg)
    out: list[dict[str, Any] | None] = []
    for position, (_, call_id) in enumerate(calls):
        match = next((m for m in window if call_id and m.get("tool_call_id") == call_id), None)
        if match is None and position < len(window):
            match = window[position]
        out.append(match)
    return out
