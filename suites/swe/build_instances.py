"""Regenerate suites/swe/instances.jsonl from the bundled project folders.

Each folder ``suites/swe/projects/<instance_id>/`` holds::

    repo/           the source tree at base_commit (package + tests), as a reader sees it
    gold.patch      the fix (git diff against repo/)
    test.patch      the tests that expose the bug (FAIL_TO_PASS live here)
    instance.yaml   repo, problem_statement, hints_text, FAIL_TO_PASS, PASS_TO_PASS,
                    version, created_at (and optional `notes` for maintainers, not exported)
    obvious.patch   optional: a tempting fix that is wrong (tests assert it breaks PASS_TO_PASS)

``base_commit`` is the hash of a deterministic commit of repo/ (see
`suites.swe.workspace.build_repo_from_tree`), so it is the same everywhere.

Usage::

    python -m suites.swe.build_instances            # rewrite instances.jsonl
    python -m suites.swe.build_instances --check    # exit 1 if it is out of date
    python -m suites.swe.build_instances --discover ampbench__tinycsv-1
        # run the tests before and after the gold patch and print FAIL_TO_PASS /
        # PASS_TO_PASS as they should appear in instance.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError
from suites.swe.instances import BUNDLED_JSONL, PROJECTS_DIR, Instance
from suites.swe.workspace import (
    Workspace,
    build_repo_from_tree,
    bundled_commit_message,
    commit_date,
    host_git,
)

YAML_KEYS = {
    "repo",
    "problem_statement",
    "hints_text",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "version",
    "created_at",
    "notes",
}
REQUIRED_YAML_KEYS = ("repo", "problem_statement", "FAIL_TO_PASS", "PASS_TO_PASS", "version", "created_at")


def project_dirs(projects_dir: Path = PROJECTS_DIR) -> list[Path]:
    return sorted(p for p in projects_dir.iterdir() if (p / "instance.yaml").is_file())


def read_project(project: Path) -> dict[str, Any]:
    """instance.yaml plus the patches, validated; raises UserError naming the file."""
    spec_path = project / "instance.yaml"
    try:
        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{spec_path}: invalid YAML ({exc})") from None
    if not isinstance(spec, dict):
        raise UserError(f"{spec_path}: expected a mapping")
    unknown = set(spec) - YAML_KEYS
    missing = [k for k in REQUIRED_YAML_KEYS if k not in spec]
    if unknown or missing:
        raise UserError(f"{spec_path}: unknown keys {sorted(unknown)}, missing keys {missing}")
    for name in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        if not isinstance(spec[name], list) or not all(isinstance(t, str) for t in spec[name]):
            raise UserError(f"{spec_path}: {name} must be a list of pytest node ids")
    for name in ("gold.patch", "test.patch"):
        if not (project / name).is_file():
            raise UserError(f"{project}: {name} is missing")
    spec["patch"] = (project / "gold.patch").read_text(encoding="utf-8")
    spec["test_patch"] = (project / "test.patch").read_text(encoding="utf-8")
    return spec


def build_instance(project: Path, scratch: Path) -> Instance:
    """The Instance of one project folder; builds its repo under `scratch` and checks
    that both patches apply."""
    spec = read_project(project)
    instance_id = project.name
    version, created_at = str(spec["version"]), str(spec["created_at"])
    dest = scratch / instance_id
    base_commit = build_repo_from_tree(
        project / "repo",
        dest,
        message=bundled_commit_message(spec["repo"], version),
        date=commit_date(created_at),
    )
    for name in ("patch", "test_patch"):
        check = host_git(["apply", "--check", "-"], dest, stdin=spec[name].encode("utf-8"))
        if check.returncode != 0:
            raise UserError(f"{project}: {name} does not apply: {check.stderr.decode().strip()}")
    return Instance(
        instance_id=instance_id,
        repo=spec["repo"],
        base_commit=base_commit,
        problem_statement=spec["problem_statement"],
        patch=spec["patch"],
        test_patch=spec["test_patch"],
        fail_to_pass=tuple(spec["FAIL_TO_PASS"]),
        pass_to_pass=tuple(spec["PASS_TO_PASS"]),
        version=version,
        environment_setup_commit=base_commit,
        hints_text=spec.get("hints_text") or "",
        created_at=created_at,
    )


def build_all(projects_dir: Path = PROJECTS_DIR) -> list[Instance]:
    with tempfile.TemporaryDirectory(prefix="ampbench-build-") as tmp:
        return [build_instance(p, Path(tmp)) for p in project_dirs(projects_dir)]


def render(instances: list[Instance]) -> str:
    """instances.jsonl's exact text: one SWE-bench row per line, sorted by instance_id."""
    rows = sorted((inst.to_record() for inst in instances), key=lambda r: r["instance_id"])
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def is_up_to_date(path: Path = BUNDLED_JSONL, projects_dir: Path = PROJECTS_DIR) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == render(build_all(projects_dir))


def discover_tests(project: Path) -> tuple[list[str], list[str]]:
    """(FAIL_TO_PASS, PASS_TO_PASS) found by running every test of the project with
    the test patch, before and after the gold patch (a maintainer's authoring aid)."""
    from suites.swe.grading import parse_pytest_summary, pytest_command

    with tempfile.TemporaryDirectory(prefix="ampbench-discover-") as tmp:
        instance = build_instance(project, Path(tmp))
    outcomes = []
    for patch in ("", instance.patch):
        with Workspace.create(instance) as ws:
            ws.apply(patch)
            ws.apply(instance.test_patch)
            files = sorted(
                str(p.relative_to(ws.repo_dir)) for p in (ws.repo_dir / "tests").rglob("test_*.py")
            )
            result = ws.run(pytest_command(files), timeout_s=300, max_output_bytes=16 << 20)
            outcomes.append(parse_pytest_summary(result["output"]))
    before, after = outcomes
    f2p = sorted(t for t, s in after.items() if s == "PASSED" and before.get(t) != "PASSED")
    p2p = sorted(t for t, s in after.items() if s == "PASSED" and before.get(t) == "PASSED")
    return f2p, p2p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m suites.swe.build_instances", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if instances.jsonl is out of date")
    parser.add_argument(
        "--output", type=Path, default=BUNDLED_JSONL, help="where to write (default: %(default)s)"
    )
    parser.add_argument(
        "--discover", metavar="INSTANCE_ID", help="print FAIL_TO_PASS / PASS_TO_PASS for one project"
    )
    args = parser.parse_args(argv)
    try:
        if args.discover:
            f2p, p2p = discover_tests(PROJECTS_DIR / args.discover)
            print(yaml.safe_dump({"FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p}, sort_keys=False), end="")
            return 0
        text = render(build_all())
        if args.check:
            current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
            if current != text:
                print(
                    f"{args.output} is out of date; run: python -m suites.swe.build_instances",
                    file=sys.stderr,
                )
                return 1
            print(f"{args.output} is up to date ({text.count(chr(10))} instances)")
            return 0
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {text.count(chr(10))} instances to {args.output}")
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
