"""Log lines and the records they hold."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from logstat.timeparse import parse_timestamp

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LineError(ValueError):
    def __init__(self, lineno: int, reason: str) -> None:
        super().__init__(f"line {lineno}: {reason}")
        self.lineno = lineno


@dataclass(frozen=True)
class Record:
    time: datetime
    """When the event happened, in UTC."""
    level: str
    service: str
    message: str


def parse_line(line: str) -> Record:
    """Parse '<timestamp> <LEVEL> <service>: <message>'."""
    try:
        stamp, level, rest = line.strip().split(" ", 2)
    except ValueError:
        raise ValueError("expected '<timestamp> <LEVEL> <service>: <message>'") from None
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}")
    service, sep, message = rest.partition(":")
    if not sep:
        raise ValueError("missing ':' after the service name")
    return Record(parse_timestamp(stamp), level, service.strip(), message.strip())


def read_records(lines: Iterable[str]) -> Iterator[Record]:
    """Records of every line that is not blank and not a '#' comment."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            yield parse_line(line)
        except ValueError as exc:
            raise LineError(lineno, str(exc)) from None
