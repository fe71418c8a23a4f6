"""How much does replaying a run cost, next to the SDKs merely parsing the same responses?

    .venv/bin/python scripts/bench_replay.py [--repeats 80]

1. Records a snitch run against the in-process simulator (three wire formats)
   into a temp cassette dir: about 10,000 exchanges at the default size.
2. Times a full offline replay of it (`ampbench run --cassettes replay`:
   matching, the ledger, ampbench's parsers, the agent loop, result files).
3. Times the SDKs alone on the same recorded responses: each response is served
   by an httpx2.MockTransport to the matching official SDK call, and the SDK
   parses it into its own types (`.parse()`), with nothing else around it.
4. Times ampbench's own parsers (`parse_exchange`) on the same bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import anthropic
import httpx2
import openai
from vcr.request import Request as VcrRequest

from harness.cassettes import CassetteStore, iter_cassette_files
from harness.runner import RunConfig, Runner
from harness.wire import parse_exchange, wire_for_path

MODELS = ["sim:thorough", "sim-anthropic:thorough", "sim-responses:terse"]


def run(out: Path, mode: str, cassettes: Path, repeats: int) -> float:
    config = RunConfig(
        suite="snitch",
        models=MODELS,
        repeats=repeats,
        concurrency=16,
        out=str(out),
        cassettes=mode,
        cassette_dir=str(cassettes),
    )
    started = time.perf_counter()
    Runner(config, progress=False).run()
    return time.perf_counter() - started


def recorded(cassettes: Path) -> list[tuple[str, dict, bytes, dict, int]]:
    """(path, request json, response body, headers, status) of every recorded interaction."""
    out = []
    for file in iter_cassette_files(cassettes):
        for it in json.loads(file.read_text())["interactions"]:
            req, resp = it["request"], it["response"]
            if resp.get("ampbench_exception") or resp["status"]["code"] != 200:
                continue
            path = req["uri"].split("://", 1)[1].split("/", 1)[1]
            headers = {k: v[0] for k, v in resp["headers"].items()}
            out.append(("/" + path, json.loads(req["body"]), resp["body"]["string"].encode(), headers, 200))
    return out


async def sdk_only(items: list[tuple[str, dict, bytes, dict, int]]) -> float:
    queue = list(items)

    def handler(request: httpx2.Request) -> httpx2.Response:
        _, _, body, headers, status = queue.pop(0)
        return httpx2.Response(status, headers=headers, content=body)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    ant = anthropic.AsyncAnthropic(api_key="x", base_url="http://sim", http_client=http, max_retries=0)
    oai = openai.AsyncOpenAI(api_key="x", base_url="http://sim/v1", http_client=http, max_retries=0)
    started = time.perf_counter()
    for path, body, *_ in items:
        wire = wire_for_path(path)
        stream = bool(body.get("stream"))
        if wire == "anthropic":
            call = ant.messages.create(**body)
        elif wire == "openai-chat":
            call = oai.chat.completions.create(**body)
        else:
            call = oai.responses.create(**body)
        result = await call
        if stream:  # the SDK parses events as they are iterated
            async for _ in result:
                pass
    return time.perf_counter() - started


def matching_only(cassettes: Path) -> float:
    """Load every cassette and look up every recorded request in it, as replay does."""
    store = CassetteStore(cassettes, "snitch", "replay")
    started = time.perf_counter()
    for file in iter_cassette_files(cassettes):
        model_dir, name = file.parent.name, file.stem
        task, _, repeat = name.rpartition("__r")
        cassette = store.cassette(model_dir, task, int(repeat))
        for request, _ in list(cassette.data):
            cassette.play_response(VcrRequest(request.method, request.uri, request.body, {}))
    return time.perf_counter() - started


def own_parsers(items: list[tuple[str, dict, bytes, dict, int]]) -> float:
    started = time.perf_counter()
    for path, _, body, headers, status in items:
        parse_exchange(path, body, content_type=headers.get("content-type", ""), status=status)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=80, help="repeats per task and model (80 gives about 10,000 exchanges)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ampbench-bench-replay-"))
    cassettes = tmp / "cassettes"
    t_record = run(tmp / "record", "record", cassettes, args.repeats)
    n = sum(1 for _ in (tmp / "record" / "exchanges.jsonl").open())
    t_replay = run(tmp / "replay", "replay", cassettes, args.repeats)
    items = recorded(cassettes)
    t_sdk = asyncio.run(sdk_only(items))
    t_parse = own_parsers(items)
    t_match = matching_only(cassettes)
    print(f"exchanges in the run:           {n:,} ({len(items):,} successful responses)")
    print(f"record against the simulator:   {t_record:6.2f} s")
    print(f"replay, whole run (offline):    {t_replay:6.2f} s  ({t_replay / n * 1e3:.2f} ms per exchange)")
    print(f"SDKs alone parsing the same:    {t_sdk:6.2f} s  ({t_sdk / len(items) * 1e3:.2f} ms per response)")
    print(f"ampbench parsers on the same:   {t_parse:6.2f} s")
    print(f"cassette load + matching only:  {t_match:6.2f} s")
    print(f"replay / SDK-only parsing:      {t_replay / t_sdk:6.2f}x")


if __name__ == "__main__":
    main()
