"""Corrupt input never ends in a traceback, and never changes what is already on disk.

Hypothesis damages one file of a real run directory, cassette folder or
trajectory (truncated, bytes flipped or inserted, replaced by another JSON
type, by binary, by a directory, deleted) and every reading command is run on
it in-process. Each must end in exit 0 or in one line on stderr with a
non-zero exit, and leave every byte it read unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.runner import RunConfig, Runner

RUN_FILES = ("manifest.json", "tasks.csv", "exchanges.jsonl", "tool_calls.jsonl")


def run_cli(*args: str) -> tuple[int, str, str]:
    """`ampbench ARGS` in this process: (exit code, stdout, stderr); any other exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["ampbench", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    config = RunConfig(
        suite="snitch",
        models=["sim:thorough", "sim-anthropic:terse"],
        task_ids=["boldly-act-email-and-logs"],
        out=str(root / "run"),
        cassettes="record",
        cassette_dir=str(root / "cassettes"),
        sim_faults=0.2,
        sim_seed=3,
    )
    Runner(config, progress=False).run()
    trajs = root / "trajs"
    trajs.mkdir()
    fixture = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "trajectories" / "mini-swe-agent"
    for path in sorted(fixture.glob("*.traj.json"))[:1]:
        shutil.copy(path, trajs / path.name)
    return root


def corrupt(path: Path, kind: str, data: st.DataObject) -> None:
    raw = path.read_bytes() if path.is_file() else b""
    if kind == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(0, max(0, len(raw) - 1)))])
    elif kind == "flip":
        buf = bytearray(raw or b"x")
        for _ in range(data.draw(st.integers(1, 8))):
            at = data.draw(st.integers(0, len(buf) - 1))
            buf[at] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(buf))
    elif kind == "insert":
        at = data.draw(st.integers(0, len(raw)))
        path.write_bytes(raw[:at] + data.draw(st.binary(min_size=1, max_size=40)) + raw[at:])
    elif kind == "json-type":
        value = data.draw(st.sampled_from([b"[1, 2]", b"42", b'"text"', b"null", b"{}", b"[]", b"true"]))
        path.write_bytes(value + b"\n")
    elif kind == "binary":
        path.write_bytes(data.draw(st.binary(min_size=1, max_size=200)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.unlink()
        path.mkdir()
    elif kind == "delete":
        path.unlink()


KINDS = ("truncate", "flip", "insert", "json-type", "binary", "empty", "directory", "delete")


def assert_clean_exit(code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, "a failure must say why on stderr"
        assert len(lines) == 1, err


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_reading_commands_survive_any_damage(pristine: Path, tmp_path_factory, data: st.DataObject) -> None:
    work = tmp_path_factory.mktemp("case")
    shutil.copytree(pristine, work, dirs_exist_ok=True)
    target_kind = data.draw(st.sampled_from(["run", "cassette", "trajectory"]))
    if target_kind == "run":
        target = work / "run" / data.draw(st.sampled_from(RUN_FILES))
    elif target_kind == "cassette":
        target = data.draw(st.sampled_from(sorted((work / "cassettes").rglob("*.json"))))
    else:
        target = data.draw(st.sampled_from(sorted((work / "trajs").glob("*.json"))))
    corrupt(target, data.draw(st.sampled_from(KINDS)), data)
    before = snapshot(work)

    run = str(work / "run")
    commands = [
        ("report", run, "--format", "json"),
        ("compare", run, "--resamples", "100"),
        ("project", run, "--tasks", "10", "--resamples", "100"),
        ("cassettes", "check", "--dir", str(work / "cassettes")),
        ("cassettes", "list", "--dir", str(work / "cassettes")),
        ("ingest", str(work / "trajs"), "--out", str(work / "ingested")),
    ]
    for args in commands:
        assert_clean_exit(*run_cli(*args))
    after = snapshot(work)
    # Reading changed nothing; only ingest may add its own new output folder.
    assert {k: v for k, v in after.items() if not k.startswith("ingested")} == before


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("manifest.json", b"[1, 2]"),
        ("manifest.json", b"\xff\xfe not utf-8"),
        ("tasks.csv", b"task_id,model,repeat\nt,m,abc\n"),
        ("tasks.csv", b"\x00\x01\x02\x03"),
        ("exchanges.jsonl", b'{"task_id": "t"}\n[1,2]\n'),
        ("exchanges.jsonl", b"\xff\n"),
    ],
)
def test_named_damage_is_one_line_and_a_non_zero_exit(pristine: Path, tmp_path, name, content) -> None:
    shutil.copytree(pristine / "run", tmp_path / "run")
    (tmp_path / "run" / name).write_bytes(content)
    for command in ("report", "compare", "project"):
        args = [command, str(tmp_path / "run")] + (["--tasks", "5"] if command == "project" else [])
        code, out, err = run_cli(*args)
        assert code == 2, (command, name, err)
        assert_clean_exit(code, out, err)
        assert err.startswith("error: ") and name in err
