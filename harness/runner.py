"""Tasks x models x repeats, run concurrently, written as they finish.

Every count in a task's row of tasks.csv is computed from the ledger rows of
that task run (its exchanges) and from its tool-call rows, so each number is
traceable to the lines of exchanges.jsonl and tool_calls.jsonl that produced it.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

from harness import context, prices
from harness.cassettes import CassetteStore, CassetteTransport
from harness.clients import BaseClient, ClientSettings, ModelSpec, make_client, parse_spec
from harness.conversation import GenerateOptions, UserMessage
from harness.errors import AmpbenchError, UserError
from harness.ledger import Exchange
from harness.loop import TaskOutcome, run_task
from harness.results import RunWriter, completed_keys, git_sha, load, read_manifest, versions
from harness.tasks import Grade, Suite, Task

TaskKey = tuple[str, str, int]


@dataclass
class RunConfig:
    """Everything that defines a run; stored in manifest.json so `--resume` can repeat it."""

    suite: str
    """Suite name from the registry (`snitch`, `swe`, ...)."""
    models: list[str]
    """Model specs, e.g. `anthropic:claude-sonnet-4-5`, `sim:terse`."""
    repeats: int = 1
    """Runs of every task per model."""
    concurrency: int = 4
    """Task runs in flight at once."""
    out: str | None = None
    """Run directory; default `results/<run_id>`."""
    run_id: str | None = None
    """Default: `<suite>-<UTC time>-<random>`."""
    stream: bool = False
    """Ask providers for SSE streams."""
    judge: str | None = None
    """Model spec of an LLM judge; its exchanges are counted with role `judge`."""
    max_attempts: int = 4
    """HTTP attempts per model call, the first one included."""
    timeout_s: float = 120.0
    """Per-attempt HTTP timeout."""
    suite_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the suite adapter (e.g. `suite_dir`)."""
    task_ids: list[str] | None = None
    """Only these task ids."""
    max_tokens: int | None = None
    """Override of the suite's max_tokens per model call."""
    cassettes: str = "off"
    """Cassette mode: off, record, replay or auto."""
    cassette_dir: str = "cassettes"
    """Root folder of cassettes."""
    sim_faults: float = 0.0
    """Fault rate of the in-process simulator serving `sim:` models (0 = none)."""
    sim_seed: int = 0
    """Seed of the simulator's fault plan."""
    sim_fault_kinds: str = ""
    """Comma-separated fault kinds of the simulator (empty: all kinds)."""


def new_run_id(suite: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{suite}-{stamp}-{secrets.token_hex(2)}"


class RunSink:
    """The ledger sink of a run: writes each exchange and keeps it per task run."""

    def __init__(self, writer: RunWriter, on_exchange: Callable[[], None] | None = None) -> None:
        self.writer = writer
        self.by_task: dict[TaskKey, list[Exchange]] = defaultdict(list)
        self.tools: dict[TaskKey, list[dict[str, Any]]] = defaultdict(list)
        self.total = 0
        self._on_exchange = on_exchange

    def record(self, exchange: Exchange) -> None:
        self.writer.record(exchange)
        self.by_task[(exchange.task_id, exchange.model, exchange.repeat)].append(exchange)
        self.total += 1
        if self._on_exchange:
            self._on_exchange()

    def tool_call(self, row: dict[str, Any]) -> None:
        self.writer.tool_call(row)
        self.tools[(row["task_id"], row["model"], row["repeat"])].append(row)

    def pop(self, key: TaskKey) -> tuple[list[Exchange], list[dict[str, Any]]]:
        return self.by_task.pop(key, []), self.tools.pop(key, [])


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def task_row(
    *,
    run_id: str,
    task: Task,
    spec: ModelSpec,
    repeat: int,
    session: int,
    outcome: TaskOutcome,
    grade: Grade,
    exchanges: list[Exchange],
    tool_rows: list[dict[str, Any]],
    source: str,
) -> dict[str, Any]:
    """One tasks.csv row, computed from the task run's own exchanges and tool calls."""
    agent = [e for e in exchanges if e.role == "agent"]
    judge = [e for e in exchanges if e.role == "judge"]
    ok = [e for e in agent if e.status is not None and 200 <= e.status < 300 and not e.error]
    price = prices.price_for(spec.provider, spec.model)
    costs = [prices.cost_usd(price, asdict(e)) for e in agent]
    row: dict[str, Any] = {
        "run_id": run_id,
        "suite": task.suite,
        "task_id": task.id,
        "model": spec.spec,
        "simulated": spec.simulated or any(e.simulated for e in exchanges),
        "repeat": repeat,
        "session": session,
        "source": source,
        "status": outcome.status,
        "stop_reason": outcome.stop_reason,
        "user_turns": outcome.user_turns,
        "model_calls": outcome.model_calls,
        "format_errors": outcome.format_errors,
        "exchanges": len(agent),
        "retries": sum(1 for e in agent if e.attempt > 1),
        "failed_exchanges": len(agent) - len(ok),
        "tool_calls": len(tool_rows),
        "tool_calls_by_name": dict(sorted(Counter(r["tool"] for r in tool_rows).items())),
        "input_tokens": _sum([e.input_tokens for e in agent]),
        "output_tokens": _sum([e.output_tokens for e in agent]),
        "cache_read_input_tokens": _sum([e.cache_read_input_tokens for e in agent]),
        "cache_creation_input_tokens": _sum([e.cache_creation_input_tokens for e in agent]),
        "reasoning_tokens": _sum([e.reasoning_tokens for e in agent]),
        "visible_reasoning_chars": sum(e.visible_reasoning_chars for e in agent),
        # What the task's own prompt costs: the input of its first successful model call.
        "prompt_tokens": ok[0].input_tokens if ok else None,
        "judge_exchanges": len(judge),
        "judge_input_tokens": _sum([e.input_tokens for e in judge]),
        "judge_output_tokens": _sum([e.output_tokens for e in judge]),
        # Unknown prices give an empty cost; exchanges without usage (errors) cost nothing.
        "cost_usd": None if price is None else round(sum(c or 0.0 for c in costs), 6),
        "score": grade.score,
        "wall_s": outcome.wall_s,
        "error": outcome.error,
    }
    row.update(grade.details)
    return row


class ClientJudge:
    """A Judge backed by a model client; its exchanges carry role `judge`."""

    def __init__(self, client: BaseClient, max_tokens: int = 1024) -> None:
        self.client = client
        self.max_tokens = max_tokens

    async def ask(self, system: str, prompt: str) -> str:
        with context.bind(role="judge", step=0, user_turn=0):
            turn = await self.client.generate(
                system, [UserMessage(prompt)], [], GenerateOptions(max_tokens=self.max_tokens)
            )
        return turn.text


def _sim_url(spec: ModelSpec, url: str) -> ModelSpec:
    return replace(spec, base_url=url if spec.wire == "anthropic" else url + "/v1")


def _load_suite(config: RunConfig) -> tuple[Suite, list[Task]]:
    from suites import get_suite

    suite = get_suite(config.suite, **config.suite_options)
    tasks = suite.tasks()
    if config.task_ids:
        wanted = set(config.task_ids)
        unknown = wanted - {t.id for t in tasks}
        if unknown:
            raise UserError(f"unknown task id(s) {', '.join(sorted(unknown))} in suite {config.suite!r}")
        tasks = [t for t in tasks if t.id in wanted]
    if not tasks:
        raise UserError(f"suite {config.suite!r} has no tasks to run")
    return suite, tasks


class Runner:
    """Runs one configured run to the end (or to an interrupt) and writes its files."""

    def __init__(self, config: RunConfig, *, resume_dir: Path | None = None, progress: bool = True) -> None:
        self.config = config
        self.resume_dir = resume_dir
        self.show_progress = progress
        self.store: CassetteStore | None = None
        self._sim: Any = None

    def prepare(self) -> tuple[Suite, list[Task], list[ModelSpec], ModelSpec | None]:
        """Validate everything before a directory is created: bad input leaves nothing behind."""
        config = self.config
        if config.repeats < 1:
            raise UserError("--repeats must be at least 1")
        if config.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        if not config.models:
            raise UserError("no model given: pass --model PROVIDER:MODEL (e.g. --model sim:terse)")
        if config.cassettes not in ("off", "record", "replay", "auto"):
            raise UserError(
                f"unknown cassette mode {config.cassettes!r} (available: off, record, replay, auto)"
            )
        suite, tasks = _load_suite(config)
        replay = config.cassettes == "replay"
        specs = [parse_spec(m, require_key=not replay) for m in config.models]
        if len({s.spec for s in specs}) != len(specs):
            raise UserError("the same --model is given twice")
        judge = parse_spec(config.judge, require_key=not replay) if config.judge else None
        if replay and not Path(config.cassette_dir).is_dir():
            raise UserError(
                f"cassette directory {config.cassette_dir} does not exist; record first with --cassettes record"
            )
        return suite, tasks, specs, judge

    def _attach_simulator(
        self, specs: list[ModelSpec], judge: ModelSpec | None
    ) -> tuple[list[ModelSpec], ModelSpec | None]:
        if not any(s.simulated for s in [*specs, judge] if s is not None):
            return specs, judge
        if self.config.cassettes == "replay":
            # Nothing leaves the machine on replay and hosts are not matched: any valid URL will do.
            url = "http://simulator.invalid"
        elif self.config.sim_faults:
            from harness.sim.faults import parse_kinds
            from harness.sim.server import SimServer

            try:
                kinds = parse_kinds(self.config.sim_fault_kinds)
            except ValueError as exc:
                raise UserError(f"--sim-fault-kinds: {exc}") from None
            self._sim = SimServer(
                faults=self.config.sim_faults, seed=self.config.sim_seed, fault_kinds=kinds
            ).start()
            url = self._sim.url
        else:
            from harness.sim.server import shared_server

            url = shared_server().url
        specs = [_sim_url(s, url) if s.simulated else s for s in specs]
        if judge is not None and judge.simulated:
            judge = _sim_url(judge, url)
        return specs, judge

    def run(self) -> Path:
        suite, tasks, specs, judge_spec = self.prepare()
        config = self.config
        if self.resume_dir is not None:
            run_dir = self.resume_dir
            run_id = read_manifest(run_dir)["run_id"]
            done = completed_keys(run_dir)
        else:
            run_id = config.run_id or new_run_id(config.suite)
            config.run_id = run_id
            run_dir = Path(config.out) if config.out else Path("results") / run_id
            if run_dir.exists() and any(run_dir.iterdir()):
                raise UserError(
                    f"{run_dir} already exists and is not empty; choose another --out or use --resume {run_dir}"
                )
            if run_dir.exists():
                run_dir.rmdir()
            done = set()
        specs, judge_spec = self._attach_simulator(specs, judge_spec)
        manifest = {
            "run_id": run_id,
            "kind": "run",
            "versions": versions(),
            "git_sha": git_sha(),
            "config": asdict(config),
            "models": [
                {
                    "spec": s.spec,
                    "provider": s.provider,
                    "model": s.model,
                    "wire": s.wire,
                    "simulated": s.simulated,
                }
                for s in specs
            ],
            "suite": config.suite,
            "cassette_mode": config.cassettes,
        }
        extra = list(getattr(suite, "extra_columns", ()))
        writer = RunWriter(run_dir, manifest, extra_task_columns=extra, resume=self.resume_dir is not None)
        jobs = [
            (task, spec, r)
            for spec in specs
            for task in tasks
            for r in range(config.repeats)
            if (task.id, spec.spec, r) not in done
        ]
        try:
            asyncio.run(self._run_all(suite, jobs, specs, judge_spec, writer, run_id))
        except BaseException:
            writer.finish("interrupted")
            print(
                f"run interrupted: {len(completed_keys(run_dir))} task runs are in {run_dir}; "
                f"finish it with: ampbench run --resume {run_dir}",
                file=sys.stderr,
            )
            raise
        finally:
            if self._sim is not None:
                self._sim.stop()
        from harness.report import summary_markdown

        writer.finish("complete", summarize=lambda d: summary_markdown(load(d)))
        return run_dir

    async def _run_all(
        self,
        suite: Suite,
        jobs: list[tuple[Task, ModelSpec, int]],
        specs: list[ModelSpec],
        judge_spec: ModelSpec | None,
        writer: RunWriter,
        run_id: str,
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        config = self.config
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks · {task.fields[exchanges]} exchanges"),
            TimeElapsedColumn(),
            disable=not self.show_progress,
            transient=False,
        )
        bar = progress.add_task(f"{config.suite}", total=len(jobs), exchanges=0)
        sink = RunSink(writer, on_exchange=lambda: progress.update(bar, exchanges=sink.total))
        settings = ClientSettings(sink=sink, max_attempts=config.max_attempts, timeout_s=config.timeout_s)
        store = None
        if config.cassettes != "off":
            store = CassetteStore(
                Path(config.cassette_dir),
                config.suite,
                config.cassettes,
                secrets=tuple(s.api_key for s in [*specs, judge_spec] if s is not None and s.api_key),
            )
            live = None if config.cassettes == "replay" else httpx2.AsyncHTTPTransport
            settings.inner_transport = lambda: CassetteTransport(store, live() if live else None)
            if config.cassettes == "replay":
                settings.retry_wait_scale = 0.0
        self.store = store
        clients = {s.spec: make_client(s, settings) for s in specs}
        judge = ClientJudge(make_client(judge_spec, settings)) if judge_spec else None
        semaphore = asyncio.Semaphore(config.concurrency)
        session = writer.session

        async def one(task: Task, spec: ModelSpec, repeat: int) -> None:
            async with semaphore:
                with context.bind(
                    run_id=run_id,
                    task_id=task.id,
                    model=spec.spec,
                    repeat=repeat,
                    session=session,
                    step=0,
                    user_turn=0,
                    role="agent",
                    attempt=1,
                ):
                    await self._run_one(
                        suite, task, spec, repeat, session, clients[spec.spec], judge, sink, writer, run_id
                    )
                progress.advance(bar)

        with progress:
            try:
                await asyncio.gather(*(one(t, s, r) for t, s, r in jobs))
            finally:
                for client in clients.values():
                    await client.aclose()
                if judge is not None:
                    await judge.client.aclose()

    async def _run_one(
        self,
        suite: Suite,
        task: Task,
        spec: ModelSpec,
        repeat: int,
        session: int,
        client: BaseClient,
        judge: ClientJudge | None,
        sink: RunSink,
        writer: RunWriter,
        run_id: str,
    ) -> None:
        config = self.config
        source = "replay" if config.cassettes == "replay" else ("sim" if spec.simulated else "live")
        options = replace(task.options, stream=config.stream)
        if config.max_tokens:
            options = replace(options, max_tokens=config.max_tokens)
        price = prices.price_for(spec.provider, spec.model)
        started = time.monotonic()
        env = None
        try:
            # Making an environment may block (a workspace checkout): keep the other task runs going.
            env = await asyncio.to_thread(suite.environment, task)
            outcome = await run_task(
                task,
                client,
                env,
                options=options,
                tool_log=sink.tool_call,
                price=(lambda turn: prices.cost_usd(price, turn.usage)) if price else None,
                scaffold=suite.scaffold(task) if hasattr(suite, "scaffold") else None,
            )
            try:
                grade = await suite.grade(task, outcome.transcript, env, judge)
            except AmpbenchError as exc:
                grade = Grade(score=None, details={"grade_error": str(exc)})
        except Exception as exc:  # a bug in a suite must not take the whole run down
            outcome = TaskOutcome(status="error", stop_reason="error", error=f"{type(exc).__name__}: {exc}")
            grade = Grade(score=None)
        finally:
            if env is not None:
                await env.close()
        outcome.wall_s = round(time.monotonic() - started, 3)
        if hasattr(suite, "write_artifacts"):
            suite.write_artifacts(writer.dir, task, spec.spec, repeat, grade)
        if self.store is not None:
            self.store.save(spec.spec, task.id, repeat)
        exchanges, tool_rows = sink.pop((task.id, spec.spec, repeat))
        writer.task(
            task_row(
                run_id=run_id,
                task=task,
                spec=spec,
                repeat=repeat,
                session=session,
                outcome=outcome,
                grade=grade,
                exchanges=exchanges,
                tool_rows=tool_rows,
                source=source,
            )
        )
