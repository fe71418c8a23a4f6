"""Latency and time to first byte are measured on the wire, not around ampbench's own waiting.

The unit test drives the ledger with a transport that reports httpcore's trace
events on a fake clock, so what counts as latency is checked exactly. The end
to end test holds the recorded figures to the simulator's own ground truth:
every slow response was delayed on purpose by a known total, and no latency
measured on the wire can be shorter than the delay the server slept.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from harness import ledger
from harness.errors import UserError
from harness.ledger import CountingTransport, MemorySink
from harness.runner import RunConfig, Runner
from harness.sim.server import SimServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TracedTransport(httpx2.AsyncBaseTransport):
    """Acts like httpcore on a fake clock: waits for a connection, then sends, then answers."""

    def __init__(self, clock: FakeClock, *, traced: bool = True) -> None:
        self.clock = clock
        self.traced = traced

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        trace = request.extensions.get("trace") if self.traced else None
        self.clock.now += 5.0  # waiting for a pooled connection and for the event loop
        if trace:
            await trace("http11.send_request_headers.started", {})
            await trace("http11.send_request_headers.complete", {})
        self.clock.now += 1.0  # the provider thinks
        if trace:
            await trace("http11.receive_response_headers.started", {})
            await trace("http11.receive_response_headers.complete", {})
        clock = self.clock

        class Body(httpx2.AsyncByteStream):
            async def __aiter__(self):
                clock.now += 2.0  # the body streams in
                yield b'{"ok": true}'
                if trace:
                    await trace("http11.receive_response_body.complete", {})
                clock.now += 7.0  # ampbench's loop is busy before it closes the response

        return httpx2.Response(200, headers={"content-type": "application/json"}, stream=Body())


@pytest.mark.parametrize("traced", [True, False])
async def test_latency_is_first_byte_written_to_last_byte_read(
    monkeypatch: pytest.MonkeyPatch, traced: bool
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(ledger.time, "perf_counter", clock)
    seen: list[str] = []

    async def user_trace(name: str, info: dict) -> None:
        seen.append(name)

    sink = MemorySink()
    async with httpx2.AsyncClient(
        transport=CountingTransport(TracedTransport(clock, traced=traced), sink)
    ) as client:
        response = await client.post(
            "http://p.test/v1/chat/completions", content=b"{}", extensions={"trace": user_trace}
        )
        await response.aread()
    (row,) = sink.exchanges
    if traced:
        # 1 s thinking + 2 s body; the 5 s before sending and the 7 s after the last byte are not the wire's.
        assert (row.ttfb_ms, row.latency_ms) == (1000.0, 3000.0)
        assert seen[0] == "http11.send_request_headers.started"  # a caller's own trace still runs
    else:
        # No wire below (a cassette): the time spent below the ledger, and no first-byte time.
        assert row.ttfb_ms is None and row.latency_ms == 15000.0


def test_recorded_latency_covers_the_delay_the_simulator_injected(tmp_path: Path) -> None:
    sim = SimServer(faults=1.0, seed=3, fault_kinds="slow").start()
    try:
        config = RunConfig(
            suite="snitch",
            models=["sim:terse"],
            repeats=1,
            concurrency=4,
            out=str(tmp_path / "run"),
            sim_url=sim.url,
            task_ids=None,
        )
        run_dir = Runner(config, progress=False).run()
        stats = sim.stats()
    finally:
        sim.stop()
    rows = [json.loads(line) for line in (run_dir / "exchanges.jsonl").read_text().splitlines()]
    assert len(rows) == stats["requests"] == stats["faults"]["slow"] > 0
    assert all(r["ttfb_ms"] is not None and 0 < r["ttfb_ms"] <= r["latency_ms"] for r in rows)
    # A lower bound only: the server slept this long before answering, whatever the machine's load.
    assert sum(r["ttfb_ms"] for r in rows) >= stats["injected_delay_ms"] > 0
    assert all(r["simulated"] for r in rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sim_url": "127.0.0.1:8765"}, "must start with http"),
        ({"sim_url": "http://127.0.0.1:8765", "sim_faults": 0.5}, "give faults to `ampbench sim serve`"),
    ],
)
def test_sim_url_is_checked_up_front(tmp_path: Path, kwargs: dict, message: str) -> None:
    config = RunConfig(suite="snitch", models=["sim:terse"], out=str(tmp_path / "run"), **kwargs)
    with pytest.raises(UserError, match=message):
        Runner(config, progress=False).prepare()
    assert not (tmp_path / "run").exists()
