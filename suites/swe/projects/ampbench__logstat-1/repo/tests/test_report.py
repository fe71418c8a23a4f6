from datetime import timedelta

from logstat import read_records, render, summarize

LOG = """\
2024-03-01T10:00:00Z INFO api: started
2024-03-01T10:20:00Z WARNING api: slow response
2024-03-01T11:05:00Z ERROR db: connection reset
2024-03-01T11:06:00Z INFO db: reconnected
2024-03-01T11:40:00Z INFO api: healthy
"""


def test_summary_counts():
    summary = summarize(read_records(LOG.splitlines()))
    assert summary.count == 5
    assert summary.by_level == {"INFO": 3, "WARNING": 1, "ERROR": 1}
    assert summary.span == timedelta(hours=1, minutes=40)


def test_busiest_hour():
    summary = summarize(read_records(LOG.splitlines()))
    assert summary.busiest_hour == "2024-03-01 11:00"


def test_render():
    text = render(summarize(read_records(LOG.splitlines())))
    assert "events: 5" in text
    assert "span:   1:40:00" in text
    assert "busiest hour: 2024-03-01 11:00 UTC" in text


def test_render_empty():
    assert render(summarize([])) == "no events"
