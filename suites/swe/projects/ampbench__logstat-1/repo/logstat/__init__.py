"""logstat: summaries of timestamped service logs."""

from logstat.records import LineError, Record, parse_line, read_records
from logstat.report import Summary, render, summarize
from logstat.timeparse import parse_timestamp

__all__ = [
    "LineError",
    "Record",
    "Summary",
    "parse_line",
    "parse_timestamp",
    "read_records",
    "render",
    "summarize",
]
