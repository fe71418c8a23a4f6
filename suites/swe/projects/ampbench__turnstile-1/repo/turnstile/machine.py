"""The state machine."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional

Guard = Callable[[dict[str, Any]], bool]
Hook = Callable[[str, str, dict[str, Any]], None]


class InvalidTransition(Exception):
    """No transition for this event from the current state."""


class GuardRejected(Exception):
    """A transition exists but its guard refused it."""


@dataclass(frozen=True)
class Transition:
    source: str
    event: str
    target: str
    guard: Optional[Guard] = None


class StateMachine:
    """Fires events; each event moves the machine along one transition.

    A transition happens completely or not at all: when its guard refuses,
    the state, the history and the hooks are left untouched.
    """

    def __init__(self, initial: str, transitions: Iterable[Transition]) -> None:
        self.state = initial
        self.history: list[tuple[str, str, str]] = []
        self._table: dict[tuple[str, str], Transition] = {}
        for t in transitions:
            if (t.source, t.event) in self._table:
                raise ValueError(f"duplicate transition for {t.event!r} from {t.source!r}")
            self._table[(t.source, t.event)] = t
        self._on_enter: dict[str, list[Hook]] = defaultdict(list)
        self._on_exit: dict[str, list[Hook]] = defaultdict(list)

    def on_enter(self, state: str, hook: Hook) -> None:
        self._on_enter[state].append(hook)

    def on_exit(self, state: str, hook: Hook) -> None:
        self._on_exit[state].append(hook)

    def can(self, event: str) -> bool:
        return (self.state, event) in self._table

    def events(self) -> list[str]:
        """Events that have a transition from the current state, sorted."""
        return sorted(event for source, event in self._table if source == self.state)

    def fire(self, event: str, **context: Any) -> str:
        """Take the transition for `event`; return the new state."""
        transition = self._table.get((self.state, event))
        if transition is None:
            raise InvalidTransition(f"cannot {event!r} from {self.state!r}")
        source = self.state
        for hook in self._on_exit[source]:
            hook(source, event, context)
        self.state = transition.target
        self.history.append((source, event, transition.target))
        if transition.guard is not None and not transition.guard(context):
            raise GuardRejected(f"{event!r} refused in state {source!r}")
        for hook in self._on_enter[transition.target]:
            hook(transition.target, event, context)
        return self.state
