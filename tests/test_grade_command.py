"""`ampbench grade`: SWE-bench style grading of a predictions file (or the gold patches).

Fast tests only: the bundled mini suite's instances, graded with the local backend (the gold
patches resolve there); no containers. Statuses are checked against what grading recorded
(grades.jsonl: each test's status) and against the instances' own test lists.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from suites.swe import batch_grade, grading
from suites.swe.batch_grade import Prediction
from suites.swe.instances import BUNDLED_JSONL, Instance, bundled_instances
from tests.conftest import ampbench

BUNDLED = {inst.instance_id: inst for inst in bundled_instances()}
A, B = "ampbench__lrukit-1", "ampbench__memocache-1"
INSTANCES = str(BUNDLED_JSONL)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check_consistent(out: Path) -> tuple[list[dict], dict]:
    """grades.jsonl's verdicts follow from its test statuses; report.json from grades.jsonl."""
    rows, report = _rows(out / "grades.jsonl"), json.loads((out / "report.json").read_text())
    for row in rows:
        instance = BUNDLED[row["instance_id"]]
        assert list(row["fail_to_pass"]) == list(instance.fail_to_pass)
        assert list(row["pass_to_pass"]) == list(instance.pass_to_pass)
        all_pass = all(
            s in grading.PASSING for s in [*row["fail_to_pass"].values(), *row["pass_to_pass"].values()]
        )
        assert row["resolved"] == all_pass == (row["status"] == "resolved")
    assert report["resolved_ids"] == sorted(r["instance_id"] for r in rows if r["status"] == "resolved")
    assert report["unresolved_ids"] == sorted(r["instance_id"] for r in rows if r["status"] == "unresolved")
    assert report["submitted_instances"] == len(rows)
    assert report["error_ids"] == report["env_error_ids"] == []
    assert report["interrupted"] is False
    return rows, report


def test_gold_patches_resolve(tmp_path: Path) -> None:
    out = tmp_path / "grade"
    done = ampbench("grade", "--gold", "--instances", INSTANCES, "--task", A, "--task", B, "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows, report = _check_consistent(out)
    assert sorted(r["instance_id"] for r in rows) == [A, B]
    assert {r["status"] for r in rows} == {"resolved"}
    assert {r["model_name_or_path"] for r in rows} == {"gold"}
    assert report["total_instances"] == 2 and report["resolved_instances"] == 2
    assert report["completed_ids"] == [A, B] and report["incomplete_ids"] == []
    assert report["model_name_or_path"] == "gold"
    # The table: one row per instance, then the totals.
    assert A in done.stdout and B in done.stdout
    assert "totals: 2 graded: resolved 2" in done.stdout
    assert "Traceback" not in done.stderr


def test_an_empty_patch_is_unresolved_and_unknown_instances_are_warned(tmp_path: Path) -> None:
    preds = tmp_path / "preds.jsonl"
    grading.write_predictions(
        preds,
        [
            {"instance_id": A, "model_name_or_path": "agent-x", "model_patch": ""},
            {"instance_id": "nobody__nothing-1", "model_name_or_path": "agent-x", "model_patch": "diff"},
        ],
    )
    out = tmp_path / "grade"
    done = ampbench("grade", str(preds), "--instances", INSTANCES, "--out", str(out))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "nobody__nothing-1" in warnings[0]
    assert f"{len(BUNDLED) - 1} of {len(BUNDLED)} instances have no prediction" in done.stderr
    rows, report = _check_consistent(out)
    assert [r["instance_id"] for r in rows] == [A]
    assert rows[0]["status"] == "unresolved" and rows[0]["patch_method"] == "empty"
    assert not any(s in grading.PASSING for s in rows[0]["fail_to_pass"].values())
    assert report["unresolved_ids"] == [A] and report["empty_patch_ids"] == [A]
    assert report["unknown_ids"] == ["nobody__nothing-1"]
    assert len(report["incomplete_ids"]) == len(BUNDLED) - 1


def test_mini_swe_agent_preds_json_is_read(tmp_path: Path) -> None:
    preds = tmp_path / "preds.json"
    preds.write_text(
        json.dumps({B: {"model_name_or_path": "mini", "instance_id": B, "model_patch": BUNDLED[B].patch}}),
        encoding="utf-8",
    )
    out = tmp_path / "grade"
    done = ampbench(
        "grade", str(preds), "--instances", INSTANCES, "--task", B, "--out", str(out), "-f", "json"
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)  # stdout is the JSON alone
    rows, report = _check_consistent(out)
    assert [(r["instance_id"], r["model_name_or_path"], r["status"]) for r in rows] == [
        (B, "mini", "resolved")
    ]
    assert [(r["instance_id"], r["model"], r["status"]) for r in printed] == [(B, "mini", "resolved")]
    assert printed[0]["fail_to_pass"] == f"{len(BUNDLED[B].fail_to_pass)}/{len(BUNDLED[B].fail_to_pass)}"
    assert report["model_name_or_path"] == "mini" and report["resolved_ids"] == [B]


def test_an_environment_failure_exits_1(tmp_path: Path) -> None:
    # An instance whose repository is neither bundled nor mirrored, offline: no workspace.
    record = BUNDLED[A].to_record() | {"instance_id": "nobody__nothing-1", "repo": "nobody/nothing"}
    instances = tmp_path / "instances.jsonl"
    instances.write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "grade"
    done = ampbench("grade", "--gold", "--instances", str(instances), "--offline", "--out", str(out))
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1 of 1" in errors[0] and "environments need attention" in errors[0]
    rows = _rows(out / "grades.jsonl")
    assert [r["status"] for r in rows] == ["error"] and rows[0]["reason"]
    report = json.loads((out / "report.json").read_text())
    assert report["error_ids"] == ["nobody__nothing-1"] and report["completed_ids"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["PREDS", "--gold"], "error: give either a predictions file (PREDS) or --gold, not both"),
        ([], "error: nothing to grade: give a predictions file (PREDS) or --gold"),
        (["MISSING"], "error: predictions file 'MISSING' not found"),
        (["BAD"], "error: BAD:1: invalid JSON"),
        (["PREDS", "--backend", "nowhere"], "error: unknown backend 'nowhere' (available: local, docker)"),
        (["PREDS", "--images", "build"], "error: --images applies to --backend docker only"),
        (["PREDS", "--task", "nope"], "error: unknown task id(s) 'nope'"),
        (["PREDS", "--format", "xml"], "error: unknown format 'xml' (available: table, json)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    preds, bad, missing = tmp_path / "preds.jsonl", tmp_path / "bad.json", tmp_path / "missing.jsonl"
    grading.write_predictions(preds, [{"instance_id": A, "model_name_or_path": "m", "model_patch": ""}])
    bad.write_text("{not json", encoding="utf-8")
    paths = {"PREDS": str(preds), "BAD": str(bad), "MISSING": str(missing)}
    argv = [paths.get(a, a) for a in args]
    out = tmp_path / "grade"
    done = ampbench("grade", *argv, "--instances", INSTANCES, "--out", str(out), timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    expected = message.replace("MISSING", str(missing)).replace("BAD", str(bad))
    assert len(lines) == 1 and lines[0].startswith(expected), done.stderr
    assert not out.exists()


def test_missing_instances_file_is_one_line(tmp_path: Path) -> None:
    done = ampbench("grade", "--gold", "--instances", str(tmp_path / "nope.jsonl"), timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: instances file '{tmp_path / 'nope.jsonl'}' not found"


# --------------------------------------------------------------------------- the module, no tests run


def _instance(instance_id: str) -> Instance:
    return dataclasses.replace(BUNDLED[A], instance_id=instance_id)


def test_plan_matches_predictions_with_instances() -> None:
    known = [_instance("x-1"), _instance("x-2"), _instance("x-3")]
    preds = [
        Prediction("x-2", "m", "first"),
        Prediction("x-1", "m", "p"),
        Prediction("x-2", "m", "last"),
        Prediction("x-2", "n", "other model"),
        Prediction("x-3", "m", "not asked for"),
        Prediction("zz-9", "m", "unknown"),
    ]
    chosen = batch_grade.plan(known, preds, selected=known[:2])
    assert [(i.instance_id, p.model, p.patch) for i, p in chosen.jobs] == [
        ("x-1", "m", "p"),
        ("x-2", "m", "last"),
        ("x-2", "n", "other model"),
    ]
    assert [p.instance_id for p in chosen.unknown] == ["zz-9"]
    assert chosen.not_selected == 1 and chosen.missing == [] and chosen.replaced == {("x-2", "m"): 1}
    assert batch_grade.plan(known, preds[:1]).missing == ["x-1", "x-3"]


def test_grade_predictions_hands_each_result_over_and_reports_by_model() -> None:
    def no_workspace(instance: Instance):  # every grade fails to get one: status error, at once
        raise OSError(f"no workspace for {instance.instance_id}")

    known = [_instance("x-1"), _instance("x-2")]
    chosen = batch_grade.plan(known, [Prediction("x-2", "m", "p"), Prediction("x-1", "n", "")])
    seen: list[str] = []
    results = batch_grade.grade_predictions(
        chosen.jobs, no_workspace, concurrency=2, on_result=lambda g: seen.append(g.prediction.instance_id)
    )
    assert sorted(seen) == ["x-1", "x-2"]
    assert [(g.prediction.instance_id, g.result.status) for g in results] == [
        ("x-1", "error"),
        ("x-2", "error"),
    ]
    assert "no workspace for x-1" in results[0].result.reason
    report = batch_grade.report(results, chosen)
    assert report["error_ids"] == ["x-1", "x-2"] and report["completed_ids"] == []
    assert set(report["models"]) == {"m", "n"} and report["models"]["n"]["error_ids"] == ["x-1"]
    assert report["empty_patch_ids"] == ["x-1"]
