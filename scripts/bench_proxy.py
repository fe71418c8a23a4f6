"""Overhead of the counting proxy: added latency per exchange and time to first byte of a stream.

Sends the same requests to one simulator directly and through `ampbench
proxy` (in-process, on loopback), interleaved so that drift hits both alike,
and prints median and p90 of each, plus what the proxy adds.

    .venv/bin/python scripts/bench_proxy.py [--n 300] [--json]

Measured with httpx2 on one keep-alive connection per path, so the figures
are the proxy's own cost (parse, forward, relay, parse the response, write
the row), not connection setup. The load average before and after is
printed too: figures taken on a busy machine are not comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.proxy import ProxyConfig, ProxyThread  # noqa: E402
from harness.sim import SimServer  # noqa: E402

BODY = {
    "model": "terse",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "Benchmark: look the record up."}],
    "tools": [
        {
            "name": "lookup",
            "description": "Look a record up",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        }
    ],
}
HEADERS = {"x-api-key": "bench", "anthropic-version": "2023-06-01", "x-ampbench-session": "bench"}


def one(client: httpx2.Client, url: str, stream: bool) -> tuple[float, float]:
    """(time to first body byte, time to the end of the body), in milliseconds."""
    body = {**BODY, "stream": stream}
    started = time.perf_counter()
    with client.stream("POST", url + "/v1/messages", json=body, headers=HEADERS) as response:
        first = None
        for chunk in response.iter_raw():
            if first is None and chunk:
                first = time.perf_counter()
        response.raise_for_status()
    ended = time.perf_counter()
    return ((first or ended) - started) * 1000, (ended - started) * 1000


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="requests per path and mode")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with SimServer() as sim, tempfile.TemporaryDirectory() as tmp:
        proxy = ProxyThread(ProxyConfig(upstream=sim.url, out=Path(tmp) / "run")).start()
        samples: dict[str, dict[str, list[float]]] = {
            path: {"json_total": [], "sse_ttfb": [], "sse_total": []} for path in ("direct", "proxy")
        }
        try:
            with httpx2.Client(timeout=30) as direct, httpx2.Client(timeout=30) as proxied:
                clients = {"direct": (direct, sim.url), "proxy": (proxied, proxy.url)}
                for _ in range(10):  # warm-up: connections, imports, caches
                    for client, url in clients.values():
                        one(client, url, False)
                        one(client, url, True)
                for i in range(args.n):
                    order = ("direct", "proxy") if i % 2 == 0 else ("proxy", "direct")
                    for path in order:
                        client, url = clients[path]
                        samples[path]["json_total"].append(one(client, url, False)[1])
                        ttfb, total = one(client, url, True)
                        samples[path]["sse_ttfb"].append(ttfb)
                        samples[path]["sse_total"].append(total)
        finally:
            run_dir = proxy.stop()
        rows = len((run_dir / "exchanges.jsonl").read_text().splitlines())
        expected = 2 * (args.n + 10)
        if rows != expected:
            raise SystemExit(f"the proxy wrote {rows} exchange rows, expected {expected}")

    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    figures = {}
    for metric, label in (
        ("json_total", "JSON response, request to last byte"),
        ("sse_ttfb", "SSE stream, time to first byte"),
        ("sse_total", "SSE stream, request to last byte"),
    ):
        d_med, d_p90 = stats(samples["direct"][metric])
        p_med, p_p90 = stats(samples["proxy"][metric])
        figures[metric] = {
            "label": label,
            "direct_median_ms": round(d_med, 3),
            "proxy_median_ms": round(p_med, 3),
            "added_median_ms": round(p_med - d_med, 3),
            "direct_p90_ms": round(d_p90, 3),
            "proxy_p90_ms": round(p_p90, 3),
            "added_p90_ms": round(p_p90 - d_p90, 3),
        }
    if args.json:
        print(json.dumps({"n": args.n, "load_1min": load, "figures": figures}, indent=2))
        return
    print(
        f"ampbench proxy overhead, {args.n} requests per mode, simulator on loopback (ms); "
        f"1-minute load average {load['before']} before, {load['after']} after"
    )
    print(f"{'':40} {'direct':>16} {'proxy':>16} {'added':>16}")
    print(f"{'':40} {'median':>7} {'p90':>8} {'median':>7} {'p90':>8} {'median':>7} {'p90':>8}")
    for f in figures.values():
        print(
            f"{f['label']:40} {f['direct_median_ms']:7.2f} {f['direct_p90_ms']:8.2f} "
            f"{f['proxy_median_ms']:7.2f} {f['proxy_p90_ms']:8.2f} {f['added_median_ms']:7.2f} {f['added_p90_ms']:8.2f}"
        )


if __name__ == "__main__":
    main()
