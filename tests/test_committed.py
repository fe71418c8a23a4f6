"""The committed runs under cassettes/ replay offline, exactly, and are safe to publish."""

from __future__ import annotations

import csv
import json
import os
import socket

import pytest

from harness import committed
from harness.cassettes import iter_cassette_files
from tests.conftest import REPO, ampbench

ROOT = REPO / "cassettes"
RUNS = committed.load_index(ROOT)


def test_the_index_lists_every_cassette_folder():
    folders = {p.name for p in ROOT.iterdir() if p.is_dir()}
    assert folders == {r.name for r in RUNS}
    # A real model is among the committed runs, next to the simulator's profiles.
    assert any(not m.startswith("sim") for r in RUNS for m in r.models)


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_replay_matches_the_recorded_interactions(run, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "COMPAT_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    out = committed.replay(run, ROOT, tmp_path / run.name)

    # Ground truth: the interactions stored in the cassette files themselves.
    per_file: dict[tuple[str, int], int] = {}
    for path in iter_cassette_files(ROOT / run.name):
        data = json.loads(path.read_text())
        task, _, repeat = path.stem.rpartition("__r")
        per_file[(task, int(repeat))] = per_file.get((task, int(repeat)), 0) + len(data["interactions"])
    rows = [json.loads(line) for line in (out / "exchanges.jsonl").read_text().splitlines()]
    assert len(rows) == sum(per_file.values())
    with open(out / "tasks.csv", newline="") as handle:
        tasks = list(csv.DictReader(handle))
    assert len(tasks) == len(run.models) * len({t for t, _ in per_file}) * run.repeats
    assert all(t["status"] == "ok" for t in tasks), [t["error"] for t in tasks if t["status"] != "ok"]
    assert {t["source"] for t in tasks} == {"replay"}
    replayed: dict[tuple[str, int], int] = {}
    for t in tasks:
        key = (t["task_id"], int(t["repeat"]))
        replayed[key] = replayed.get(key, 0) + int(t["exchanges"]) + int(t["judge_exchanges"] or 0)
    assert replayed == per_file


def test_cassette_check_passes_on_the_committed_folder():
    result = ampbench("cassettes", "check", "--dir", str(ROOT), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problem" in result.stdout and result.returncode == 0


def test_cassette_check_catches_a_secret_and_an_orphan(tmp_path):
    bad = tmp_path / "suite" / "model"
    bad.mkdir(parents=True)
    cassette = {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": "http://x/v1/messages",
                    "body": "{}",
                    "headers": {"x-api-key": ["sk-ant-api03-" + "A" * 40]},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {},
                    "body": {"string": "{}"},
                },
            }
        ],
    }
    (bad / "task__r0.json").write_text(json.dumps(cassette))
    (bad / "stray.json").write_text(json.dumps(cassette))
    (bad / "broken__r1.json").write_text("{not json")
    result = ampbench("cassettes", "check", "--dir", str(tmp_path), timeout=120)
    assert result.returncode == 1
    assert "credential" in result.stdout and "orphan" in result.stdout and "not valid JSON" in result.stdout


def test_demo_is_the_main_job(tmp_path):
    result = ampbench("demo", "--out", str(tmp_path / "demo"), "--format", "json", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    labels = {g["model"] for g in report["groups"]}
    assert any("(simulated)" in label for label in labels)
    assert any("SmolLM2" in label and "(simulated)" not in label for label in labels)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == sorted(r.name for r in RUNS)


def test_a_replay_gives_the_same_rows_whatever_its_concurrency(tmp_path, monkeypatch):
    # `make run` replays with no more task runs at a time than cores (+1): the rows must not
    # depend on that. snitch-sim has faults, retries and three wire formats.
    run = next(r for r in RUNS if r.name == "snitch-sim")
    assert run.config(ROOT, "replay", tmp_path).concurrency <= (os.cpu_count() or 1) + 1
    assert run.config(ROOT, "record", tmp_path).concurrency == run.concurrency

    def rows(concurrency: int) -> list[dict[str, str]]:
        monkeypatch.setattr(os, "cpu_count", lambda: concurrency - 1)
        out = committed.replay(run, ROOT, tmp_path / f"c{concurrency}")
        with (out / "tasks.csv").open(newline="") as fh:
            found = [{k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(fh)]
        return sorted(found, key=lambda r: (r["task_id"], r["model"], r["repeat"]))

    two, many = rows(2), rows(run.concurrency)
    assert two == many and len(two) == len(run.models) * run.repeats * 4
