"""Real SWE-bench instances end to end in containers (Docker or Podman): images, grades, agents.

The instances are real rows of SWE-bench Lite and the repositories real git objects
(tests/data/swebench, see SOURCES.md there). Images are built here from the swebench
package's specs on a Debian base made with debootstrap, and cached by the engine: the
first run on a machine takes minutes, later runs reuse them.

Marked `containers` (left out of `make test`, run by `make test-containers` and CI).
Without a container engine they skip, unless AMPBENCH_REQUIRE_CONTAINERS=1 (CI), when
that is a failure.
"""

from __future__ import annotations

import csv
import json
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import UserError
from suites.swe import grading
from suites.swe.containers import resolve_engine
from suites.swe.images import ImageSettings, container_workspaces, ensure_image
from suites.swe.instances import read_instances
from tests.conftest import ampbench
from tests.test_run_sim import sim_serve

pytestmark = pytest.mark.containers

DATA = Path(__file__).parent / "data" / "swebench"
INSTANCES = DATA / "instances.jsonl"
# Five instances, two base images: Python 3.11 (bookworm) and Python 3.9 (bullseye).
FLASK = "pallets__flask-4992"
MARSHMALLOW = "marshmallow-code__marshmallow-1343"


@pytest.fixture(scope="module")
def engine():
    try:
        return resolve_engine(None)
    except UserError as exc:
        if os.environ.get("AMPBENCH_REQUIRE_CONTAINERS") == "1":
            pytest.fail(f"containers are required here: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    for archive in (DATA / "repos").glob("*.git.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    return root


@pytest.fixture(scope="module")
def instances():
    return {i.instance_id: i for i in read_instances(INSTANCES).instances}


@pytest.fixture(scope="module")
def settings(engine, mirror) -> ImageSettings:
    return ImageSettings(engine=engine, source="build", repo_mirror=str(mirror), network=False)


@pytest.mark.parametrize("instance_id", [i.instance_id for i in read_instances(INSTANCES).instances])
def test_gold_patch_resolves_and_empty_patch_does_not(settings, instances, instance_id):
    instance = instances[instance_id]
    factory = container_workspaces(settings)
    gold = grading.grade(instance, instance.patch, factory)
    assert gold.status == "resolved", gold.reason
    # Every listed test was seen by the official log parser, and passed.
    assert set(gold.fail_to_pass.values()) == {"PASSED"}
    assert set(gold.pass_to_pass.values()) <= grading.PASSING and len(gold.pass_to_pass) == len(
        instance.pass_to_pass
    )
    empty = grading.grade(instance, "", factory)
    assert empty.status == "unresolved" and not empty.resolved
    assert empty.reason.startswith("empty patch")
    assert all(s not in grading.PASSING for s in empty.fail_to_pass.values())


def test_a_second_run_reuses_the_built_image(settings, instances):
    logged: list[str] = []
    again = replace(settings, log=logged.append)
    first = ensure_image(instances[FLASK], again)  # built here unless an earlier test did
    logged.clear()
    assert ensure_image(instances[FLASK], again) == first
    assert logged == []  # nothing built, nothing pulled


def test_a_broken_environment_is_env_error_not_unresolved(settings, instances):
    # The same instance in an image without the package installed: its tests cannot import
    # flask, so PASS_TO_PASS fail at base_commit too, and no patch can be judged there.
    broken = replace(
        settings, spec_overrides={FLASK: {"packages": "", "pip_packages": ["pytest"], "install": "true"}}
    )
    instance = instances[FLASK]
    result = grading.grade(instance, instance.patch, container_workspaces(broken))
    assert result.status == grading.ENV_ERROR, (result.status, result.reason)
    assert "PASS_TO_PASS tests fail at base_commit" in result.reason
    assert result.resolved is False


def test_an_unbuildable_environment_is_env_error(settings, instances):
    broken = replace(settings, spec_overrides={FLASK: {"install": "exit 7"}})
    result = grading.grade(instances[FLASK], "", container_workspaces(broken))
    assert result.status == grading.ENV_ERROR
    assert "building its environment failed" in result.reason and "log:" in result.reason


def test_grading_containers_have_no_network(settings, instances):
    factory = container_workspaces(settings)
    with factory(instances[FLASK]) as ws:
        shown = ws.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '", timeout_s=60)
    assert shown["returncode"] == 0
    assert shown["output"].split() == ["lo"]


def test_simulated_agents_on_real_instances_through_the_container_backend(
    engine, mirror, instances, tmp_path, monkeypatch
):
    env = {"AMPBENCH_CONTAINER_ENGINE": str(engine)}
    # The simulator serves from a process of its own: it learns the gold patches from the file.
    monkeypatch.setenv("AMPBENCH_SIM_SWE_INSTANCES", str(INSTANCES))
    with sim_serve(faults=0.1, seed=5) as server:
        out = tmp_path / "run"
        result = ampbench(
            "run",
            "--suite",
            "swe",
            "--instances",
            str(INSTANCES),
            "--task",
            f"{FLASK},{MARSHMALLOW}",
            "--model",
            "sim:swe-oracle",
            "--model",
            "sim:swe-flailer",
            "--backend",
            "docker",
            "--images",
            "build",
            "--repo-mirror",
            str(mirror),
            "--offline",
            "--sim-url",
            server.url,
            "--out",
            str(out),
            "--no-progress",
            env=env,
            timeout=1800,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        stats = server.stats()
    with open(out / "tasks.csv", newline="") as handle:
        tasks = {(row["task_id"], row["model"]): row for row in csv.DictReader(handle)}
    for instance_id in (FLASK, MARSHMALLOW):
        assert tasks[(instance_id, "sim:swe-oracle")]["grade_status"] == "resolved"
        assert tasks[(instance_id, "sim:swe-flailer")]["grade_status"] == "unresolved"
    exchanges = [json.loads(line) for line in (out / "exchanges.jsonl").read_text().splitlines() if line]
    assert len(exchanges) == stats["requests"]
    assert sum(int(t["exchanges"]) for t in tasks.values()) == stats["requests"]
    # The oracle's patch is the gold patch, as the agent made it in the container.
    preds = {
        (p["instance_id"], p["model_name_or_path"]): p for p in map(json.loads, (out / "preds.jsonl").open())
    }

    def changed(patch: str) -> list[str]:
        return [line for line in patch.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]

    for instance_id in (FLASK, MARSHMALLOW):
        gold = changed(instances[instance_id].patch)
        assert changed(preds[(instance_id, "sim:swe-oracle")]["model_patch"]) == gold
        assert changed(preds[(instance_id, "sim:swe-flailer")]["model_patch"]) != gold


def test_grade_command_validates_environments_and_grades_any_agents_predictions(engine, mirror, tmp_path):
    env = {"AMPBENCH_CONTAINER_ENGINE": str(engine)}
    common = ["--instances", str(INSTANCES), "--backend", "docker", "--images", "build"]
    common += ["--repo-mirror", str(mirror), "--offline", "--task", f"{FLASK},{MARSHMALLOW}"]
    gold = ampbench("grade", "--gold", *common, "--out", str(tmp_path / "gold"), env=env, timeout=1800)
    assert gold.returncode == 0, gold.stderr[-3000:]
    report = json.loads((tmp_path / "gold" / "report.json").read_text())
    assert sorted(report["resolved_ids"]) == sorted([FLASK, MARSHMALLOW])
    # mini-swe-agent's preds.json, keyed by instance id.
    preds = tmp_path / "preds.json"
    preds.write_text(
        json.dumps(
            {
                FLASK: {"instance_id": FLASK, "model_name_or_path": "some-agent", "model_patch": ""},
                MARSHMALLOW: {
                    "instance_id": MARSHMALLOW,
                    "model_name_or_path": "some-agent",
                    "model_patch": "",
                },
            }
        )
    )
    graded = ampbench("grade", str(preds), *common, "--out", str(tmp_path / "preds"), env=env, timeout=1800)
    assert graded.returncode == 0, graded.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "preds" / "grades.jsonl").read_text().splitlines()]
    assert {r["instance_id"]: r["status"] for r in rows} == {FLASK: "unresolved", MARSHMALLOW: "unresolved"}
