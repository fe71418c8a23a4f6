"""`ampbench run --executor ray`: task runs on the nodes of a Ray cluster, one writer on the driver.

What runs where:

* **the driver** (where `ampbench run` was typed) validates the run, owns the run
  directory and is its only writer, shows progress, and hands out the task runs;
* **workers**: ``--concurrency`` Ray actors, spread over the nodes and kept for the
  whole run (a task run pays for no process start or import), each running one task
  run at a time: the suite's environment (a SWE workspace, say), the agent loop, its
  model clients and ledger, and grading. So the whole cluster never has more than
  ``--concurrency`` task runs, and requests, in flight: a provider sees no more than
  one machine would have sent. Each exchange row, tool-call row and finally the task
  row stream back to the driver as they happen (a Ray streaming generator), so a node
  that dies loses nothing the driver had already received.

A node that dies mid-task: the driver keeps what that attempt sent (its exchanges
stay in ``exchanges.jsonl``), opens a new session for the task run (a lost attempt
is recorded in the manifest's ``sessions`` with the node and the reason) and runs
it again on any node. The task run then appears once in ``tasks.csv``, under the
new session, and the lost attempt's exchanges are counted apart, like those of a
task run interrupted before ``--resume`` (`harness.results.read_run`: "orphaned").

Keys stay where they are used: the driver sends model spec strings, and each node
reads its provider keys from its own environment. `sim:` models are served by the
driver's in-process simulator, which must be reachable from the nodes (a local
cluster), or by ``--sim-url`` (a simulator every node reaches). Cassettes are read
and written by the nodes in ``--cassette-dir``, which must be shared by all nodes (a
node that does not see the driver's marker file there refuses to run the task run).

Ray is an optional extra: ``pip install 'ampbench[ray]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness import context
from harness.clients import ModelSpec, make_client, parse_spec
from harness.errors import UserError
from harness.pacing import RatePacer
from harness.records import Exchange
from harness.redact import Scrubber
from harness.results import RunWriter
from harness.runner import (
    RAY_MISSING,
    ClientJudge,
    RunConfig,
    Runner,
    _load_suite,
    _NoProgress,
    _progress_bar,
    client_settings,
    execute_task_run,
)
from harness.tasks import Suite, Task

NODE_ATTEMPTS = 3
"""Times a task run is started on a node before its loss is the run's error."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


def _loopback(address: str | None) -> bool:
    if address is None:
        return True
    host = urlparse(address if "://" in address else f"ray://{address}").hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def connect_settings(address: str | None) -> Any:
    """Import Ray set up for `address`; returns the module."""
    if _loopback(address):
        # Ray advertises the machine's interface address even for a cluster on loopback, and a
        # driver then cannot reach it; keeping loopback is this (process-wide) switch.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    if _loopback(address):
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


def connect(address: str | None) -> Any:
    """Connect this process to the cluster at `address` (None: start a local one)."""
    ray = connect_settings(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a new local cluster"
            raise UserError(f"--executor ray: cannot connect to {where}: {exc}") from None
    return ray


@contextlib.contextmanager
def loopback_cluster(
    workers: int = 1, *, head_cpus: int = 2, cpus: int = 2
) -> Iterator[tuple[Any, list[Any]]]:
    """A Ray cluster on this machine's loopback, this process connected as its driver: a head
    node and `workers` more nodes, each a raylet of its own (for tests and benchmarks).
    Yields the cluster (`.address`, `.remove_node`) and its worker nodes; shut down after."""
    # Before the nodes start (their processes inherit it): loopback only, no usage report, no
    # token file in ~/.ray, a short temp dir (socket paths are limited to 107 bytes).
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_TMPDIR=tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    ray = connect_settings("127.0.0.1")
    from ray.cluster_utils import Cluster

    node = {"node_ip_address": "127.0.0.1", "object_store_memory": 80 << 20}
    cluster = Cluster(
        initialize_head=True, head_node_args={**node, "num_cpus": head_cpus, "include_dashboard": False}
    )
    try:
        nodes = [cluster.add_node(**node, num_cpus=cpus) for _ in range(workers)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


# --------------------------------------------------------------------------- on a node


class _RemotePacer:
    """A node's view of the cluster's pacer actor (`harness.pacing`): one budget for every node."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def admit(self, provider: str) -> None:
        await self.actor.admit.remote(provider)

    def hold(self, provider: str, seconds: float) -> None:
        self.actor.hold.remote(provider, seconds)  # no need to wait: the next admit sees it


class PacerActor:
    """The cluster's request budget per provider, in an (async) actor on the driver's node."""

    def __init__(self, rpm: float | None) -> None:
        self.pacer = RatePacer(rpm)

    async def admit(self, provider: str) -> None:
        await self.pacer.admit(provider)

    def hold(self, provider: str, seconds: float) -> None:
        self.pacer.hold(provider, seconds)

    def admitted(self) -> dict[str, int]:
        return dict(self.pacer.admitted)


class _StreamSink:
    """The ledger sink of one task run on a node: every row goes to the driver as it is made."""

    def __init__(self, out: queue.SimpleQueue) -> None:
        self.out = out
        self.exchanges: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []
        self.total = 0

    def record(self, exchange: Exchange) -> None:
        row = exchange.to_dict()
        self.exchanges.append(row)
        self.total += exchange.sent
        self.out.put(("exchange", row))

    def tool_call(self, row: dict[str, Any]) -> None:
        self.tools.append(row)
        self.out.put(("tool", row))

    def pop(self, key: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.exchanges, self.tools


_SUITES: dict[str, tuple[Suite, dict[str, Task]]] = {}
_SUITES_LOCK = threading.Lock()


def _suite(config: RunConfig) -> tuple[Suite, dict[str, Task]]:
    # One suite per worker process and run: a SWE suite reads its instances once.
    key = repr(sorted(asdict(config).items()))
    with _SUITES_LOCK:
        if key not in _SUITES:
            suite, tasks = _load_suite(config)
            _SUITES[key] = (suite, {t.id: t for t in tasks})
        return _SUITES[key]


def _node_spec(spec: str, base_url: str | None, config: RunConfig) -> ModelSpec:
    # Parsed here: the node's own environment holds the provider keys. A simulated model
    # goes where the driver's goes (its simulator), so one simulator counts for the cluster.
    if base_url is None:
        return parse_spec(spec, require_key=config.cassettes != "replay")
    return replace(parse_spec(spec, require_key=False), base_url=base_url)


async def _execute(payload: dict[str, Any], out: queue.SimpleQueue) -> None:
    config = RunConfig(**payload["config"])
    marker = payload["cassette_marker"]
    if marker is not None and not (Path(config.cassette_dir) / marker).is_file():
        # Recorded here, they would never reach the driver; read here, they would be missing.
        raise UserError(
            f"--cassette-dir {config.cassette_dir} is not shared with this node; with --executor ray "
            "cassettes need a directory every node sees at the same path"
        )
    suite, tasks = _suite(config)
    task = tasks[payload["task_id"]]
    spec = _node_spec(payload["spec"], payload["base_url"], config)
    judged = _node_spec(*payload["judge"], config) if payload["judge"] else None
    # Cassettes written here never hold this node's keys (nor the driver's: it sent none).
    scrubber = Scrubber(s.api_key for s in (spec, judged) if s is not None)
    for model in (spec, judged):
        scrubber.add_url(model.base_url if model is not None else None)
    sink = _StreamSink(out)
    settings, store = client_settings(config, sink, scrubber, _RemotePacer(payload["pacer"]))
    client = make_client(spec, settings)
    judge = ClientJudge(make_client(judged, settings)) if judged is not None else None
    try:
        with context.bind(
            run_id=payload["run_id"],
            task_id=task.id,
            model=spec.spec,
            repeat=payload["repeat"],
            session=payload["session"],
            step=0,
            user_turn=0,
            role="agent",
            attempt=1,
        ):
            row, grade, status = await execute_task_run(
                config,
                suite,
                task,
                spec,
                payload["repeat"],
                payload["session"],
                client,
                judge,
                sink,
                store,
                payload["run_id"],
            )
    finally:
        await client.aclose()
        if judge is not None:
            await judge.client.aclose()
    out.put(("task", row, grade, status))


def node_task_run(payload: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """One task run on a node, as a stream of items: ("node", node id) first, then
    ("exchange", row) and ("tool", row) as they happen, and finally ("task", row, grade, status)."""
    import ray

    yield ("node", ray.get_runtime_context().get_node_id())
    out: queue.SimpleQueue = queue.SimpleQueue()
    done = object()

    def work() -> None:
        try:
            asyncio.run(_execute(payload, out))
        except BaseException as exc:  # the driver says it; the node goes on
            out.put(("failed", f"{type(exc).__name__}: {exc}"))
        finally:
            out.put(done)

    threading.Thread(target=work, name="ampbench-task-run", daemon=True).start()
    while (item := out.get()) is not done:
        yield item


class NodeWorker:
    """A Ray actor that runs one task run at a time on its node (`node_task_run`)."""

    def run(self, payload: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
        yield from node_task_run(payload)


# --------------------------------------------------------------------------- on the driver


def _sent(spec: ModelSpec) -> tuple[str, str | None]:
    """What a node is told of a model: its spec, and the simulator's URL for a simulated one
    (never a key: nodes read theirs from their own environment)."""
    return spec.spec, spec.base_url if spec.simulated else None


class RayRunner(Runner):
    """A Runner whose task runs run on a Ray cluster (see the module doc)."""

    on_item: Any = None
    """Test hook: called with (task key, item kind, node id) for every item the driver receives."""
    paced: dict[str, int] | None = None
    """Requests the cluster's pacer let through, per provider (after `run`)."""

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
        ray = connect(config.ray_address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # One worker per concurrency slot, spread over the nodes and kept for the whole run: a
        # task run pays for no process start or imports, and the slots are the cluster's budget.
        worker_class = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(NodeWorker)

        def new_worker() -> Any:
            return worker_class.options(scheduling_strategy="SPREAD").remote()

        # One request budget for the cluster, beside the driver: --rpm per provider, and a
        # retry-after from a provider holds every node's calls to it.
        here = ray.get_runtime_context().get_node_id()
        pacer = (
            ray.remote(num_cpus=0, max_restarts=0, max_concurrency=10_000)(PacerActor)
            .options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False))
            .remote(config.rpm)
        )
        # Nodes check that they see the cassettes where the driver does, by this file.
        marker = None
        if config.cassettes != "off":
            marker = f".ampbench-driver-{run_id}"
            Path(config.cassette_dir).mkdir(parents=True, exist_ok=True)
            (Path(config.cassette_dir) / marker).write_text("written by the driver of this run\n")
        workers: asyncio.Queue = asyncio.Queue()
        for _ in range(min(config.concurrency, len(jobs))):
            workers.put_nowait(new_worker())
        lost_errors = (
            ray.exceptions.RayActorError,
            ray.exceptions.ActorUnavailableError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.OwnerDiedError,
            ray.exceptions.TaskUnschedulableError,
        )
        progress = _progress_bar() if self.show_progress else _NoProgress()
        bar = progress.add_task(f"{config.suite} (ray)", total=len(jobs), exchanges=0)
        exchanges = 0
        nodes: dict[tuple[str, str, int], str] = {}
        base = asdict(config)

        async def attempt(worker: Any, task: Task, spec: ModelSpec, repeat: int, session: int) -> bool:
            nonlocal exchanges
            payload = {
                "config": base,
                "task_id": task.id,
                "spec": spec.spec,
                "judge": _sent(judge_spec) if judge_spec is not None else None,
                "base_url": _sent(spec)[1],
                "repeat": repeat,
                "session": session,
                "run_id": run_id,
                "pacer": pacer,
                "cassette_marker": marker,
            }
            key = (task.id, spec.spec, repeat)
            node = ""
            async for ref in worker.run.options(num_returns="streaming").remote(payload):
                item = await ref
                kind = item[0]
                if self.on_item is not None:
                    self.on_item(key, kind, node or item[1])
                if kind == "node":
                    node = nodes[key] = item[1]
                elif kind == "exchange":
                    writer.write_exchange_row(item[1])
                    exchanges += 1 if item[1].get("sent") else 0
                    if self.show_progress:
                        progress.update(bar, exchanges=exchanges)
                elif kind == "tool":
                    writer.tool_call(item[1])
                elif kind == "task":
                    _, row, grade, status = item
                    if hasattr(suite, "write_artifacts") and status != "error":
                        suite.write_artifacts(writer.dir, task, spec.spec, repeat, grade)
                    writer.task(row)
                    return True
                elif kind == "failed":  # not the task run: its node could not run it at all
                    raise UserError(
                        f"task run {' × '.join(map(str, key))} could not run on its node: {item[1]}"
                    )
            return False

        async def one(task: Task, spec: ModelSpec, repeat: int) -> None:
            session = writer.session
            worker = await workers.get()  # at most --concurrency task runs in the whole cluster
            try:
                for number in range(1, NODE_ATTEMPTS + 1):
                    try:
                        if await attempt(worker, task, spec, repeat, session):
                            break
                        reason = "its stream ended without a task row"
                    except lost_errors as exc:
                        reason = f"{type(exc).__name__} on node {nodes.get((task.id, spec.spec, repeat), '?')[:12]}"
                    worker = new_worker()  # the lost one's node (or process) is gone
                    if number == NODE_ATTEMPTS:
                        raise UserError(
                            f"task run {task.id} × {spec.spec} × {repeat} was lost {number} times ({reason})"
                        )
                    session = writer.open_session(
                        f"task run {task.id} × {spec.spec} × {repeat}: attempt {number} lost ({reason})"
                    )
                    print(
                        f"note: a node lost task run {task.id} × {spec.spec} × {repeat}; running it again",
                        file=sys.stderr,
                    )
            finally:
                workers.put_nowait(worker)
            progress.advance(bar)

        try:
            with progress:
                await asyncio.gather(*(one(t, s, r) for t, s, r in jobs))
            self.paced = await pacer.admitted.remote()
        finally:
            if marker is not None:
                (Path(config.cassette_dir) / marker).unlink(missing_ok=True)
