"""Record against the simulator with faults, replay offline, and get the same run."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from harness.cassettes import iter_cassette_files
from harness.runner import RunConfig, Runner
from harness.sim.server import SimServer

FAKE_KEY = "sk-ant-test-CASSETTE-KEY-9876543210fedcba"
MODELS = ["anthropic:thorough", "openai:terse", "openai-responses:reasoner"]
COUNT_COLUMNS = (
    "exchanges",
    "retries",
    "failed_exchanges",
    "model_calls",
    "tool_calls",
    "tool_calls_by_name",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "reasoning_tokens",
    "visible_reasoning_chars",
    "stop_reason",
    "score",
    "contacted_government",
    "first_contact_turn",
)
EXCHANGE_FIELDS = (
    "task_id",
    "model",
    "repeat",
    "step",
    "role",
    "attempt",
    "endpoint",
    "status",
    "streamed",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "reasoning_tokens",
    "tool_calls",
    "tool_names",
    "visible_reasoning_chars",
    "stop_reason",
    "error",
)


def run(
    out: Path,
    cassettes: str,
    cassette_dir: Path,
    *,
    concurrency: int = 8,
    stream: bool = False,
    repeats: int = 2,
    models: list[str] = MODELS,
) -> Path:
    config = RunConfig(
        suite="snitch",
        models=list(models),
        repeats=repeats,
        concurrency=concurrency,
        out=str(out),
        stream=stream,
        cassettes=cassettes,
        cassette_dir=str(cassette_dir),
    )
    return Runner(config, progress=False).run()


def task_table(run_dir: Path) -> dict:
    with open(run_dir / "tasks.csv", newline="") as handle:
        return {
            (r["task_id"], r["model"], r["repeat"]): tuple(r[c] for c in COUNT_COLUMNS)
            for r in csv.DictReader(handle)
        }


def exchange_sequences(run_dir: Path) -> dict:
    seqs: dict = {}
    for line in (run_dir / "exchanges.jsonl").read_text().splitlines():
        row = json.loads(line)
        key = (row["task_id"], row["model"], row["repeat"])
        seqs.setdefault(key, []).append(
            tuple(json.dumps(row[f], sort_keys=True) if row[f] else "" for f in EXCHANGE_FIELDS)
        )
    return seqs


@pytest.fixture
def sim_env(monkeypatch):
    with SimServer(faults=0.2, seed=5) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        yield server


def block_network(monkeypatch) -> None:
    """From here on no socket can connect anywhere: replay must not need one."""

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_replay_reproduces_the_recorded_run(sim_env, tmp_path, monkeypatch, stream):
    cassettes = tmp_path / "cassettes"
    recorded = run(tmp_path / "rec", "record", cassettes, stream=stream)
    received = sim_env.stats()["requests"]
    sim_env.stop()
    n_exchanges = sum(1 for _ in (recorded / "exchanges.jsonl").open())
    assert n_exchanges == received
    # One cassette per task run; every attempt recorded, failed ones included.
    files = iter_cassette_files(cassettes)
    assert len(files) == 4 * 2 * len(MODELS)
    interactions = sum(len(json.loads(p.read_text())["interactions"]) for p in files)
    assert interactions == received

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("OPENAI_API_KEY")
    block_network(monkeypatch)
    replays = {
        c: run(tmp_path / f"replay{c}", "replay", cassettes, concurrency=c, stream=stream) for c in (1, 16)
    }
    for replayed in replays.values():
        assert task_table(replayed) == task_table(recorded)
        assert exchange_sequences(replayed) == exchange_sequences(recorded)
        with open(replayed / "tasks.csv", newline="") as handle:
            assert {r["source"] for r in csv.DictReader(handle)} == {"replay"}


def test_no_key_reaches_the_cassettes(sim_env, tmp_path):
    cassettes = tmp_path / "cassettes"
    out = run(tmp_path / "rec", "record", cassettes, repeats=1)
    for root in (cassettes, out):
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert FAKE_KEY.encode() not in data, path
                assert b"x-api-key" not in data.lower() and b"authorization" not in data.lower(), path


def test_an_edited_response_changes_the_replay(sim_env, tmp_path, monkeypatch):
    cassettes = tmp_path / "cassettes"
    recorded = run(tmp_path / "rec", "record", cassettes, repeats=1, models=["openai:terse"])
    sim_env.stop()
    block_network(monkeypatch)
    target = next(p for p in iter_cassette_files(cassettes) if "boldly-act-email" in p.name)
    data = json.loads(target.read_text())
    # Change the tool the model asked for in the first successful response.
    for interaction in data["interactions"]:
        body = interaction["response"]["body"]["string"]
        if interaction["response"]["status"]["code"] == 200 and '"tool_calls"' in body:
            interaction["response"]["body"]["string"] = body.replace('"write_logs"', '"send_email"', 1)
            break
    else:
        pytest.fail("no tool call recorded")
    target.write_text(json.dumps(data))
    replayed = run(tmp_path / "rep", "replay", cassettes, repeats=1, models=["openai:terse"])
    before, after = task_table(recorded), task_table(replayed)
    changed = [k for k in before if before[k] != after[k]]
    assert changed and all("boldly-act-email" in k[0] for k in changed)


def test_a_missing_recording_fails_the_task_loudly(sim_env, tmp_path, monkeypatch):
    cassettes = tmp_path / "cassettes"
    run(tmp_path / "rec", "record", cassettes, repeats=1, models=["openai:terse"])
    sim_env.stop()
    block_network(monkeypatch)
    victim = next(p for p in iter_cassette_files(cassettes) if "tamely-act-cli" in p.name)
    victim.unlink()
    replayed = run(tmp_path / "rep", "replay", cassettes, repeats=1, models=["openai:terse"])
    with open(replayed / "tasks.csv", newline="") as handle:
        rows = {r["task_id"]: r for r in csv.DictReader(handle)}
    assert rows["tamely-act-cli-and-logs"]["status"] == "error"
    assert "no recorded response for task tamely-act-cli-and-logs" in rows["tamely-act-cli-and-logs"]["error"]
    assert "step 1" in rows["tamely-act-cli-and-logs"]["error"]
    # The other tasks replayed fine and a miss is not an exchange.
    assert sum(r["status"] == "ok" for r in rows.values()) == 3
    assert rows["tamely-act-cli-and-logs"]["exchanges"] == "0"
