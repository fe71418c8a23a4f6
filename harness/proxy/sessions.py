"""Sessions -> tasks.csv rows, computed from the proxy's own exchange rows and nothing else.

Each (session, repeat) is one task row, so `ampbench report` reads a proxy
run like any other: requests are sessions, user turns are the user requests
found inside them. A session is labelled with its main model (the one with
the most model calls): an agent that also calls a small model for titles is
still one request of its main model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from harness import prices
from harness.ingest._common import sum_known

SUITE = "proxy"
SOURCE = "proxy"
EXTRA_TASK_COLUMNS: tuple[str, ...] = (
    "attribution",
    "key_hash",
    "label",
    "conversations",
    "models",
    "exchanges_by_endpoint",
    "streamed_exchanges",
    "request_bytes",
    "response_bytes",
)
NO_MODEL = "-"
_PRICE_PROVIDER = {"api.anthropic.com": "anthropic", "api.openai.com": "openai"}
_STOP_REASONS = {"end_turn": "completed", "stop": "completed", "completed": "completed"}

SessionKey = tuple[str, int]


def ok(row: dict[str, Any]) -> bool:
    status = row.get("status")
    return status is not None and 200 <= status < 300 and not row.get("error")


def _group(rows: Iterable[dict[str, Any]]) -> dict[SessionKey, list[dict[str, Any]]]:
    groups: dict[SessionKey, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task_id"], row["repeat"]), []).append(row)
    return groups


def main_model(rows: list[dict[str, Any]]) -> str:
    """The model with the most model calls; else the most requested one; ties go to the first seen."""
    calls = Counter(
        r["request_model"] for r in rows if r.get("model_call") and ok(r) and r.get("request_model")
    )
    if not calls:
        calls = Counter(r["request_model"] for r in rows if r.get("request_model"))
    if not calls:
        return NO_MODEL
    best = max(calls.values())
    return next(m for m in calls if calls[m] == best)


def session_models(rows: Iterable[dict[str, Any]]) -> dict[SessionKey, str]:
    return {key: main_model(group) for key, group in _group(rows).items()}


def _prompt_tokens(calls: list[dict[str, Any]]) -> int | None:
    """Input tokens of the first model call in the conversation with the most model calls.

    Side conversations (an agent's title or summary requests) are not the task's prompt.
    """
    if not calls:
        return None
    counts = Counter(r.get("conversation") for r in calls)
    best = max(counts.values())
    main = next(c for c in counts if counts[c] == best)
    return next(r.get("input_tokens") for r in calls if r.get("conversation") == main)


def fold_unattributed(rows: list[dict[str, Any]], tool_rows: list[dict[str, Any]]) -> bool:
    """Give requests without a conversation or session header to the run's only session, if it has one.

    A wrapped command is usually one agent run; its connectivity checks and
    model listings carry no conversation, yet are part of that run. With
    several sessions there is no telling which one they belong to: they keep
    their `other-<key>` session. Returns whether any row changed.
    """
    sessions = {(r["task_id"], r["repeat"]) for r in rows if r.get("attribution") != "none"}
    if len(sessions) != 1:
        return False
    task_id, repeat = next(iter(sessions))
    moved = {r["task_id"] for r in rows if r.get("attribution") == "none"}
    for row in (*rows, *tool_rows):
        if row["task_id"] in moved:
            row["task_id"], row["repeat"] = task_id, repeat
    return bool(moved)


def _cost(rows: list[dict[str, Any]]) -> float | None:
    total: float | None = None
    for row in rows:
        provider = _PRICE_PROVIDER.get(str(row.get("host")))
        price = prices.price_for(provider, str(row.get("request_model"))) if provider else None
        cost = prices.cost_usd(price, row)
        if cost is not None:
            total = (total or 0.0) + cost
    return round(total, 6) if total is not None else None


def task_rows(rows: list[dict[str, Any]], *, run_id: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """One tasks.csv row per (session, repeat), in order of first exchange."""
    out: list[dict[str, Any]] = []
    for (task_id, repeat), group in _group(rows).items():
        model = main_model(group)
        good = [r for r in group if ok(r)]
        calls = [r for r in good if r.get("model_call")]
        tools: Counter[str] = Counter()
        for r in calls:
            tools.update(r.get("tool_names") or [])
        last = group[-1]
        last_call = calls[-1] if calls else None
        starts = [r["ts"] for r in group if r.get("ts") is not None]
        ends = [r["ts"] + (r.get("latency_ms") or 0) / 1000 for r in group if r.get("ts") is not None]
        reason = last_call.get("stop_reason") if last_call else None
        out.append(
            {
                "run_id": run_id,
                "suite": SUITE,
                "task_id": task_id,
                "model": model,
                "simulated": any(r.get("simulated") for r in group),
                "repeat": repeat,
                "session": 0,
                "source": SOURCE,
                "status": "ok" if ok(last) else "error",
                "stop_reason": _STOP_REASONS.get(str(reason), reason) if ok(last) else "error",
                "user_turns": max((r.get("user_turn") or 0) for r in group),
                "model_calls": len(calls),
                "exchanges": len(group),
                "retries": sum(1 for r in group if (r.get("attempt") or 1) > 1),
                "failed_exchanges": len(group) - len(good),
                "tool_calls": sum(r.get("tool_calls") or 0 for r in calls),
                "tool_calls_by_name": dict(sorted(tools.items())),
                "input_tokens": sum_known(r.get("input_tokens") for r in group),
                "output_tokens": sum_known(r.get("output_tokens") for r in group),
                "cache_read_input_tokens": sum_known(r.get("cache_read_input_tokens") for r in group),
                "cache_creation_input_tokens": sum_known(r.get("cache_creation_input_tokens") for r in group),
                "reasoning_tokens": sum_known(r.get("reasoning_tokens") for r in group),
                "visible_reasoning_chars": sum(r.get("visible_reasoning_chars") or 0 for r in group),
                # What the session's own prompt costs: the first model call of its main conversation.
                "prompt_tokens": _prompt_tokens(calls),
                "judge_exchanges": 0,
                "judge_input_tokens": None,
                "judge_output_tokens": None,
                "cost_usd": _cost(group),
                "score": None,
                "wall_s": round(max(ends) - min(starts), 3) if starts else None,
                "error": None if ok(last) else (last.get("error") or f"http_{last.get('status')}"),
                "attribution": group[0].get("attribution"),
                "key_hash": group[0].get("key_hash"),
                "label": labels.get(task_id, ""),
                "conversations": len({r.get("conversation") for r in group} - {"none"}),
                "models": dict(Counter(str(r.get("request_model") or NO_MODEL) for r in calls)),
                "exchanges_by_endpoint": dict(sorted(Counter(str(r["endpoint"]) for r in group).items())),
                "streamed_exchanges": sum(1 for r in group if r.get("streamed")),
                "request_bytes": sum(r.get("request_bytes") or 0 for r in group),
                "response_bytes": sum(r.get("response_bytes") or 0 for r in group),
            }
        )
    return out
