"""Attribution of exchanges travels in context variables.

The runner sets the task context before a task starts, the loop sets the step
and role, the retry wrapper sets the attempt. The ledger transport reads the
current value when an HTTP attempt happens, so concurrent asyncio tasks never
mix their counts: each task runs in its own copy of the context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ExchangeContext:
    """Who an HTTP exchange belongs to."""

    run_id: str = ""
    task_id: str = ""
    model: str = ""
    repeat: int = 0
    step: int = 0
    # 1-based index of the user message being answered (multi-turn tasks).
    user_turn: int = 0
    role: str = "agent"
    attempt: int = 1
    # Resume session: 0 for the first invocation of a run, 1 after the first --resume...
    session: int = 0


# ExchangeContext is frozen, so sharing one default instance is safe.
_current: ContextVar[ExchangeContext] = ContextVar("ampbench_exchange_context", default=ExchangeContext())  # noqa: B039


def current() -> ExchangeContext:
    return _current.get()


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[ExchangeContext]:
    """Set some context fields for the duration of a block."""
    ctx = replace(_current.get(), **fields)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
