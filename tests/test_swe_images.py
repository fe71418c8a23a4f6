"""The pieces of the container path that need no container: engine settings, image recipes,
the official specs and parsers, simulated agents on real instances, env_error grades.

The containers themselves are exercised in tests/test_swe_containers.py (marked `containers`).
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from harness.errors import UserError
from suites.swe import grading, sim_agents
from suites.swe.containers import Engine, engine_setting, resolve_engine, rlimit_flags
from suites.swe.images import ImageError, ImageSettings, base_image, build_instance_image, containerfile
from suites.swe.instances import bundled_instances, read_instances
from suites.swe.official import SpecError, environment_spec, official_tests

DATA = Path(__file__).parent / "data" / "swebench"
REAL = {i.instance_id: i for i in read_instances(DATA / "instances.jsonl").instances}
FLASK = REAL["pallets__flask-4992"]


def test_engine_setting_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMPBENCH_CONTAINER_ENGINE", raising=False)
    assert engine_setting(None, None) == "auto"
    assert engine_setting(None, "podman") == "podman"
    monkeypatch.setenv("AMPBENCH_CONTAINER_ENGINE", "podman --runtime runc")
    assert engine_setting(None, "docker") == "podman --runtime runc"
    assert engine_setting("docker", "podman") == "docker"


def test_an_engine_command_line_keeps_its_flags(tmp_path: Path) -> None:
    fake = tmp_path / "podman"
    fake.write_text('#!/bin/sh\n[ "$3" = info ] && [ "$1" = --runtime ] && exit 0\nexit 1\n')
    fake.chmod(0o755)
    engine = resolve_engine(f"{fake} --runtime runc")
    assert engine.argv == (str(fake), "--runtime", "runc")
    assert engine.name == "podman"
    assert engine.command("exec", "x") == [str(fake), "--runtime", "runc", "exec", "x"]
    with pytest.raises(UserError, match="does not run here"):
        resolve_engine(str(fake))  # without its flags `info` fails
    with pytest.raises(UserError, match="No closing quotation"):
        resolve_engine("podman 'unterminated")


def test_container_rlimits_never_exceed_the_harness_own() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    flags = rlimit_flags(512)
    nofile = next(f for f in flags if f.startswith("--ulimit=nofile="))
    got_soft, got_hard = (int(x) for x in nofile.split("=", 2)[2].split(":"))
    assert got_hard <= hard and got_soft <= got_hard and got_soft <= soft
    assert "--ulimit=nproc=512:512" in flags
    assert not any("nproc" in f for f in rlimit_flags(None))


def test_the_official_spec_is_used_with_overrides_on_top() -> None:
    spec = environment_spec(FLASK)
    assert spec["python"] == "3.11" and spec["packages"] == "requirements.txt"
    assert "Werkzeug==2.3.7" in spec["pip_packages"]
    over = environment_spec(
        FLASK, {"pallets/flask": {"python": "3.13"}, FLASK.instance_id: {"install": "true"}}
    )
    assert (
        over["python"] == "3.13"
        and over["install"] == "true"
        and over["pip_packages"] == spec["pip_packages"]
    )
    bundled = bundled_instances()[0]
    assert environment_spec(bundled)["pip_packages"] == ["pytest"]


def test_an_instance_without_a_spec_is_an_image_error() -> None:
    unknown = FLASK.__class__(
        **{**FLASK.__dict__, "repo": "nobody/nothing", "instance_id": "nobody__nothing-1"}
    )
    settings = ImageSettings(engine=Engine(("false",)), source="build")
    with pytest.raises(SpecError, match="no environment spec for nobody/nothing"):
        build_instance_image(unknown, settings)


def test_the_recipe_follows_the_spec_in_the_official_order() -> None:
    spec = {
        "python": "3.9",
        "packages": "numpy pytest",
        "pip_packages": ["attrs==23.1.0", "hypothesis"],
        "pre_install": ["apt-get update && apt-get install -y locales"],
        "install": "python -m pip install -e .",
    }
    recipe = containerfile(spec, base="localhost/base:py3.9", python="3.9", requirements=None, ca=True)
    lines = recipe.splitlines()
    assert lines[0] == "FROM localhost/base:py3.9"
    order = [
        "python3.9 || command -v python3) && $PY -m venv /opt/testbed",
        "install --upgrade pip wheel",
        "install numpy pytest",
        "install attrs==23.1.0 hypothesis",
        "COPY testbed /testbed",
        "apt-get install -y locales",
        "pip install -e .",
    ]
    positions = [next(i for i, line in enumerate(lines) if step in line) for step in order]
    assert positions == sorted(positions)
    # pip trusts the harness's certificate authority during the build only, not in the image's ENV.
    assert "COPY build-ca.pem /etc/ampbench-build-ca.pem" in lines
    assert all("PIP_CERT" not in line for line in lines if line.startswith("ENV"))
    with_reqs = containerfile(spec, base="b", python="3.9", requirements="flask==2.3", ca=False)
    assert "-r /root/requirements.txt" in with_reqs and "install numpy pytest" not in with_reqs


def test_base_images_need_a_debian_release_or_a_given_image() -> None:
    settings = ImageSettings(engine=Engine(("false",)))
    with pytest.raises(ImageError, match=r"no Debian release ships Python 3\.7.*--base-image"):
        base_image("3.7", settings)
    with pytest.raises(UserError, match="placeholder"):
        ImageSettings(engine=Engine(("false",)), base_image="python:3.9-slim")
    with pytest.raises(UserError, match="unknown image source"):
        ImageSettings(engine=Engine(("false",)), source="somewhere")


def test_real_instances_are_graded_with_the_official_command_and_parser() -> None:
    command, parse = official_tests(FLASK)
    # swebench's TEST_PYTEST for Python repositories, on the file the test patch touches.
    assert command == "pytest -rA tests/test_config.py"
    log = (
        "PASSED tests/test_config.py::test_config_from_pyfile\n"
        "FAILED tests/test_config.py::test_config_from_file_toml - TypeError: bad\n"
    )
    assert parse(log) == {
        "tests/test_config.py::test_config_from_pyfile": "PASSED",
        "tests/test_config.py::test_config_from_file_toml": "FAILED",
    }
    assert official_tests(bundled_instances()[0]) is None


def test_no_environment_is_env_error_not_error() -> None:
    def factory(instance):
        raise ImageError(f"{instance.instance_id}: building its environment failed at STEP 3/9: boom")

    result = grading.grade(FLASK, FLASK.patch, factory)
    assert result.status == grading.ENV_ERROR and result.resolved is False
    assert "building its environment failed" in result.reason


def test_simulated_agents_know_real_instances_and_apply_the_gold_patch() -> None:
    sim_agents.know_instances([FLASK])
    known = sim_agents.find_instance("Please fix this.\n" + FLASK.problem_statement)
    assert known is not None and known.instance_id == FLASK.instance_id and known.project is None
    for mode in ("tools", "bash-only"):
        plan = sim_agents.oracle_plan(known, mode, [])
        patches = [a for a in plan if a.kind == "patch"]
        assert len(patches) == 1 and patches[0].patch == FLASK.patch
        assert plan[-1].kind == "submit"
    flail = sim_agents.flailer_plan(known, "tools", [])
    assert not any(a.kind == "patch" for a in flail)
