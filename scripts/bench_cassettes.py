"""What one cassette lookup costs as the cassette grows (issue 14).

    .venv/bin/python scripts/bench_cassettes.py [--sizes 12 200 1000] [--rounds 5]

For each size N, a task run of N requests is recorded through `CassetteTransport`
(mode `record`, a mock provider behind it), then replayed from the file in order
(mode `replay`), then recorded again from nothing in mode `auto` (which looks each
request up before going live). The requests look like an agent conversation: every
step sends a new body, and every seventh step is retried once with the identical
body after a 529, so identical requests must come back in recorded order (the replay
checks every status and body).

Bodies keep a fixed-size window of the conversation, so that every N pays the same
per request for parsing its body and the figures show the lookup alone. Printed: ms
per request through the transport, ms per bare `play_response` (the lookup without
building an httpx2 response), the load of the file, and the ratio of the largest
to the smallest N. Times are CPU time of this process, each the best of --rounds,
so that a busy machine inflates them less than wall-clock time would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from vcr.request import Request as VcrRequest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness import context  # noqa: E402
from harness.cassettes import CassetteStore, CassetteTransport  # noqa: E402

URL = "http://127.0.0.1:9/v1/chat/completions"
MODEL, TASK = "openai:bench", "bench-task"
WINDOW = 6


def conversation(n: int) -> list[tuple[bytes, int]]:
    """(request body, status the provider answers) of the n attempts of one task run."""
    attempts: list[tuple[bytes, int]] = []
    step = 0
    while len(attempts) < n:
        step += 1
        messages = [{"role": "system", "content": "You are a careful agent. " * 8}]
        for turn in range(max(1, step - WINDOW), step + 1):
            messages.append({"role": "user", "content": f"step {turn}: run the next command " + "x" * 60})
            messages.append({"role": "assistant", "content": f"ran command {turn}, output " + "y" * 80})
        body = json.dumps({"model": "bench", "messages": messages, "temperature": 0}).encode()
        if step % 7 == 0 and len(attempts) + 1 < n:
            attempts.append((body, 529))  # overloaded, then the SDK retries the identical body
        attempts.append((body, 200))
    return attempts


def answer(index: int, status: int) -> bytes:
    return json.dumps({"id": f"resp-{index}", "status": status, "choices": [{"text": "ok " * 20}]}).encode()


class Provider:
    """Answers the planned attempts in order, like a provider that overloads now and then."""

    def __init__(self, plan: list[tuple[bytes, int]]) -> None:
        self.plan = plan
        self.sent = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        index = self.sent
        self.sent += 1
        status = self.plan[index][1]
        return httpx2.Response(
            status, content=answer(index, status), headers={"content-type": "application/json"}
        )


async def drive(transport: CassetteTransport, plan: list[tuple[bytes, int]], check: bool) -> float:
    """Send the plan through the transport; seconds spent in it."""
    spent = 0.0
    for index, (body, status) in enumerate(plan):
        request = httpx2.Request("POST", URL, content=body, headers={"content-type": "application/json"})
        with context.bind(model=MODEL, task_id=TASK, repeat=0, step=index + 1):
            started = time.process_time()
            response = await transport.handle_async_request(request)
            data = await response.aread()
            spent += time.process_time() - started
        if check and (response.status_code, data) != (status, answer(index, status)):
            raise SystemExit(f"replay differs at attempt {index}: {response.status_code} {data[:60]!r}")
    return spent


def measure(n: int, root: Path) -> dict[str, float]:
    plan = conversation(n)
    figures: dict[str, float] = {}

    store = CassetteStore(root / "rec", "bench", "record")
    transport = CassetteTransport(store, httpx2.MockTransport(Provider(plan)))
    figures["record"] = asyncio.run(drive(transport, plan, check=True)) / n
    started = time.process_time()
    store.save(MODEL, TASK, 0)
    figures["save"] = time.process_time() - started

    store = CassetteStore(root / "rec", "bench", "replay")
    started = time.process_time()
    store.cassette(MODEL, TASK, 0)
    figures["load"] = time.process_time() - started
    figures["replay"] = asyncio.run(drive(CassetteTransport(store), plan, check=True)) / n

    # The lookup alone: requests built beforehand, as the transport builds them.
    cassette = CassetteStore(root / "rec", "bench", "replay").cassette(MODEL, TASK, 0)
    requests = [VcrRequest("POST", URL, body, {"content-type": "application/json"}) for body, _ in plan]
    started = time.process_time()
    for request in requests:
        cassette.play_response(request)
    figures["lookup"] = (time.process_time() - started) / n

    store = CassetteStore(root / f"auto{n}", "bench", "auto")
    transport = CassetteTransport(store, httpx2.MockTransport(Provider(plan)))
    figures["auto"] = asyncio.run(drive(transport, plan, check=False)) / n
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 200, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    best: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cassettes-") as tmp:
        for rnd in range(args.rounds):
            for n in args.sizes:
                figures = measure(n, Path(tmp) / f"r{rnd}-n{n}")
                kept = best.setdefault(n, figures)
                for name, value in figures.items():
                    kept[name] = min(kept[name], value)
    ms = 1000.0
    print(
        f"{'requests':>8}  {'replay ms/req':>13}  {'lookup ms':>9}  {'record ms/req':>13}  {'auto ms/req':>11}  {'load ms':>8}  {'save ms':>8}"
    )
    for n in args.sizes:
        f = best[n]
        print(
            f"{n:>8}  {f['replay'] * ms:>13.3f}  {f['lookup'] * ms:>9.4f}  {f['record'] * ms:>13.3f}  "
            f"{f['auto'] * ms:>11.3f}  {f['load'] * ms:>8.1f}  {f['save'] * ms:>8.1f}"
        )
    small, large = min(args.sizes), max(args.sizes)
    if small != large:
        ratio = {k: best[large][k] / best[small][k] for k in ("replay", "lookup", "record", "auto")}
        print(
            f"ratio {large} vs {small}: replay {ratio['replay']:.2f}x, lookup {ratio['lookup']:.2f}x, "
            f"record {ratio['record']:.2f}x, auto {ratio['auto']:.2f}x"
        )


if __name__ == "__main__":
    main()
