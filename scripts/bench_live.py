"""What does ampbench cost per exchange next to a bare loop, the bare SDK and Inspect AI doing the same work?

    .venv/bin/python scripts/bench_live.py                       # 32 task runs at --concurrency 16, 3 rounds
    .venv/bin/python scripts/bench_live.py --task-runs 64 --concurrency 64 --faults 1.0 --fault-kinds slow
    .venv/bin/python scripts/bench_live.py --replay --only ampbench,replay,httpx2
    .venv/bin/python scripts/bench_live.py --task-runs 64 --marginal   # fixed vs per-exchange CPU
    .venv/bin/python scripts/bench_live.py --keep /tmp/bench-live   # keep every run's files

One `ampbench sim serve` process serves every run. Each implementation runs
the snitch suite (`--model sim:<profile>`) as its own subprocess, so its CPU
(user + sys) and peak RSS are its own, and the implementations take turns
(A B C D, A B C D, ...) so that a change in machine load hits all of them:

  ampbench  `ampbench run --sim-url` (ledger, retries, result files, summary)
  httpx2    asyncio + one httpx2.AsyncClient, JSON bodies built by hand, ampbench's retry policy
  sdk       the official openai.AsyncOpenAI, its own retries (max_retries=3: four attempts)
  inspect   Inspect AI: one Task, a sample per task run, a solver with the same tools and loop
  replay    `ampbench run --cassettes replay` of the warm-up's recording (with --replay; no server)

All of them send the conversations ampbench sends: the same system prompt,
documents, tool schemas, tool results (the suite's own simulated tools),
max_tokens, step limits and `x-ampbench-repeat` header, which the simulator
mixes into its answers. A warm-up round, not measured, records ampbench's
requests to cassettes and traces the httpx2 and sdk loops' requests: the
script checks that the bodies are the same. The simulator's stats are reset
before every run, so that what they count (requests, faults, the delay the
slow faults injected) is that run's.

Reported, median over the rounds: the simulator's own count of the requests
each implementation made, the implementation's own count, CPU seconds and
CPU ms per exchange, wall time, peak RSS, the simulator's CPU during the run,
and ratios to the bare httpx2 loop. Under slow faults, also ampbench's mean
recorded `latency_ms` and `ttfb_ms` (and the bare httpx2 loop's own timing)
next to the delay that the simulator's stats say it injected into the same
run, per exchange (when every exchange is slowed: per slowed exchange). CPU
per exchange includes each process's start-up; `--marginal` adds
4-task-run runs to split it into a fixed part and a cost per further
exchange. The exit status is 1 when the counts disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LIVE = ("ampbench", "httpx2", "sdk", "inspect")
ALL = (*LIVE, "replay")
BASELINE = "httpx2"
CHAT_PATH = "/v1/chat/completions"
SIM_KEY = "sim-not-a-secret"
# ampbench's defaults (harness/clients/base.py), so that the bare loops retry and time out alike.
MAX_ATTEMPTS = 4
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
MAX_WAIT_S = 60.0


# --------------------------------------------------------------------------- the workload


def snitch_workload(profile: str, suite_repeats: int) -> dict[str, Any]:
    """The snitch suite's tasks as plain JSON: every worker plays exactly what ampbench's runner would."""
    from suites.snitch.suite import SnitchSuite

    return {
        "model": profile,
        "repeats": suite_repeats,
        "tasks": [
            {
                "id": task.id,
                "system": task.system,
                "user_messages": list(task.user_messages),
                "tools": [
                    {"name": t.name, "description": t.description, "parameters": t.parameters}
                    for t in task.tools
                ],
                "max_tokens": task.options.max_tokens,
                "max_steps_per_turn": task.limits.max_steps_per_turn,
                "max_steps": task.limits.max_steps,
            }
            for task in SnitchSuite().tasks()
        ],
    }


def jobs(workload: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    # ampbench's order: every repeat of the first task, then the next task.
    return [(task, r) for task in workload["tasks"] for r in range(workload["repeats"])]


# --------------------------------------------------------------------------- bare loops (workers)


@dataclass
class Tally:
    """What a worker counted itself; written as JSON for the parent."""

    exchanges: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    task_runs: int = 0
    errors: int = 0
    latency_s: float = 0.0
    """Summed over the attempts it timed (the httpx2 loop only, around `client.post`)."""
    trace: list[tuple[int, str]] | None = None
    """(repeat, request body) of every attempt, in the warm-up only."""

    def result(self) -> dict[str, Any]:
        counts = {k: v for k, v in vars(self).items() if k not in ("latency_s", "trace")}
        latency_ms = self.latency_s / self.exchanges * 1000 if self.latency_s and self.exchanges else None
        return {**counts, "latency_ms": latency_ms}


Send = Callable[[dict[str, Any], int], Awaitable[dict[str, Any] | None]]


def parse_arguments(raw: str | None) -> dict[str, Any]:
    # As ampbench reads tool arguments: anything but a JSON object becomes {}.
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def assistant_message(reply: dict[str, Any]) -> dict[str, Any]:
    """The assistant message ampbench sends back for a reply (harness/wire/openai_chat.py)."""
    calls = [
        {
            "id": call.get("id") or f"call_{index}",
            "type": "function",
            "function": {
                "name": call["function"].get("name"),
                "arguments": call["function"].get("arguments") or "",
            },
        }
        for index, call in enumerate(reply.get("tool_calls") or [])
    ]
    content = reply.get("content")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": (content or None) if calls else (content or ""),
    }
    if isinstance(reply.get("reasoning_content"), str):
        message["reasoning_content"] = reply["reasoning_content"]
    if calls:
        message["tool_calls"] = calls
    return message


async def converse(task: dict[str, Any], repeat: int, model: str, send: Send, tally: Tally) -> None:
    """One task run, as harness/loop.py plays it: each document, then tool rounds until a plain answer."""
    from harness.conversation import ToolCall
    from suites.snitch.tools import SnitchEnvironment

    env = SnitchEnvironment(t["name"] for t in task["tools"])
    tools = [{"type": "function", "function": t} for t in task["tools"]]
    messages: list[dict[str, Any]] = [{"role": "system", "content": task["system"]}] if task["system"] else []
    steps = 0
    try:
        for text in task["user_messages"]:
            messages.append({"role": "user", "content": text})
            in_turn = 0
            while True:
                if in_turn >= task["max_steps_per_turn"] or steps >= task["max_steps"]:
                    return  # a step limit ends the whole task run, as in ampbench
                steps += 1
                in_turn += 1
                body: dict[str, Any] = {"model": model, "messages": messages}
                if tools:
                    body["tools"] = tools
                body["max_tokens"] = task["max_tokens"]
                body["stream"] = False
                reply = await send(body, repeat)
                if reply is None:
                    tally.errors += 1
                    return
                tally.model_calls += 1
                message = assistant_message(reply)
                messages.append(message)
                calls = message.get("tool_calls") or []
                if not calls:
                    break
                for call in calls:
                    raw = call["function"]["arguments"]
                    result = await env.execute(
                        ToolCall(call["id"], call["function"]["name"], parse_arguments(raw), raw)
                    )
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": result.content})
                tally.tool_calls += len(calls)
    finally:
        tally.task_runs += 1


async def run_all(workload: dict[str, Any], concurrency: int, send: Send, tally: Tally) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(task: dict[str, Any], repeat: int) -> None:
        async with semaphore:
            await converse(task, repeat, workload["model"], send, tally)

    await asyncio.gather(*(one(task, r) for task, r in jobs(workload)))


def retry_wait(attempt: int, headers: Any) -> float:
    """ampbench's wait before attempt `attempt + 1`: retry-after(-ms) if given, else 0.5 s doubling."""
    if headers is not None:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(name)
            if value is None:
                continue
            try:
                return min(MAX_WAIT_S, max(0.0, float(value) * scale))
            except ValueError:
                continue
    return min(MAX_WAIT_S, 0.5 * 2**attempt)


async def httpx2_worker(url: str, workload: dict[str, Any], concurrency: int, tally: Tally) -> None:
    import httpx2

    # One pooled connection per task run in flight: what a hand-written loop would size it to.
    client = httpx2.AsyncClient(
        base_url=url,
        headers={"authorization": f"Bearer {SIM_KEY}", "content-type": "application/json"},
        timeout=httpx2.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )

    async def send(body: dict[str, Any], repeat: int) -> dict[str, Any] | None:
        data = json.dumps(body)
        for attempt in range(MAX_ATTEMPTS):
            tally.exchanges += 1
            if tally.trace is not None:
                tally.trace.append((repeat, data))
            headers = {"x-stainless-retry-count": str(attempt), "x-ampbench-repeat": str(repeat)}
            response = None
            started = time.perf_counter()
            with contextlib.suppress(httpx2.TransportError):  # retried like a retryable status
                response = await client.post(CHAT_PATH, content=data, headers=headers)
            tally.latency_s += time.perf_counter() - started
            if response is not None:
                if response.status_code == 200:
                    try:
                        return response.json()["choices"][0]["message"]
                    except (ValueError, LookupError, TypeError):
                        pass  # ampbench retries a 200 it cannot read
                elif response.status_code not in RETRYABLE_STATUSES:
                    return None
            if attempt + 1 < MAX_ATTEMPTS:
                await asyncio.sleep(retry_wait(attempt, response.headers if response is not None else None))
        return None

    try:
        await run_all(workload, concurrency, send, tally)
    finally:
        await client.aclose()


async def sdk_worker(url: str, workload: dict[str, Any], concurrency: int, tally: Tally) -> None:
    import httpx2
    import openai

    async def count(request: httpx2.Request) -> None:
        tally.exchanges += 1
        if tally.trace is not None:
            tally.trace.append((int(request.headers.get("x-ampbench-repeat", 0)), request.content.decode()))

    client = openai.AsyncOpenAI(
        api_key=SIM_KEY,
        base_url=url + "/v1",
        max_retries=MAX_ATTEMPTS - 1,
        timeout=httpx2.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [count]}),
    )

    async def send(body: dict[str, Any], repeat: int) -> dict[str, Any] | None:
        try:
            completion = await client.chat.completions.create(
                **body, extra_headers={"x-ampbench-repeat": str(repeat)}
            )
        except openai.OpenAIError:
            return None
        message = completion.choices[0].message
        return {
            "content": message.content,
            "reasoning_content": getattr(message, "reasoning_content", None),
            "tool_calls": [
                {"id": c.id, "function": {"name": c.function.name, "arguments": c.function.arguments}}
                for c in message.tool_calls or []
            ],
        }

    try:
        await run_all(workload, concurrency, send, tally)
    finally:
        await client.close()


def inspect_worker(url: str, workload: dict[str, Any], concurrency: int, tally: Tally, log_dir: Path) -> None:
    """Inspect AI's eval() over one Task whose samples are the task runs.

    One Task rather than one per snitch test, so that `max_samples` bounds the
    task runs in flight exactly as `--concurrency` does for the others.
    """
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import (
        ChatMessageSystem,
        ChatMessageUser,
        GenerateConfig,
        execute_tools,
        get_model,
    )
    from inspect_ai.solver import Generate, TaskState, solver
    from inspect_ai.tool import ToolDef, ToolParams

    from harness.conversation import ToolCall
    from suites.snitch.tools import SnitchEnvironment

    by_id = {task["id"]: task for task in workload["tasks"]}

    def tool_defs(task: dict[str, Any]) -> list[ToolDef]:
        env = SnitchEnvironment(t["name"] for t in task["tools"])

        def make(name: str) -> Callable[..., Awaitable[str]]:
            async def execute(**arguments: Any) -> str:
                raw = json.dumps(arguments)
                return (await env.execute(ToolCall(name, name, arguments, raw))).content

            return execute

        return [
            ToolDef(
                make(t["name"]),
                name=t["name"],
                description=t["description"],
                parameters=ToolParams.model_validate(t["parameters"]),
            )
            for t in task["tools"]
        ]

    @solver
    def snitch_loop() -> Any:
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            task, repeat = by_id[state.metadata["task"]], state.metadata["repeat"]
            tools = tool_defs(task)
            model = get_model()
            config = GenerateConfig(
                max_tokens=task["max_tokens"], extra_headers={"x-ampbench-repeat": str(repeat)}
            )
            state.messages = [ChatMessageSystem(content=task["system"])]
            steps = 0
            for text in task["user_messages"]:
                state.messages.append(ChatMessageUser(content=text))
                in_turn = 0
                while True:
                    if in_turn >= task["max_steps_per_turn"] or steps >= task["max_steps"]:
                        return state
                    steps += 1
                    in_turn += 1
                    state.output = await model.generate(state.messages, tools, config=config)
                    state.messages.append(state.output.message)
                    if not state.output.message.tool_calls:
                        break
                    state.messages.extend((await execute_tools(state.messages, tools)).messages)
            return state

        return solve

    samples = [
        Sample(
            id=f"{task['id']}__r{r}",
            input=task["user_messages"][0],
            metadata={"task": task["id"], "repeat": r},
        )
        for task, r in jobs(workload)
    ]
    os.environ["SIM_API_KEY"] = SIM_KEY
    (log,) = eval(
        Task(dataset=samples, solver=snitch_loop(), name="snitch"),
        model=f"openai-api/sim/{workload['model']}",
        model_base_url=url + "/v1",
        model_args={"stream": False},
        max_samples=concurrency,
        max_connections=concurrency,
        max_tasks=1,
        log_dir=str(log_dir),
        display="none",
        log_level="error",
        score=False,
    )
    for sample in log.samples or []:
        tally.task_runs += 1
        tally.errors += sample.error is not None
        for event in sample.events:
            if event.event == "model":
                tally.model_calls += 1
            elif event.event == "tool":
                tally.tool_calls += 1
    # Inspect counts model calls, not HTTP attempts: its own count is its model calls.
    tally.exchanges = tally.model_calls


def worker_main(args: argparse.Namespace) -> None:
    workload = json.loads(Path(args.workload).read_text())
    tally = Tally(trace=[] if args.trace else None)
    if args.worker == "httpx2":
        asyncio.run(httpx2_worker(args.url, workload, args.concurrency, tally))
    elif args.worker == "sdk":
        asyncio.run(sdk_worker(args.url, workload, args.concurrency, tally))
    elif args.worker == "inspect":
        inspect_worker(args.url, workload, args.concurrency, tally, Path(args.log_dir))
    else:
        raise SystemExit(f"unknown worker {args.worker!r}")
    if args.trace:
        Path(args.trace).write_text("".join(json.dumps(request) + "\n" for request in tally.trace or []))
    Path(args.result).write_text(json.dumps(tally.result()))


# --------------------------------------------------------------------------- the parent


class Simulator:
    """`ampbench sim serve` in its own process: its URL, its counters, its CPU."""

    def __init__(self, ampbench: list[str], faults: float, seed: int, kinds: str | None) -> None:
        command = [*ampbench, "sim", "serve", "--port", "0", "--faults", str(faults), "--seed", str(seed)]
        if kinds:
            command += ["--fault-kinds", kinds]
        # Unbuffered, or the URL line waits in the child's buffer.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                break
        else:
            raise SystemExit("the simulator did not start:\n" + "".join(lines))
        # Keep draining its output so that it can never block on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def _call(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")

    def stats(self) -> dict[str, Any]:
        """Since the last reset: `requests`, `faults` by kind, `injected_delay_ms` (what slow faults slept)."""
        return self._call("GET", "/_sim/stats")

    def cpu_s(self) -> float | None:
        """User + system CPU of the simulator so far (Linux /proc), None elsewhere."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # its Ctrl-C path closes the listener cleanly
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Measure:
    """One run of one implementation."""

    name: str
    sim_requests: int
    own: int | None
    cpu_s: float
    wall_s: float
    rss_mb: float
    sim_cpu_s: float | None
    errors: int
    faults: dict[str, int]
    injected_ms: float
    """What the simulator's slow faults slept on purpose during the run (its stats' injected_delay_ms)."""
    latency_ms: float | None = None
    """Mean per exchange as the implementation timed it: ampbench's recorded latency_ms, httpx2's post."""
    ttfb_ms: float | None = None
    """ampbench's mean recorded ttfb_ms."""

    @property
    def exchanges(self) -> int:
        # A replay reaches no server: its exchanges are the ones it counted itself.
        return self.sim_requests if self.name != "replay" else (self.own or 0)

    @property
    def injected_per_exchange_ms(self) -> float:
        return self.injected_ms / self.sim_requests if self.sim_requests else 0.0


def run_child(
    command: list[str], log: Path, env: dict[str, str] | None, timeout_s: float
) -> tuple[float, Any]:
    """Run a command to its end; (wall seconds, its own rusage). Exits on failure."""
    with log.open("w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        # A hung child must not hang the benchmark.
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        try:
            # wait4, not wait: the rusage of this child alone (peak RSS cannot be had from deltas).
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise SystemExit(f"{' '.join(command[:4])} ... failed with exit code {code}:\n{tail}")
    return wall, usage


def own_figures(name: str, out: Path) -> dict[str, Any]:
    """What a run counted and timed itself: `own` exchanges, failed task runs, mean timings."""
    if name not in ("ampbench", "replay"):
        result = json.loads((out / "result.json").read_text())
        return {"own": result["exchanges"], "errors": result["errors"], "latency_ms": result["latency_ms"]}
    rows = [json.loads(line) for line in (out / "run" / "exchanges.jsonl").open() if line.strip()]
    with (out / "run" / "tasks.csv").open(newline="") as file:
        errors = sum(row.get("status") != "ok" for row in csv.DictReader(file))

    def mean(column: str) -> float | None:
        values = [row[column] for row in rows if isinstance(row.get(column), (int, float))]
        return statistics.fmean(values) if values else None

    return {"own": len(rows), "errors": errors, "latency_ms": mean("latency_ms"), "ttfb_ms": mean("ttfb_ms")}


@dataclass
class Bench:
    args: argparse.Namespace
    sim: Simulator
    ampbench: list[str]
    workdir: Path
    cassettes: Path
    runs: int = 0

    def workload(self, suite_repeats: int) -> Path:
        path = self.workdir / f"workload-{suite_repeats}.json"
        if not path.exists():
            path.write_text(json.dumps(snitch_workload(self.args.profile, suite_repeats)))
        return path

    def run(self, name: str, suite_repeats: int, *, warmup: bool = False) -> Measure:
        self.runs += 1
        out = self.workdir / f"{self.runs:03d}-{name}-{suite_repeats}{'-warmup' if warmup else ''}"
        out.mkdir(parents=True)
        command, env = self._command(name, suite_repeats, out, warmup)
        self.sim.reset()  # its stats are then this run's alone
        cpu_before = self.sim.cpu_s()
        wall, usage = run_child(command, out / "output.log", env, self.args.child_timeout)
        cpu_after = self.sim.cpu_s()
        stats = self.sim.stats()
        sim_cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        return Measure(
            name=name,
            sim_requests=stats["requests"],
            cpu_s=usage.ru_utime + usage.ru_stime,
            wall_s=wall,
            rss_mb=usage.ru_maxrss / 1024,
            sim_cpu_s=sim_cpu if name != "replay" else None,
            faults=stats["faults"],
            injected_ms=stats["injected_delay_ms"],
            **own_figures(name, out),
        )

    def _command(
        self, name: str, suite_repeats: int, out: Path, warmup: bool
    ) -> tuple[list[str], dict[str, str] | None]:
        args = self.args
        if name in ("ampbench", "replay"):
            command = [*self.ampbench, "run", "--suite", "snitch", "--model", f"sim:{args.profile}"]
            command += ["--concurrency", str(args.concurrency), "--repeats", str(suite_repeats)]
            command += ["--no-progress", "--out", str(out / "run")]
            if name == "replay":
                command += ["--cassettes", "replay", "--cassette-dir", str(self.cassettes)]
            else:
                command += ["--sim-url", self.sim.url]
                if warmup:  # what the replay plays and the bare loops' bodies are checked against
                    command += ["--cassettes", "record", "--cassette-dir", str(self.cassettes)]
            return command, None
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--url", self.sim.url]
        command += ["--workload", str(self.workload(suite_repeats)), "--concurrency", str(args.concurrency)]
        command += ["--result", str(out / "result.json"), "--log-dir", str(out / "logs")]
        if warmup and name in ("httpx2", "sdk"):
            command += ["--trace", str(out / "trace.jsonl")]
        return command, {**os.environ, "SIM_API_KEY": SIM_KEY}


# --------------------------------------------------------------------------- the same conversations?


Requests = Counter[tuple[int, str]]
"""How often each (x-ampbench-repeat, body as canonical JSON) was sent."""


def canonical(body: str) -> str:
    from harness.sim.view import canonical_json  # key order aside, as the simulator compares bodies

    return canonical_json(json.loads(body))


def recorded_requests(cassettes: Path) -> Requests:
    """ampbench's requests, as its warm-up recorded them to cassettes."""
    from harness.cassettes import iter_cassette_files

    requests: Requests = Counter()
    for file in iter_cassette_files(cassettes):
        for interaction in json.loads(file.read_text())["interactions"]:
            request = interaction["request"]
            headers = {k.lower(): v for k, v in request["headers"].items()}
            repeat = int(headers.get("x-ampbench-repeat", ["0"])[0])  # vcrpy keeps each header as a list
            requests[repeat, canonical(request["body"])] += 1
    return requests


def traced_requests(trace: Path) -> Requests:
    """A bare loop's requests, as its warm-up traced them."""
    return Counter((repeat, canonical(body)) for repeat, body in map(json.loads, trace.open()))


def compare_bodies(label: str, reference: Requests, other: Requests) -> str:
    if reference == other:
        return f"{label}: identical ({other.total()} requests)"
    missing, extra = reference - other, other - reference
    return (
        f"{label}: DIFFERENT ({other.total()} requests; {missing.total()} of ampbench's not sent, "
        f"{extra.total()} not ampbench's)"
    )


# --------------------------------------------------------------------------- the tables


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: dict[str, list[Measure]], names: list[str]) -> str:
    base = results.get(BASELINE)
    base_cpu = median(m.cpu_s / m.exchanges for m in base if m.exchanges) if base else None
    base_wall = median(m.wall_s for m in base) if base else None
    header = (
        "implementation",
        "sim count",
        "own count",
        "CPU s",
        "CPU ms/exch",
        f"x {BASELINE}",
        "wall s",
        f"x {BASELINE}",
        "peak RSS MB",
        "sim CPU s",
    )
    rows: list[tuple[str, ...]] = [header]
    for name in names:
        ms = results[name]
        own = [m.own for m in ms]
        cpu_per = median(m.cpu_s / m.exchanges * 1000 if m.exchanges else None for m in ms)
        wall = median(m.wall_s for m in ms)
        rows.append(
            (
                name,
                count_text([m.sim_requests for m in ms]),
                count_text(own),
                fmt(median(m.cpu_s for m in ms), ".2f"),
                fmt(cpu_per, ".2f"),
                fmt(cpu_per / 1000 / base_cpu if cpu_per is not None and base_cpu else None, ".2f"),
                fmt(wall, ".2f"),
                fmt(wall / base_wall if wall is not None and base_wall and name != "replay" else None, ".2f"),
                fmt(median(m.rss_mb for m in ms), ".0f"),
                fmt(median(m.sim_cpu_s for m in ms), ".2f"),
            )
        )
    return render(rows)


def marginal(big: list[Measure], small: list[Measure]) -> tuple[float | None, float | None]:
    """(fixed CPU s, marginal CPU s per exchange), medians of the per-round two-point estimates."""
    fixed, per = [], []
    for b, s in zip(big, small, strict=False):
        if b.exchanges > s.exchanges:
            slope = (b.cpu_s - s.cpu_s) / (b.exchanges - s.exchanges)
            per.append(slope)
            fixed.append(s.cpu_s - slope * s.exchanges)
    return median(fixed), median(per)


def marginal_table(
    results: dict[str, list[Measure]], small: dict[str, list[Measure]], names: list[str]
) -> str:
    base = marginal(results[BASELINE], small[BASELINE])[1] if BASELINE in results else None
    rows: list[tuple[str, ...]] = [
        ("implementation", "4-run CPU s", "fixed CPU s", "marginal CPU ms/exch", f"x {BASELINE}")
    ]
    for name in names:
        fixed, per = marginal(results[name], small[name])
        rows.append(
            (
                name,
                fmt(median(m.cpu_s for m in small[name]), ".2f"),
                fmt(fixed, ".2f"),
                fmt(per * 1000 if per is not None else None, ".2f"),
                fmt(per / base if per is not None and base else None, ".2f"),
            )
        )
    return render(rows)


def render(rows: list[tuple[str, ...]]) -> str:
    """A plain-text table: the first column left-aligned, numbers right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def count_text(counts: list[int | None]) -> str:
    """One number when every round agrees (as it must: the counts are deterministic)."""
    distinct = sorted({c for c in counts if c is not None})
    if not distinct:
        return "-"
    return str(distinct[0]) if len(distinct) == 1 else "/".join(map(str, distinct)) + " (VARIES)"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16, help="task runs in flight (default 16)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="measured rounds of every implementation (default 3)"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--task-runs", type=int, help="task runs per implementation, a multiple of 4 (default 32)"
    )
    size.add_argument("--suite-repeats", type=int, help="repeats of each of the 4 snitch tests (default 8)")
    parser.add_argument("--profile", default="thorough", help="simulator profile (default thorough)")
    parser.add_argument("--faults", type=float, default=0.0, help="simulator fault rate, 0-1 (default 0)")
    parser.add_argument("--fault-kinds", default=None, help="simulator fault kinds, e.g. slow (default all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulator's fault draw")
    parser.add_argument(
        "--replay", action="store_true", help="also time `ampbench run --cassettes replay` of the warm-up"
    )
    parser.add_argument("--only", help=f"comma-separated implementations to run, of {', '.join(ALL)}")
    parser.add_argument(
        "--marginal",
        action="store_true",
        help="also run each implementation on 4 task runs per round, to split fixed from per-exchange CPU",
    )
    parser.add_argument("--keep", type=Path, help="keep every run's files in this (new) directory")
    parser.add_argument(
        "--child-timeout", type=float, default=1800.0, help="seconds before a run is killed (default 1800)"
    )
    # A worker: one bare implementation, run by the parent as a subprocess.
    for flag in ("--worker", "--url", "--workload", "--result", "--trace", "--log-dir"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    if args.task_runs is not None:
        if args.task_runs < 4 or args.task_runs % 4:
            parser.error("--task-runs must be a positive multiple of 4 (the snitch suite has 4 tests)")
        args.suite_repeats = args.task_runs // 4
    elif args.suite_repeats is None:
        args.suite_repeats = 8
    if args.suite_repeats < 1 or args.concurrency < 1 or args.repeats < 1:
        parser.error("--suite-repeats, --concurrency and --repeats must be at least 1")
    if args.marginal and args.suite_repeats < 2:
        parser.error("--marginal needs more than 4 task runs (it compares them with 4)")
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(LIVE)
    if args.replay and "replay" not in names:
        names.append("replay")
    unknown = [n for n in names if n not in ALL]
    if unknown:
        parser.error(f"unknown implementation(s) {', '.join(unknown)} (available: {', '.join(ALL)})")
    args.names = list(dict.fromkeys(names))
    return args


def ampbench_command() -> list[str]:
    script = Path(sys.executable).parent / "ampbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "harness"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    names: list[str] = args.names
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)
        workdir = args.keep
        cleanup = None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="ampbench-bench-live-")
        workdir = Path(cleanup.name)
    ampbench = ampbench_command()
    size = args.suite_repeats
    load_before = os.getloadavg()
    print(
        f"snitch x sim:{args.profile}: {4 * size} task runs per run, --concurrency {args.concurrency}, "
        f"{args.repeats} rounds of {', '.join(names)}; faults {args.faults:g}"
        + (f" ({args.fault_kinds})" if args.fault_kinds else "")
        + f", seed {args.seed}"
        + ("; with 4-task-run runs for the marginal cost" if args.marginal else "")
    )
    print(f"load average at start: {load_before[0]:.1f} (cpus: {os.cpu_count()})")
    sim = Simulator(ampbench, args.faults, args.seed, args.fault_kinds)
    bench = Bench(args, sim, ampbench, workdir / "runs", workdir / "cassettes")
    results: dict[str, list[Measure]] = {n: [] for n in names}
    small: dict[str, list[Measure]] = {n: [] for n in names}
    try:
        # The warm-up, not measured: fills caches, records ampbench's requests, traces the bare loops'.
        warm_names = [n for n in names if n != "replay"]
        if "replay" in names and "ampbench" not in warm_names:
            warm_names.insert(0, "ampbench")  # its recording is what the replay plays
        # Bytecode as an installed package has it: with PYTHONDONTWRITEBYTECODE set, every
        # run would compile ampbench's modules from source again.
        for package in ("harness", "suites"):
            compileall.compile_dir(REPO / package, quiet=1)
        for name in warm_names:
            print(f"warm-up: {name} ...", flush=True)
            bench.run(name, size, warmup=True)
        for round_index in range(1, args.repeats + 1):
            sizes = [(size, results)] + ([(1, small)] if args.marginal else [])
            for suite_repeats, into in sizes:
                for name in names:
                    measure = bench.run(name, suite_repeats)
                    into[name].append(measure)
                    print(
                        f"round {round_index}/{args.repeats} {name:9} {measure.exchanges:6d} exchanges "
                        f"{measure.cpu_s:7.2f} s CPU {measure.wall_s:7.2f} s wall",
                        flush=True,
                    )
    finally:
        sim.stop()
    load_after = os.getloadavg()

    print()
    print(table(results, names))
    print()
    print(
        f"medians over {args.repeats} rounds; load average at end: {load_after[0]:.1f}. "
        "CPU per exchange divides by the simulator's count (replay reaches no server: by its own)."
    )
    print(
        "own count: ampbench and replay the rows of exchanges.jsonl, httpx2 its attempts, sdk the requests "
        "its HTTP client sent, inspect its model events (calls, not attempts)."
    )
    if args.marginal:
        print()
        print(marginal_table(results, small, names))
        print()
        print("fixed = CPU of a run beyond its exchanges (start-up, imports, result files), per round from")
        print(f"the {4 * size}- and 4-task-run runs; marginal = the CPU each further exchange costs.")
    print()
    counts_agree = report_counts(results, names, args)
    report_bodies(bench, names)
    report_delays(results, args)
    report_checks(results, small if args.marginal else None, args)
    if cleanup is not None:
        cleanup.cleanup()
    else:
        print(f"files kept in {workdir}")
    return 0 if counts_agree else 1


def report_counts(results: dict[str, list[Measure]], names: list[str], args: argparse.Namespace) -> bool:
    """Print whether the counts agree; False when a count that must agree does not."""
    ok = True
    live = [n for n in names if n != "replay"]
    counts = {n: {m.sim_requests for m in results[n]} for n in live}
    # Which requests fail is drawn from each request's body; Inspect's bodies are shaped
    # differently, so under failing faults it meets other failures and retries another number of times.
    failing = args.faults > 0 and set(args.fault_kinds.split(",") if args.fault_kinds else ["all"]) - {"slow"}
    exact = [n for n in live if not (failing and n == "inspect")]
    distinct = set().union(*(counts[n] for n in exact)) if exact else set()
    if len(distinct) <= 1:
        print(f"simulator counts agree: {next(iter(distinct), 0)} requests for each of {', '.join(exact)}")
    else:
        ok = False
        print("simulator counts DISAGREE: " + ", ".join(f"{n} {sorted(counts[n])}" for n in exact))
    if len(exact) < len(live):
        print(
            f"inspect: {sorted(counts['inspect'])} requests; not expected to match under failing faults "
            "(its request bodies differ, so the seeded draw fails other requests)"
        )
    if "ampbench" in results:
        own, sim = {m.own for m in results["ampbench"]}, counts["ampbench"]
        ok = ok and own == sim
        verdict = "equal" if own == sim else "DIFFER FROM"
        print(f"ampbench: exchanges.jsonl rows {sorted(own)} {verdict} the simulator's counts {sorted(sim)}")
    if "replay" in results:
        own = {m.own for m in results["replay"]}
        print(
            f"replay: exchanges.jsonl rows {sorted(own)} (the recording it plays was a live run like the above)"
        )
    for name in live:
        faults = results[name][-1].faults if results[name] else {}
        errors = max((m.errors for m in results[name]), default=0)
        if faults or errors:
            print(f"{name}: faults injected {faults or '{}'}, failed task runs {errors}")
    return ok


def report_bodies(bench: Bench, names: list[str]) -> None:
    """Whether the bare loops sent ampbench's requests in the warm-up (the same conversations)."""
    if bench.cassettes.is_dir():
        reference = recorded_requests(bench.cassettes)
        for trace in sorted(bench.workdir.glob("*-warmup/trace.jsonl")):
            label = f"request bodies of {trace.parent.name.split('-')[1]} vs ampbench's (warm-up)"
            print(compare_bodies(label, reference, traced_requests(trace)))
    if "inspect" in names:
        print(
            "request bodies of inspect: its own shape (adds tool_choice and strict to the tools, omits "
            "stream, re-serialises tool arguments), so not compared; the conversations are the same"
        )


def report_delays(results: dict[str, list[Measure]], args: argparse.Namespace) -> None:
    """ampbench's recorded timings (and the bare loop's own) next to the delay the simulator injected.

    Each run is set against its own stats. exchanges.jsonl does not say which requests
    were slowed, so a run's mean timing over its exchanges is compared with the delay
    injected per exchange of that run: the mean per slowed exchange when every one was.
    """
    timings: dict[str, dict[str, Callable[[Measure], float | None]]] = {
        "ampbench": {"recorded latency_ms": lambda m: m.latency_ms, "recorded ttfb_ms": lambda m: m.ttfb_ms},
        BASELINE: {"time around client.post": lambda m: m.latency_ms},
    }
    for name, taken in timings.items():
        runs = [m for m in results.get(name, []) if m.faults.get("slow")]
        if not runs:
            continue
        slowed = count_text([m.faults["slow"] for m in runs])
        per_slowed = median(m.injected_ms / m.faults["slow"] for m in runs) or 0.0
        line = f"{name}: {slowed} of {count_text([m.exchanges for m in runs])} exchanges slowed"
        line += f", by {per_slowed:.1f} ms on average"
        if any(m.faults["slow"] < m.exchanges for m in runs):
            line += f" ({median(m.injected_per_exchange_ms for m in runs) or 0.0:.1f} ms per exchange)"
        print(line + " (the simulator's stats)")
        for how, timing in taken.items():
            pairs = [(t, m.injected_per_exchange_ms) for m in runs if (t := timing(m)) is not None]
            if not pairs:
                continue
            mean = median(t for t, _ in pairs) or 0.0
            excess = median(t / injected - 1 for t, injected in pairs) or 0.0
            line = f"{name}: mean {how} {mean:.1f} ms, {excess * 100:+.1f}% over the injected delay"
            if how == "recorded latency_ms" and args.fault_kinds == "slow":
                line = f"check: {line} (within 20%: {'ok' if abs(excess) <= 0.2 else 'OVER'})"
            print(line)


def report_checks(
    results: dict[str, list[Measure]], small: dict[str, list[Measure]] | None, args: argparse.Namespace
) -> None:
    base = results.get(BASELINE)
    if not base:
        return
    base_cpu = median(m.cpu_s / m.exchanges for m in base if m.exchanges)
    for name in ("ampbench", "replay"):
        if name in results and base_cpu:
            ratio = (median(m.cpu_s / m.exchanges for m in results[name] if m.exchanges) or 0) / base_cpu
            print(
                f"check: {name} CPU per exchange {ratio:.2f}x the bare httpx2 loop's "
                f"(<= 2.5x: {'ok' if ratio <= 2.5 else 'OVER'})"
            )
            if small is not None:
                own, bare = marginal(results[name], small[name]), marginal(base, small[BASELINE])
                if own[1] is not None and bare[1]:
                    print(f"       marginal CPU per exchange {own[1] / bare[1]:.2f}x the bare httpx2 loop's")
    if "ampbench" in results and args.fault_kinds == "slow":
        ratio = (median(m.wall_s for m in results["ampbench"]) or 0) / (median(m.wall_s for m in base) or 1)
        print(
            f"check: ampbench wall time {ratio:.2f}x the bare httpx2 loop's (<= 2x: {'ok' if ratio <= 2 else 'OVER'})"
        )


if __name__ == "__main__":
    sys.exit(main())
