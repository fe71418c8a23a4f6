"""Sessions -> tasks.csv rows, computed from the proxy's own exchange rows and nothing else.

Each (session, repeat) is one task row, so `ampbench report` reads a proxy
run like any other: requests are sessions, user turns are the user requests
found inside them. A session is labelled with its main model (the one with
the most model calls): an agent that also calls a small model for titles is
still one request of its main model.

So that a session's numbers line up with the agent's own (Claude Code's
`num_turns`, an SDK app's loop counter), every exchange of a session falls in
exactly one of three kinds, and the three columns add up to `exchanges`:

- `main_exchanges`: generation requests (POST to Messages, Chat Completions or
  Responses) of the main model in the session's **main conversation**: among
  the conversations of the main model, the one with the most model calls
  (ties: the one offering tools, then the most attempts, then the first seen).
  Failed attempts and retries of those calls count here too.
- `side_exchanges`: every other generation request: another model, or another
  conversation (an agent's title, summary or quota requests), failed or not.
- `non_model_exchanges`: everything that generates nothing: `HEAD /`
  connectivity probes, `GET /v1/models`, `count_tokens`, any other path.

`main_model_calls` and `side_model_calls` are the successful ones of the
first two kinds (`model_calls` is their sum); `main_model_calls` is what an
agent's own count of its loop's turns reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from harness import prices
from harness.records import is_ok, is_sent, summarise
from harness.wire import wire_for_path

SUITE = "proxy"
SOURCE = "proxy"
EXTRA_TASK_COLUMNS: tuple[str, ...] = (
    "main_exchanges",
    "side_exchanges",
    "non_model_exchanges",
    "main_model_calls",
    "side_model_calls",
    "main_conversation",
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
NO_CONVERSATION = "none"
MAIN, SIDE, NON_MODEL = "main", "side", "non_model"
_PRICE_PROVIDER = {"api.anthropic.com": "anthropic", "api.openai.com": "openai"}
_STOP_REASONS = {"end_turn": "completed", "stop": "completed", "completed": "completed"}

SessionKey = tuple[str, int]
Row = Mapping[str, Any]


def _group(rows: Iterable[dict[str, Any]]) -> dict[SessionKey, list[dict[str, Any]]]:
    groups: dict[SessionKey, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task_id"], row["repeat"]), []).append(row)
    return groups


def is_generation(row: Row) -> bool:
    """A request to a model endpoint (successful or not), as opposed to probes, listings, count_tokens."""
    known = row.get("generation")
    if known is not None:
        return bool(known)
    return row.get("method") == "POST" and wire_for_path(str(row.get("endpoint") or "")) is not None


def is_model_call(row: Row) -> bool:
    """A successful generation: one step of the agent loop."""
    return bool(row.get("model_call")) and is_ok(row)


def _model(row: Row) -> str:
    return str(row.get("request_model") or NO_MODEL)


def main_model(rows: list[dict[str, Any]]) -> str:
    """The model with the most model calls; else the most requested one; ties go to the first seen."""
    calls = Counter(r["request_model"] for r in rows if is_model_call(r) and r.get("request_model"))
    if not calls:
        calls = Counter(r["request_model"] for r in rows if r.get("request_model"))
    if not calls:
        return NO_MODEL
    best = max(calls.values())
    return next(m for m in calls if calls[m] == best)


def session_models(rows: Iterable[dict[str, Any]]) -> dict[SessionKey, str]:
    return {key: main_model(group) for key, group in _group(rows).items()}


def main_conversation(rows: list[dict[str, Any]], model: str) -> str | None:
    """The conversation of `model` with the most model calls; None when the model has no generation.

    Ties go to the conversation that offers tools (an agent loop does; title and
    summary requests do not), then to the one with more attempts, then to the first seen.
    """
    ranks: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        conversation = str(row.get("conversation") or NO_CONVERSATION)
        if conversation == NO_CONVERSATION or not is_generation(row) or _model(row) != model:
            continue
        rank = ranks.setdefault(conversation, [0, 0, 0, -index])
        rank[0] += is_model_call(row)
        rank[1] = max(rank[1], 1 if row.get("offered_tools") else 0)
        rank[2] += is_sent(row)
    if not ranks:
        return None
    return max(ranks, key=lambda c: ranks[c])


def exchange_kind(row: Row, model: str, conversation: str | None) -> str:
    """`main`, `side` or `non_model` (see the module docstring)."""
    if not is_generation(row):
        return NON_MODEL
    if conversation is not None and row.get("conversation") == conversation and _model(row) == model:
        return MAIN
    return SIDE


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


def row_cost(row: Row) -> float | None:
    """Price of one exchange at its provider's list price; None for hosts or models without one."""
    provider = _PRICE_PROVIDER.get(str(row.get("host")))
    price = prices.price_for(provider, str(row.get("request_model"))) if provider else None
    return prices.cost_usd(price, row) if price is not None else None


def task_rows(
    rows: list[dict[str, Any]],
    tool_rows: list[dict[str, Any]],
    *,
    run_id: str,
    labels: dict[str, str],
) -> list[dict[str, Any]]:
    """One tasks.csv row per (session, repeat), in order of first exchange."""
    tools_by_session = _group(tool_rows)
    out: list[dict[str, Any]] = []
    for (task_id, repeat), group in _group(rows).items():
        model = main_model(group)
        conversation = main_conversation(group, model)
        sent = [r for r in group if is_sent(r)]
        kinds = Counter(exchange_kind(r, model, conversation) for r in sent)
        calls = [r for r in sent if is_model_call(r)]
        main_calls = [r for r in calls if exchange_kind(r, model, conversation) == MAIN]
        # The session's outcome is that of its main conversation's last attempt (a probe or a title
        # request after the answer does not decide it); without one, of its last generation or row.
        main_rows = [r for r in group if exchange_kind(r, model, conversation) == MAIN]
        last = (main_rows or [r for r in group if is_generation(r)] or group)[-1]
        last_call = (main_calls or calls or [None])[-1]
        reason = last_call.get("stop_reason") if last_call else None
        starts = [r["ts"] for r in group if r.get("ts") is not None]
        ends = [r["ts"] + (r.get("latency_ms") or 0) / 1000 for r in group if r.get("ts") is not None]
        good = is_ok(last)
        out.append(
            summarise(
                group,
                tools_by_session.get((task_id, repeat), []),
                cost=row_cost,
                run_id=run_id,
                suite=SUITE,
                task_id=task_id,
                model=model,
                repeat=repeat,
                session=0,
                source=SOURCE,
                status="ok" if good else "error",
                stop_reason=_STOP_REASONS.get(str(reason), reason) if good else "error",
                user_turns=max((r.get("user_turn") or 0) for r in group),
                # Successful generations only: count_tokens and listings answer 200 but generate nothing.
                model_calls=len(calls),
                # What the session's own prompt costs: the first model call of its main conversation.
                prompt_tokens=main_calls[0].get("input_tokens") if main_calls else None,
                wall_s=round(max(ends) - min(starts), 3) if starts else None,
                error=None if good else (last.get("error") or f"http_{last.get('status')}"),
                main_exchanges=kinds[MAIN],
                side_exchanges=kinds[SIDE],
                non_model_exchanges=kinds[NON_MODEL],
                main_model_calls=len(main_calls),
                side_model_calls=len(calls) - len(main_calls),
                main_conversation=conversation,
                attribution=group[0].get("attribution"),
                key_hash=group[0].get("key_hash"),
                label=labels.get(task_id, ""),
                conversations=len({r.get("conversation") for r in group} - {NO_CONVERSATION, None}),
                models=dict(Counter(_model(r) for r in calls)),
                exchanges_by_endpoint=dict(sorted(Counter(str(r["endpoint"]) for r in sent).items())),
                streamed_exchanges=sum(1 for r in sent if r.get("streamed")),
                request_bytes=sum(r.get("request_bytes") or 0 for r in sent),
                response_bytes=sum(r.get("response_bytes") or 0 for r in sent),
            )
        )
    return out
