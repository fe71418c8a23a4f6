"""ISO 8601 timestamps with a UTC offset, as our services write them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
    r"(Z|[+-]\d{2}:?\d{2})$"
)


def parse_timestamp(text: str) -> datetime:
    """Parse a timestamp like 2024-03-01T10:00:00.250+02:00 into an aware UTC datetime.

    A zone designator is required: either Z or an offset such as +02:00,
    -0500 or +00:00.
    """
    match = _TIMESTAMP.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 timestamp with a zone: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0").ljust(6, "0"))
    naive = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros)
    if zone == "Z":
        offset = timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if zone[0] == "-":
            offset = -offset
    return (naive + offset).replace(tzinfo=timezone.utc)
