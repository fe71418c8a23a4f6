"""The runs committed under `cassettes/`: what they are, how to replay and re-record them.

`cassettes/runs.yaml` lists each committed run (suite, models, repeats, stream,
simulator faults). Its cassettes live in `cassettes/<name>/`. `ampbench demo`
(the README's `make run`) replays every one offline and compares the models;
`scripts/record_cassettes.py` records them again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError
from harness.results import RunData, read_run
from harness.runner import RunConfig, Runner, run_together

INDEX = "runs.yaml"


@dataclass(frozen=True)
class CommittedRun:
    """One entry of cassettes/runs.yaml."""

    name: str
    """Folder of its cassettes under the cassette root."""
    suite: str
    models: list[str]
    repeats: int = 1
    stream: bool = False
    concurrency: int = 8
    sim_faults: float = 0.0
    sim_seed: int = 0
    max_tokens: int | None = None
    suite_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def config(self, root: Path, mode: str, out: Path) -> RunConfig:
        concurrency = self.concurrency
        if mode == "replay":
            concurrency = min(concurrency, replay_slots())
        return RunConfig(
            suite=self.suite,
            models=list(self.models),
            repeats=self.repeats,
            concurrency=concurrency,
            out=str(out),
            run_id=self.name,
            stream=self.stream,
            cassettes=mode,
            cassette_dir=str(root / self.name),
            sim_faults=self.sim_faults,
            sim_seed=self.sim_seed,
            max_tokens=self.max_tokens,
            suite_options=dict(self.suite_options),
        )


def replay_slots() -> int:
    """Task runs replayed at a time: the cores, plus one.

    Replayed answers come at once, so a replay is local work (the SWE suite's commands and
    tests): more task runs at a time than cores only adds contention (measured on 2 cores:
    8 at a time took a fifth more CPU than 3). The counts do not depend on it.
    """
    return (os.cpu_count() or 1) + 1


def default_root() -> Path:
    """`./cassettes` when run from a checkout, else the one beside the installed package."""
    here = Path("cassettes")
    if (here / INDEX).is_file():
        return here
    return Path(__file__).resolve().parents[1] / "cassettes"


def load_index(root: Path) -> list[CommittedRun]:
    path = root / INDEX
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no {INDEX} in {root}: nothing is committed to replay") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    runs = []
    for entry in (data or {}).get("runs", []):
        try:
            runs.append(CommittedRun(**entry))
        except TypeError as exc:
            raise UserError(f"{path}: bad run entry {entry.get('name', '?')!r}: {exc}") from None
    return runs


def replay(run: CommittedRun, root: Path, out: Path, *, progress: bool = False) -> Path:
    """Replay one committed run offline into `out`."""
    return Runner(run.config(root, "replay", out), progress=progress).run()


def replay_all(runs: list[CommittedRun], root: Path, out: Path, *, concurrency: int) -> list[RunData]:
    """Replay committed runs offline into `out/<name>`, all at once: their task runs share
    `concurrency` slots (each run also keeps its own limit). The rows of each, as loaded
    once for its summary (`read_run`), in order."""
    runners = [Runner(run.config(root, "replay", out / run.name), progress=False) for run in runs]
    paths = run_together(runners, concurrency=concurrency)
    # Every finished runner holds its rows; reading the directory is only the typed fallback.
    return [runner.data or read_run(path) for runner, path in zip(runners, paths, strict=True)]


def record(run: CommittedRun, root: Path, out: Path, *, progress: bool = True) -> Path:
    """Record one committed run again (live: the simulator, or the models' real endpoints)."""
    return Runner(run.config(root, "record", out), progress=progress).run()
