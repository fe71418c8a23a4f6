"""The SWE-bench style suite: fix an issue in a real repository; the maintainers' tests decide.

One task per instance (the bundled mini suite, or `--instances FILE` of any
SWE-bench export). Each task run gets a fresh workspace at base_commit; the
agent works through one of two scaffolds (`tools`, `bash-only`, see
scaffolds.py); afterwards the workspace diff is the model patch, graded in
another fresh workspace by running FAIL_TO_PASS and PASS_TO_PASS, and
appended to `<run_dir>/preds.jsonl` in SWE-bench's predictions format.

Prompts, limits and defaults live in config.yaml. Every option is checked when
the suite is made: a bad one is a one-line UserError before any task runs.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Hashable, Mapping
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from harness.conversation import GenerateOptions, Message
from harness.errors import AmpbenchError, UserError
from harness.tasks import Grade, Judge, Limits, Task, ToolEnvironment
from suites.swe import grading
from suites.swe.containers import engine_setting, resolve_engine
from suites.swe.environment import TOOLS, EnvSettings, SweEnvironment, WorkspaceUnavailable
from suites.swe.execution import GUARDS, check_guard, limit_enforcement, remove_stale_containers
from suites.swe.images import ImageSettings, container_workspaces, ensure_image
from suites.swe.instances import Instance, bundled_instances, load_instances
from suites.swe.limits import ResourceLimits, limits_from_config, remove_stale_cgroups
from suites.swe.scaffolds import SCAFFOLDS, BashOnlyScaffold, ToolsScaffold
from suites.swe.workspace import (
    DockerWorkspace,
    TaskWorkspace,
    Workspace,
    remove_stale_workspaces,
)

__all__ = [
    "BACKENDS",
    "EXTRA_COLUMNS",
    "SCAFFOLDS",
    "SweSuite",
    "WorkspaceUnavailable",
    "forget_shared_verdicts",
    "load_config",
]

BACKENDS = ("local", "docker")
EXTRA_COLUMNS: tuple[str, ...] = (
    "resolved",
    "grade_status",
    "grade_reason",
    "patch_bytes",
    "f2p_passed",
    "f2p_total",
    "p2p_passed",
    "p2p_total",
)


def _template_env() -> jinja2.Environment:
    # Strict: a misspelt variable in a prompt is an error, not an empty string.
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def load_config() -> dict[str, Any]:
    text = resources.files(__package__ or "suites.swe").joinpath("config.yaml").read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise UserError("swe config: config.yaml must be a mapping")
    return config


def _section(data: Any, key: str, where: str = "") -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise UserError(f"swe config: {where}{key} is missing or not a mapping")
    return value


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"swe config: {where}{key} is missing or not text")
    return value


def _optional_number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(f"swe: {name} must be a positive number or null, got {value!r}")
    return float(value)


def _positive(value: Any, name: str, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(f"swe: {name} must be a positive number, got {value!r}")
    if kind is int and value != int(value):
        raise UserError(f"swe: {name} must be a whole number, got {value!r}")
    return kind(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"swe: {name} must be true or false, got {value!r}")
    return value


_NOTED: set[str] = set()

# Verdicts shared by every run in this process (`grading.grade_key`: the same instance, patch,
# test environment and time limit), like the base-commit check; and the locks their first
# graders hold, per event loop (a Ray worker runs each task run in a loop of its own).
_SHARED_GRADES: dict[Hashable, grading.GradeResult] = {}
_GRADE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def forget_shared_verdicts() -> None:
    """From now on, grade again what earlier runs of this process graded (a stress test that
    checks every replay's grades, a test that spies on the grader)."""
    _SHARED_GRADES.clear()


def _note_once(line: str) -> None:
    if line not in _NOTED:
        _NOTED.add(line)
        print(f"note: swe: {line}", file=sys.stderr)


class SweSuite:
    """Suite adapter for `--suite swe`."""

    name = "swe"
    default_repeats = 1
    extra_columns = EXTRA_COLUMNS

    def __init__(
        self,
        instances: str | Path | None = None,
        limit: int | None = None,
        shard: str | None = None,
        scaffold: str = "tools",
        backend: str = "local",
        repo_mirror: str | Path | None = None,
        *,
        step_limit: int | None = None,
        cost_limit: float | None = None,
        wall_time_s: float | None = None,
        command_timeout_s: float | None = None,
        max_output_bytes: int | None = None,
        guard: str | None = None,
        network: bool = True,
        workspace_dir: str | Path | None = None,
        command_network: bool | None = None,
        limits: ResourceLimits | Mapping[str, Any] | None = None,
        engine: str | None = None,
        images: str | None = None,
        base_image: str | None = None,
    ) -> None:
        """
        instances: a SWE-bench export (JSONL, JSON or Parquet); None is the bundled mini suite.
        limit / shard: keep the first N instances / shard 'i/n' of them.
        scaffold: 'tools' or 'bash-only'. backend: 'local' or 'docker' (a container engine:
            Docker or Podman, `engine` as in `suites.swe.containers`; `images` and `base_image`
            as in `suites.swe.images`; config.yaml's `containers` section gives the defaults).
        repo_mirror: a directory of git clones (owner__name) for repositories that are not bundled.
        step_limit, cost_limit, wall_time_s: override config.yaml's agent limits.
        command_timeout_s, max_output_bytes, guard: override config.yaml's environment settings.
        network: whether a repository that is neither bundled nor mirrored may be fetched from GitHub.
        workspace_dir: where workspaces are made (default: $TMPDIR/ampbench-workspaces).
        command_network: whether agent commands and test runs reach the network (config.yaml's
            environment.network); False needs a guard (or the docker backend).
        limits: resource limits of every command and test run, a ResourceLimits or a mapping like
            config.yaml's environment.limits (which it replaces).
        """
        if scaffold not in SCAFFOLDS:
            raise UserError(f"unknown scaffold {scaffold!r} (available: {', '.join(SCAFFOLDS)})")
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
        self.scaffold_name = scaffold
        self.variant = {"scaffold": scaffold}
        self.backend = backend
        self.repo_mirror = str(repo_mirror) if repo_mirror is not None else None
        if self.repo_mirror is not None and not Path(self.repo_mirror).is_dir():
            raise UserError(f"swe: the repo mirror {self.repo_mirror} is not a directory")
        self.network = _flag(network, "network")
        self.workspace_dir = str(workspace_dir) if workspace_dir is not None else None
        if self.workspace_dir is not None:
            where = Path(self.workspace_dir)
            try:
                where.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"swe: cannot use {where} for workspaces ({exc.strerror})") from None
            if not where.is_dir():
                raise UserError(f"swe: the workspace directory {where} is not a directory")

        config = load_config()
        self._config = config
        agent = _section(config, "agent")
        env_config = _section(config, "environment")
        self._scaffold_config = _section(_section(config, "scaffolds"), scaffold, "scaffolds.")
        self.step_limit = int(step_limit if step_limit is not None else agent.get("step_limit", 250))
        if self.step_limit < 1:
            raise UserError(f"swe: the step limit must be at least 1, got {self.step_limit}")
        self.cost_limit = _optional_number(
            cost_limit if cost_limit is not None else agent.get("cost_limit"), "cost_limit"
        )
        self.wall_time_s = _optional_number(
            wall_time_s if wall_time_s is not None else agent.get("wall_time_s"), "wall_time_s"
        )
        self.max_tokens = int(agent.get("max_tokens", 4096))
        self.command_timeout_s = _positive(
            command_timeout_s if command_timeout_s is not None else env_config.get("timeout_s", 60),
            "the command timeout",
        )
        self.max_output_bytes = _positive(
            max_output_bytes if max_output_bytes is not None else env_config.get("max_output_bytes", 100_000),
            "max_output_bytes",
            int,
        )
        self.observation_max_chars = _positive(
            env_config.get("observation_max_chars", 10_000), "environment.observation_max_chars", int
        )
        self.display_root = str(env_config.get("display_root", "/workspace"))
        self.guard = str(guard if guard is not None else env_config.get("guard", "auto"))
        if self.guard not in ("auto", *GUARDS):
            raise UserError(f"unknown guard {self.guard!r} (choose from auto, {', '.join(GUARDS)})")
        self.command_network = _flag(
            command_network if command_network is not None else env_config.get("network", True),
            "environment.network",
        )
        if isinstance(limits, ResourceLimits):
            self.limits = limits
        else:
            self.limits = limits_from_config(limits if limits is not None else env_config.get("limits"))
        containers = _section(config, "containers")
        self.grading_network = _flag(containers.get("grading_network", False), "containers.grading_network")
        self.images: ImageSettings | None = None
        if backend == "docker":
            # No engine, an unknown image source: one line now, not one per task run.
            self.images = ImageSettings(
                engine=resolve_engine(engine_setting(engine, containers.get("engine"))),
                source=str(images or containers.get("images") or "auto"),
                base_image=base_image or containers.get("base_image"),
                repo_mirror=self.repo_mirror,
                network=self.network,
                spec_overrides=dict(containers.get("spec_overrides") or {}),
            )
        if backend == "local":
            # An unknown or unavailable guard, or no network without a guard, fails here, not per task.
            resolved = check_guard(self.guard, network=self.command_network)
            for note in limit_enforcement(self.limits, resolved, network=self.command_network).notes:
                _note_once(note)
        self.command_env = {str(k): str(v) for k, v in (env_config.get("env") or {}).items()}
        grading_config = _section(config, "grading")
        self.grade_timeout_s = _positive(grading_config.get("timeout_s", 600), "grading.timeout_s")
        self.share_grades = _flag(
            grading_config.get("share_identical_patches", True), "grading.share_identical_patches"
        )
        self.submit_sentinel: str | None = (
            str(self._scaffold_config["submit_sentinel"]) if scaffold == "bash-only" else None
        )

        templates = _template_env()
        where = f"scaffolds.{scaffold}."
        try:
            self._system = templates.from_string(_text(self._scaffold_config, "system_template", where))
            self._instance = templates.from_string(_text(self._scaffold_config, "instance_template", where))
            self._observation = templates.from_string(_text(config, "observation_template", ""))
            feedback_key = "format_error_template" if scaffold == "bash-only" else "no_tool_call_template"
            self._feedback = templates.from_string(_text(self._scaffold_config, feedback_key, where))
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"swe config: template error on line {exc.lineno}: {exc.message}") from None

        if instances is None:
            self.instances_origin = "bundled"
            chosen = bundled_instances(limit=limit, shard=shard)
            self.warnings: list[str] = []
        else:
            self.instances_origin = str(instances)
            loaded = load_instances(instances, limit=limit, shard=shard)
            chosen, self.warnings = loaded.instances, loaded.warnings
            # The simulated agents (sim:swe-oracle ...) play models that know the gold patches.
            from suites.swe.sim_agents import know_instances

            know_instances(chosen)
            for warning in self.warnings[:5]:
                print(f"warning: skipped instance {warning}", file=sys.stderr)
            if len(self.warnings) > 5:
                print(f"warning: {len(self.warnings) - 5} more instances skipped", file=sys.stderr)
        self.instances: dict[str, Instance] = {inst.instance_id: inst for inst in chosen}

    # --- prompts -----------------------------------------------------------------------------

    @property
    def submit_command(self) -> str:
        return f"echo {self.submit_sentinel}" if self.submit_sentinel else "submit"

    @property
    def repo_dir(self) -> str:
        """Where the checkout is, as the model sees it (the same for every task run)."""
        return "/testbed" if self.backend == "docker" else f"{self.display_root}/repo"

    def _prompt_vars(self, instance: Instance) -> dict[str, Any]:
        return {
            "problem_statement": instance.problem_statement.strip(),
            "repo": instance.repo,
            "instance_id": instance.instance_id,
            "repo_dir": self.repo_dir,
            "timeout_s": f"{self.command_timeout_s:g}",
            "submit_command": self.submit_command,
        }

    def _render_observation(self, returncode: int | None, output: str) -> str:
        return self._observation.render(returncode=returncode, output=output)

    def _render_feedback(self, blocks: int) -> str:
        return self._feedback.render(blocks=blocks, submit_command=self.submit_command)

    # --- the Suite protocol ------------------------------------------------------------------

    def tasks(self) -> list[Task]:
        limits = Limits(
            max_steps_per_turn=self.step_limit,
            max_steps=self.step_limit,
            max_wall_s=self.wall_time_s,
            max_cost_usd=self.cost_limit,
        )
        tools = tuple(TOOLS.values()) if self.scaffold_name == "tools" else ()
        out = []
        for instance in self.instances.values():
            values = self._prompt_vars(instance)
            out.append(
                Task(
                    id=instance.instance_id,
                    suite=self.name,
                    system=self._system.render(**values),
                    user_messages=(self._instance.render(**values),),
                    tools=tools,
                    limits=limits,
                    # GenerateOptions is mutable: one per task, never shared.
                    options=GenerateOptions(max_tokens=self.max_tokens),
                    metadata={
                        "instance_id": instance.instance_id,
                        "repo": instance.repo,
                        "scaffold": self.scaffold_name,
                        "backend": self.backend,
                        "instances": self.instances_origin,
                    },
                )
            )
        return out

    def _make_workspace(self, instance: Instance) -> TaskWorkspace:
        if self.images is not None:
            return DockerWorkspace.create(
                instance,
                ensure_image(instance, self.images),
                engine=self.images.engine,
                timeout_s=self.command_timeout_s,
                max_output_bytes=self.max_output_bytes,
                limits=self.limits,
                network=self.command_network,
            )
        return Workspace.create(
            instance,
            repo_mirror=self.repo_mirror,
            network=self.network,
            base_dir=self.workspace_dir,
            guard=self.guard,
            timeout_s=self.command_timeout_s,
            max_output_bytes=self.max_output_bytes,
            extra_env=self.command_env,
            limits=self.limits,
            command_network=self.command_network,
        )

    def grading_workspaces(self) -> grading.WorkspaceFactory:
        if self.images is not None:
            return container_workspaces(self.images, limits=self.limits, network=self.grading_network)
        return grading.local_workspaces(
            repo_mirror=self.repo_mirror,
            network=self.network,
            base_dir=self.workspace_dir,
            guard=self.guard,
            extra_env=self.command_env,
            limits=self.limits,
            command_network=self.command_network,
        )

    def clean_stale(self) -> list[str]:
        """Remove what task runs of ampbench processes that were killed (SIGKILL) left behind:
        their workspaces (with whatever still runs in them), command cgroups and, with the
        docker backend, containers. Leaves everything of live processes alone; cheap when
        there is nothing to do. Returns one line per thing removed."""
        removed = [f"cgroup {p}" for p in remove_stale_cgroups()]
        removed += [f"workspace {p}" for p in remove_stale_workspaces(self.workspace_dir)]
        if self.images is not None:
            removed += [f"container {c}" for c in remove_stale_containers(self.images.engine)]
        return removed

    def environment(self, task: Task) -> SweEnvironment:
        instance = self.instances[task.id]
        settings = EnvSettings(
            render_observation=self._render_observation,
            timeout_s=self.command_timeout_s,
            max_output_bytes=self.max_output_bytes,
            observation_max_chars=self.observation_max_chars,
            display_root=self.display_root,
            submit_sentinel=self.submit_sentinel,
        )
        return SweEnvironment(task.id, settings, partial(self._make_workspace, instance))

    def scaffold(self, task: Task) -> ToolsScaffold | BashOnlyScaffold:
        """How the loop reads this suite's model turns."""
        if self.scaffold_name == "bash-only":
            return BashOnlyScaffold(format_error=self._render_feedback)
        return ToolsScaffold(no_tool_call_feedback=self._render_feedback(0))

    async def grade(
        self, task: Task, transcript: list[Message], env: ToolEnvironment, judge: Judge | None
    ) -> Grade:
        details: dict[str, Any] = dict.fromkeys(EXTRA_COLUMNS)
        instance = self.instances[task.id]
        if not isinstance(env, SweEnvironment) or env.workspace is None:
            reason = getattr(env, "error", None) or "no workspace"
            details.update(resolved=None, grade_status="error", grade_reason=reason, patch_bytes=0)
            return Grade(score=None, details=details, artifacts={"model_patch": ""})
        try:
            patch = await env.model_patch()
        except AmpbenchError as exc:
            # The agent broke the checkout's git (e.g. removed .git): nothing can be graded.
            details.update(
                resolved=False, grade_status="error", grade_reason=f"cannot take the model patch: {exc}"
            )
            return Grade(score=0.0, details=details, artifacts={"model_patch": ""})
        result = await self._grade_patch(instance, patch)
        # A verdict needs tests that could run: env_error (and error) leave the score and
        # `resolved` unknown (empty), never 0, and grade_status / grade_reason say why.
        known = result.status not in (grading.ENV_ERROR, "error")
        details.update(
            resolved=result.resolved if known else None,
            grade_status=result.status,
            grade_reason=result.reason or None,
            patch_bytes=len(patch.encode("utf-8")),
            f2p_passed=result.fail_to_pass_passed,
            f2p_total=len(instance.fail_to_pass),
            p2p_passed=result.pass_to_pass_passed,
            p2p_total=len(instance.pass_to_pass),
        )
        score = (1.0 if result.resolved else 0.0) if known else None
        return Grade(score=score, details=details, artifacts={"model_patch": patch})

    async def _grade_patch(self, instance: Instance, patch: str) -> grading.GradeResult:
        factory = self.grading_workspaces()
        if not self.share_grades:
            return await self._run_grade(instance, patch, factory)
        key = grading.grade_key(instance, patch, factory, self.grade_timeout_s)
        # The first task run with this patch grades it; the others wait for its verdict
        # rather than run the same tests beside it.
        locks = _GRADE_LOCKS.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(key, asyncio.Lock()):
            shared = _SHARED_GRADES.get(key)
            if shared is not None:
                return shared
            result = await self._run_grade(instance, patch, factory)
            if result.status in grading.SHAREABLE:
                _SHARED_GRADES[key] = result
            return result

    async def _run_grade(
        self, instance: Instance, patch: str, factory: grading.WorkspaceFactory
    ) -> grading.GradeResult:
        workspaces = grading.CancellableWorkspaces(factory)
        try:
            return await asyncio.to_thread(
                grading.grade,
                instance,
                patch,
                workspaces,
                timeout_s=self.grade_timeout_s,
            )
        except asyncio.CancelledError:
            # Cancelled (SIGTERM, Ctrl-C): the test run dies now and its workspace goes.
            workspaces.cancel()
            raise

    def write_artifacts(self, run_dir: Path, task: Task, model: str, repeat: int, grade: Grade) -> None:
        """Append the task run's prediction to preds.jsonl (SWE-bench's predictions format)."""
        grading.write_predictions(
            Path(run_dir) / "preds.jsonl",
            [
                {
                    "instance_id": task.id,
                    "model_name_or_path": model,
                    "model_patch": grade.artifacts.get("model_patch") or "",
                }
            ],
            append=True,
        )
