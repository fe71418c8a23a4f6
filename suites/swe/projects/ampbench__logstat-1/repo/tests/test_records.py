from datetime import datetime, timezone

import pytest

from logstat import LineError, parse_line, read_records


def test_parse_line():
    record = parse_line("2024-03-01T10:00:00Z error api: upstream timed out: 30s")
    assert record.time == datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
    assert record.level == "ERROR"
    assert record.service == "api"
    assert record.message == "upstream timed out: 30s"


def test_unknown_level():
    with pytest.raises(ValueError):
        parse_line("2024-03-01T10:00:00Z LOUD api: hi")


def test_read_records_skips_comments_and_blank_lines():
    lines = ["# header", "", "2024-03-01T10:00:00Z INFO api: up"]
    assert [r.message for r in read_records(lines)] == ["up"]


def test_read_records_reports_the_line_number():
    with pytest.raises(LineError) as info:
        list(read_records(["2024-03-01T10:00:00Z INFO api: up", "garbage"]))
    assert info.value.lineno == 2
