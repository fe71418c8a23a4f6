"""Tasks x models x repeats, run concurrently, written as they finish.

Every count in a task's row of tasks.csv is computed from the ledger rows of
that task run (its exchanges) and from its tool-call rows, so each number is
traceable to the lines of exchanges.jsonl and tool_calls.jsonl that produced it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import secrets
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

from harness import context, prices
from harness.clients import BaseClient, ClientSettings, ModelSpec, make_client, parse_spec
from harness.conversation import GenerateOptions, UserMessage
from harness.errors import AmpbenchError, Interrupted, UserError
from harness.imports import heap_frozen
from harness.loop import TaskOutcome, run_task
from harness.pacing import Pacer, RatePacer
from harness.records import Exchange, summarise
from harness.redact import Scrubber
from harness.results import RunData, RunWriter, completed_keys, git_sha, read_manifest, read_run, versions
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
    sim_url: str | None = None
    """A simulator already serving (`ampbench sim serve`) instead of one in this process."""
    executor: str = "local"
    """Where task runs run: `local` (this process) or `ray` (a Ray cluster; harness.ray_executor)."""
    ray_address: str | None = None
    """The Ray cluster to join (`ray start --head`'s address); None starts a local one."""
    rpm: float | None = None
    """Requests per minute per provider, over all task runs (and all nodes of a cluster)."""


def new_run_id(suite: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{suite}-{stamp}-{secrets.token_hex(2)}"


class RunSink:
    """The ledger sink of a run: writes each exchange and keeps its row per task run."""

    def __init__(self, writer: RunWriter, on_exchange: Callable[[], None] | None = None) -> None:
        self.writer = writer
        self.by_task: dict[TaskKey, list[dict[str, Any]]] = defaultdict(list)
        self.tools: dict[TaskKey, list[dict[str, Any]]] = defaultdict(list)
        self.total = 0
        self._on_exchange = on_exchange

    def record(self, exchange: Exchange) -> None:
        row = exchange.to_dict()
        self.writer.write_exchange_row(row)
        self.by_task[(exchange.task_id, exchange.model, exchange.repeat)].append(row)
        self.total += exchange.sent
        if self._on_exchange:
            self._on_exchange()

    def add_secret(self, value: str) -> None:
        self.writer.scrub.add(value)

    def tool_call(self, row: dict[str, Any]) -> None:
        self.writer.tool_call(row)
        self.tools[(row["task_id"], row["model"], row["repeat"])].append(row)

    def pop(self, key: TaskKey) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.by_task.pop(key, []), self.tools.pop(key, [])


def task_row(
    *,
    run_id: str,
    task: Task,
    spec: ModelSpec,
    repeat: int,
    session: int,
    outcome: TaskOutcome,
    grade: Grade,
    exchanges: list[dict[str, Any]],
    tool_rows: list[dict[str, Any]],
    source: str,
) -> dict[str, Any]:
    """One tasks.csv row: `summarise` over the task run's rows, with what the loop knows better."""
    price = prices.price_for(spec.provider, spec.model)
    row = summarise(
        exchanges,
        tool_rows,
        cost=(lambda r: prices.cost_usd(price, r)) if price else None,
        run_id=run_id,
        suite=task.suite,
        task_id=task.id,
        model=spec.spec,
        simulated=spec.simulated,
        repeat=repeat,
        session=session,
        source=source,
        status=outcome.status,
        stop_reason=outcome.stop_reason,
        user_turns=outcome.user_turns,
        model_calls=outcome.model_calls,
        format_errors=outcome.format_errors,
        score=grade.score,
        wall_s=outcome.wall_s,
        error=outcome.error,
    )
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


def client_settings(
    config: RunConfig, sink: Any, scrubber: Scrubber | None, pacer: Pacer | None = None
) -> tuple[ClientSettings, Any]:
    """The model clients' settings of a run (ledger sink, attempts, timeout, the request budget:
    `pacer`, else one of `--rpm` for this process) and its CassetteStore (None when cassettes
    are off), for this process's task runs."""
    settings = ClientSettings(
        sink=sink,
        max_attempts=config.max_attempts,
        timeout_s=config.timeout_s,
        pacer=pacer or (RatePacer(config.rpm) if config.rpm else None),
    )
    if config.cassettes == "off":
        return settings, None
    # Imported here: vcrpy (and the HTTP libraries it patches) cost a live run's startup.
    from harness.cassettes import CassetteStore, CassetteTransport

    store = CassetteStore(Path(config.cassette_dir), config.suite, config.cassettes, scrubber=scrubber)
    live = None if config.cassettes == "replay" else httpx2.AsyncHTTPTransport
    settings.inner_transport = lambda: CassetteTransport(store, live() if live else None)
    if config.cassettes == "replay":
        settings.retry_wait_scale = 0.0
    return settings, store


async def execute_task_run(
    config: RunConfig,
    suite: Suite,
    task: Task,
    spec: ModelSpec,
    repeat: int,
    session: int,
    client: BaseClient,
    judge: ClientJudge | None,
    sink: Any,
    store: Any,
    run_id: str,
) -> tuple[dict[str, Any], Grade, str]:
    """Run one task run to its end: environment, agent loop, grade, cassettes saved.
    Returns its tasks.csv row, its grade (artifacts included) and its status; a failure of
    the suite is an errored row, never an exception. Runs where the task run runs: in this
    process, or on a cluster node (harness.ray_executor)."""
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
    if store is not None:
        store.save(spec.spec, task.id, repeat)
    exchanges, tool_rows = sink.pop((task.id, spec.spec, repeat))
    row = task_row(
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
    return row, grade, outcome.status


RAY_MISSING = "--executor ray needs Ray: pip install 'ampbench[ray]'"


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


def _check_writable_dir(path: Path, flag: str) -> None:
    """A directory can be made at `path`: nothing on the way there is a file."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is a file, not a directory")
            return


def _check_run_id(run_id: str) -> None:
    # The run id names a folder under results/: it must stay there.
    if not run_id or run_id in (".", "..") or any(c in run_id for c in "/\\\0") or run_id.startswith("."):
        raise UserError(f"--run-id {run_id!r} must be a plain folder name (no '/', no leading '.')")


def _progress_bar() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tasks · {task.fields[exchanges]} exchanges"),
        TimeElapsedColumn(),
        transient=False,
    )


class _NoProgress:
    """What `--no-progress` runs with instead of rich's bar (which it need not import)."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class _Started:
    """A run whose directory and writer exist, and the task runs it still has to do."""

    suite: Suite
    jobs: list[tuple[Task, ModelSpec, int]]
    specs: list[ModelSpec]
    judge_spec: ModelSpec | None
    writer: RunWriter
    run_id: str
    run_dir: Path


class Runner:
    """Runs one configured run to the end (or to an interrupt) and writes its files."""

    def __init__(self, config: RunConfig, *, resume_dir: Path | None = None, progress: bool = True) -> None:
        self.config = config
        self.resume_dir = resume_dir
        self.show_progress = progress
        self.store: Any = None
        """The run's CassetteStore, when cassettes are on."""
        self._sim: Any = None
        self._terminated = False
        self.data: RunData | None = None
        """The finished run as loaded for summary.md (None until `run` completes)."""
        self._main: asyncio.Task[Any] | None = None
        """The task SIGTERM cancels: the one running every run of `run_together`."""
        self._shared: asyncio.Semaphore | None = None
        """Slots the task runs of this run share with those of other runs (`run_together`)."""

    def prepare(self) -> tuple[Suite, list[Task], list[ModelSpec], ModelSpec | None]:
        """Validate everything before a directory is created: bad input leaves nothing behind."""
        config = self.config
        if config.repeats < 1:
            raise UserError("--repeats must be at least 1")
        if config.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        if config.executor not in ("local", "ray"):
            raise UserError(f"unknown executor {config.executor!r} (available: local, ray)")
        if config.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise UserError(RAY_MISSING)
        if config.ray_address is not None and config.executor != "ray":
            raise UserError("--ray-address is for --executor ray")
        if config.rpm is not None and not config.rpm > 0:
            raise UserError(f"--rpm is a positive number of requests per minute (got {config.rpm})")
        if config.max_attempts < 1:
            raise UserError(f"--max-attempts must be at least 1 (got {config.max_attempts})")
        if not config.timeout_s > 0:
            raise UserError(f"--timeout must be a positive number of seconds (got {config.timeout_s})")
        if config.max_tokens is not None and config.max_tokens < 1:
            raise UserError(f"--max-tokens must be at least 1 (got {config.max_tokens})")
        if not 0.0 <= config.sim_faults <= 1.0:
            raise UserError(f"--sim-faults is a rate between 0 and 1 (got {config.sim_faults})")
        if config.sim_url is not None:
            if not config.sim_url.startswith(("http://", "https://")):
                raise UserError(f"--sim-url {config.sim_url!r} must start with http:// or https://")
            if config.sim_faults or config.sim_fault_kinds:
                raise UserError(
                    "--sim-faults and --sim-fault-kinds set up an in-process simulator; "
                    "give faults to `ampbench sim serve` when using --sim-url"
                )
        if (
            config.cassettes != "off"
            and Path(config.cassette_dir).exists()
            and not Path(config.cassette_dir).is_dir()
        ):
            raise UserError(f"--cassette-dir {config.cassette_dir} is a file, not a directory")
        if config.out is not None:
            _check_writable_dir(Path(config.out), "--out")
        if config.run_id is not None:
            _check_run_id(config.run_id)
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
        elif self.config.sim_url is not None:
            # A simulator in its own process: its CPU is not this run's, as with a real provider.
            url = self.config.sim_url.rstrip("/").removesuffix("/v1")
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
        """Run to the end (or to an interrupt) and write the run directory; its path."""
        return run_together([self])[0]

    def _begin(self, prepared: tuple[Suite, list[Task], list[ModelSpec], ModelSpec | None]) -> _Started:
        """Create the run directory and its writer; the task runs still to do."""
        suite, tasks, specs, judge_spec = prepared
        config = self.config
        # What an earlier run killed with SIGKILL left behind (workspaces, their processes).
        for line in getattr(suite, "clean_stale", lambda: [])():
            print(f"note: {line}", file=sys.stderr)
        if self.resume_dir is not None:
            run_dir = self.resume_dir
            run_id = str(read_manifest(run_dir).get("run_id") or run_dir.name)
            completed_keys(run_dir)  # a damaged tasks.csv stops here, before anything is written
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
            # Suite options that change the agent (e.g. the SWE scaffold): compare groups by them.
            "variant": {k: str(v) for k, v in dict(getattr(suite, "variant", {}) or {}).items()},
            "cassette_mode": config.cassettes,
        }
        extra = list(getattr(suite, "extra_columns", ()))
        scrubber = Scrubber(s.api_key for s in [*specs, judge_spec] if s is not None)
        for s in [*specs, judge_spec]:
            scrubber.add_url(s.base_url if s is not None else None)
        writer = RunWriter(
            run_dir,
            manifest,
            extra_task_columns=extra,
            resume=self.resume_dir is not None,
            scrubber=scrubber,
        )
        for line in writer.repaired:
            print(f"note: {line}; its task run runs again", file=sys.stderr)
        # Read under the run's lock: what another process finished before it is not run twice.
        done = completed_keys(run_dir) if self.resume_dir is not None else set()
        jobs = [
            (task, spec, r)
            for spec in specs
            for task in tasks
            for r in range(config.repeats)
            if (task.id, spec.spec, r) not in done
        ]
        self._terminated = False
        return _Started(suite, jobs, specs, judge_spec, writer, run_id, run_dir)

    def _interrupted(self, started: _Started) -> str:
        started.writer.finish("interrupted")
        return (
            f"run interrupted: {len(completed_keys(started.run_dir))} task runs are in {started.run_dir}; "
            f"finish it with: ampbench run --resume {started.run_dir}"
        )

    def _end(self, started: _Started) -> Path:
        from harness.report import summary_markdown

        def summarize(directory: Path) -> str:
            # Loaded once, after the final manifest is written: summary.md and the CLI share it.
            self.data = read_run(directory)
            return summary_markdown(self.data)

        started.writer.finish("complete", summarize=summarize)
        return started.run_dir

    def _stop_simulator(self) -> None:
        # Stopping twice is a no-op; the stopped simulator still answers for its counts (`stats`).
        if self._sim is not None:
            self._sim.stop()

    def _stop_on_sigterm(self) -> None:
        """SIGTERM (a scheduler or `kill`) stops the run like Ctrl-C: the main task is cancelled
        from inside the event loop (never an exception raised at a random bytecode), task runs
        in flight are cancelled, their environments closed, and the manifest says `interrupted`."""
        main = self._main or asyncio.current_task()

        def terminate() -> None:
            self._terminated = True
            if main is not None:
                main.cancel()

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)

    async def _run_all(
        self,
        suite: Suite,
        jobs: list[tuple[Task, ModelSpec, int]],
        specs: list[ModelSpec],
        judge_spec: ModelSpec | None,
        writer: RunWriter,
        run_id: str,
    ) -> None:
        config = self.config
        self._stop_on_sigterm()
        progress = _progress_bar() if self.show_progress else _NoProgress()
        bar = progress.add_task(f"{config.suite}", total=len(jobs), exchanges=0)
        # rich redraws on its own clock; with no bar shown there is nothing to update per exchange.
        sink = RunSink(
            writer,
            on_exchange=(lambda: progress.update(bar, exchanges=sink.total)) if self.show_progress else None,
        )
        settings, store = client_settings(config, sink, writer.scrub)
        self.store = store
        clients = {s.spec: make_client(s, settings) for s in specs}
        judge = ClientJudge(make_client(judge_spec, settings)) if judge_spec else None
        for client in [*clients.values(), *([judge.client] if judge else [])]:
            client.load_sdk()  # before the heap is frozen below, so that the SDK is frozen too
        semaphore = asyncio.Semaphore(config.concurrency)
        session = writer.session

        async def one(task: Task, spec: ModelSpec, repeat: int) -> None:
            async with semaphore, self._shared or contextlib.nullcontext():
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

        # Everything loaded so far (libraries, SDK, suite, settings) outlives the task runs:
        # the collector's full passes need not walk it again and again.
        with progress, heap_frozen():
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
        row, grade, status = await execute_task_run(
            self.config, suite, task, spec, repeat, session, client, judge, sink, self.store, run_id
        )
        # An errored task run has no prediction: an empty patch would read as a real, failed attempt.
        if hasattr(suite, "write_artifacts") and status != "error":
            suite.write_artifacts(writer.dir, task, spec.spec, repeat, grade)
        writer.task(row)


def run_together(runners: list[Runner], *, concurrency: int | None = None) -> list[Path]:
    """Run several runs at once, in one event loop; their directories, in order.

    Each run keeps its own concurrency. With `concurrency`, the task runs of all of them
    also draw on that many shared slots: a run with one slot (a local model's) or a short one
    then overlaps the others instead of leaving the machine idle before or after them. Every
    run is validated before any directory is written, each is finished as soon as its last
    task run is, and an interrupt ends those still going as `interrupted`.
    """
    if sum(r.show_progress for r in runners) > 1:
        raise ValueError("one progress display at a time: run the others with progress=False")
    prepared = [r.prepare() for r in runners]
    started: list[tuple[Runner, _Started]] = []
    finished: set[Runner] = set()

    async def one(runner: Runner, run: _Started) -> Path:
        await runner._run_all(run.suite, run.jobs, run.specs, run.judge_spec, run.writer, run.run_id)
        runner._stop_simulator()
        path = runner._end(run)
        finished.add(runner)
        return path

    async def main() -> list[Path]:
        shared = asyncio.Semaphore(concurrency) if concurrency else None
        for runner, _ in started:
            runner._main, runner._shared = asyncio.current_task(), shared
        return list(await asyncio.gather(*(one(runner, run) for runner, run in started)))

    try:
        for runner, inputs in zip(runners, prepared, strict=True):
            started.append((runner, runner._begin(inputs)))
        return asyncio.run(main())
    except BaseException as exc:
        going = [(runner, run) for runner, run in started if runner not in finished]
        messages = [runner._interrupted(run) for runner, run in going]
        stopped = isinstance(exc, asyncio.CancelledError) and any(r._terminated for r, _ in started)
        if isinstance(exc, KeyboardInterrupt) or stopped:
            raise Interrupted("\n".join(messages) or "run interrupted") from None
        for message in messages:
            print(message, file=sys.stderr)
        raise
    finally:
        for runner in runners:
            runner._main = runner._shared = None
            runner._stop_simulator()
