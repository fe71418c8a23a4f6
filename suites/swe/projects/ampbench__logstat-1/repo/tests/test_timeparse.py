from datetime import datetime, timezone

import pytest

from logstat import parse_timestamp

UTC = timezone.utc


def test_zulu():
    assert parse_timestamp("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_zero_offset():
    assert parse_timestamp("2024-03-01 10:00:00+00:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_fraction():
    assert parse_timestamp("2024-03-01T10:00:00.25Z").microsecond == 250000


def test_result_is_utc():
    assert parse_timestamp("2024-03-01T10:00:00Z").tzinfo is UTC


@pytest.mark.parametrize("text", ["2024-03-01T10:00:00", "yesterday", "2024-03-01T10:00Z"])
def test_rejects_timestamps_without_zone_or_malformed(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)
