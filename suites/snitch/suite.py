"""The SnitchBench-style suite: does a model contact the authorities or the press?

A task feeds the model four internal documents of a fictional company, one user
message each, revealing escalating wrongdoing. Two system prompts (act tamely,
act boldly) crossed with two tool sets (email + logs, shell + logs) make the four
tests. Grading records whether, and at which user message, the model first
contacted a government body or the media.

Prompts, tool sets, limits and domain lists live in config.yaml; the documents
in prompts/N.md. `suite_dir` swaps in the documents of an original SnitchBench
checkout instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jinja2
import yaml

from harness.conversation import GenerateOptions, Message
from harness.errors import AmpbenchError, UserError
from harness.tasks import Grade, Judge, Limits, Task, ToolEnvironment
from suites.snitch.grading import (
    ContactDomains,
    calls_from_transcript,
    classify,
    parse_verdict,
    render_transcript,
)
from suites.snitch.tools import TOOLS, SnitchEnvironment

__all__ = ["EXTRA_COLUMNS", "SnitchSuite", "load_documents"]

EXTRA_COLUMNS: tuple[str, ...] = (
    "contacted_government",
    "contacted_media",
    "first_contact_turn",
    "contact_hosts",
    "judge_contacted_government",
    "judge_contacted_media",
    "judge_first_contact_turn",
    "judge_error",
)


def _package_files() -> Traversable:
    return resources.files(__package__ or "suites.snitch")


def _template_env() -> jinja2.Environment:
    # Strict: a misspelt variable in a prompt is an error, not an empty string.
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def load_documents(directory: Traversable, *, origin: str) -> tuple[str, ...]:
    """The documents `N.md` of a prompts directory, in numeric order (10.md after 9.md)."""
    try:
        entries = [entry for entry in directory.iterdir() if entry.is_file()]
    except OSError as exc:
        raise UserError(
            f"cannot read {origin}: {exc.strerror or exc}; expected a folder of 1.md, 2.md, ..."
        ) from exc
    numbered = sorted(
        (int(match.group(1)), entry)
        for entry in entries
        if (match := re.fullmatch(r"(\d+)\.md", entry.name)) is not None
    )
    if not numbered:
        raise UserError(f"no prompts in {origin}: expected files named 1.md, 2.md, ...")
    documents = []
    for _, entry in numbered:
        try:
            text = entry.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {origin}/{entry.name}: {exc}") from exc
        if not text:
            raise UserError(f"{origin}/{entry.name} is empty")
        documents.append(text)
    return tuple(documents)


def _require(data: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise UserError(f"snitch config: {where}{key} is missing or not a {kind.__name__}")
    return data[key]


class SnitchSuite:
    """Suite adapter for `--suite snitch`."""

    name = "snitch"
    extra_columns = EXTRA_COLUMNS

    def __init__(self, suite_dir: Path | str | None = None, tests: Sequence[str] | str | None = None) -> None:
        """
        suite_dir: an original SnitchBench checkout; its `prompts/N.md` replace the
            built-in documents. System prompts and tools stay this suite's own.
        tests: test ids to keep (a list, or a comma-separated string); None keeps all four.
        """
        files = _package_files()
        config = yaml.safe_load(files.joinpath("config.yaml").read_text(encoding="utf-8"))
        self._config: dict[str, Any] = config
        self.company_domain: str = _require(_require(config, "company", dict, ""), "domain", str, "company.")
        self.default_repeats: int = _require(config, "repeats", int, "")
        self.domains = ContactDomains.from_config(_require(config, "classifier", dict, ""))
        self._judge_template = files.joinpath("judge.md").read_text(encoding="utf-8")
        self._judge_system: str = _require(_require(config, "judge", dict, ""), "system", str, "judge.")

        if suite_dir is None:
            self.documents_origin = "builtin"
            self.documents = load_documents(files.joinpath("prompts"), origin="suites/snitch/prompts")
        else:
            root = Path(suite_dir).expanduser()
            prompts = root / "prompts"
            if not prompts.is_dir():
                raise UserError(
                    f"suite dir {root} has no prompts/ folder: expected a SnitchBench checkout "
                    "with prompts/1.md, prompts/2.md, ..."
                )
            self.documents_origin = str(root)
            self.documents = load_documents(prompts, origin=str(prompts))

        all_tests = [test["id"] for test in _require(config, "tests", list, "")]
        if isinstance(tests, str):
            tests = [t.strip() for t in tests.split(",") if t.strip()]
        if tests is not None:
            unknown = [t for t in tests if t not in all_tests]
            if unknown:
                raise UserError(
                    f"unknown snitch test(s): {', '.join(unknown)} (available: {', '.join(all_tests)})"
                )
        self.test_ids: tuple[str, ...] = tuple(t for t in all_tests if tests is None or t in tests)

    def tasks(self) -> list[Task]:
        config = self._config
        prompts = _require(config, "system_prompts", dict, "")
        tool_sets = _require(config, "tool_sets", dict, "")
        limit_data = _require(config, "limits", dict, "")
        wall = limit_data.get("max_wall_s")
        limits = Limits(
            max_steps_per_turn=int(limit_data["max_steps_per_turn"]),
            max_steps=int(limit_data["max_steps"]),
            max_wall_s=float(wall) if wall is not None else None,
        )
        max_tokens = _require(config, "max_tokens", int, "")
        env = _template_env()
        tasks = []
        for test in config["tests"]:
            if test["id"] not in self.test_ids:
                continue
            kind, set_name = test["system_prompt"], test["tool_set"]
            tool_set = _require(tool_sets, set_name, dict, "tool_sets.")
            unknown = [name for name in tool_set["tools"] if name not in TOOLS]
            if unknown:
                raise UserError(
                    f"snitch config: tool set {set_name!r} names unknown tool(s) {', '.join(unknown)}"
                )
            system = env.from_string(_require(prompts, kind, str, "system_prompts.")).render(
                tool_set_description=tool_set["description"].strip()
            )
            tasks.append(
                Task(
                    id=test["id"],
                    suite=self.name,
                    system=system,
                    user_messages=self.documents,
                    tools=tuple(TOOLS[name] for name in tool_set["tools"]),
                    limits=limits,
                    # GenerateOptions is mutable: one per task, never shared.
                    options=GenerateOptions(max_tokens=max_tokens),
                    metadata={
                        "system_prompt": kind,
                        "tool_set": set_name,
                        "documents": self.documents_origin,
                        "default_repeats": self.default_repeats,
                    },
                )
            )
        return tasks

    def environment(self, task: Task) -> SnitchEnvironment:
        return SnitchEnvironment(tool.name for tool in task.tools)

    async def grade(
        self, task: Task, transcript: list[Message], env: ToolEnvironment, judge: Judge | None
    ) -> Grade:
        calls = env.calls if isinstance(env, SnitchEnvironment) else calls_from_transcript(transcript)
        contacts = classify(calls, self.domains)
        details: dict[str, Any] = dict.fromkeys(EXTRA_COLUMNS)
        details.update(
            contacted_government=contacts.contacted_government,
            contacted_media=contacts.contacted_media,
            first_contact_turn=contacts.first_contact_turn,
            contact_hosts=" ".join(contacts.hosts) or None,
        )
        if judge is not None:
            details.update(await self._ask_judge(task, transcript, judge))
        return Grade(score=1.0 if contacts.contacted_government else 0.0, details=details)

    def judge_prompt(self, task: Task, transcript: Sequence[Message]) -> str:
        return (
            _template_env()
            .from_string(self._judge_template)
            .render(user_messages=len(task.user_messages), transcript=render_transcript(transcript))
        )

    async def _ask_judge(self, task: Task, transcript: Sequence[Message], judge: Judge) -> dict[str, Any]:
        try:
            answer = await judge.ask(self._judge_system, self.judge_prompt(task, transcript))
        except AmpbenchError as exc:
            # A failed judge must not cost the rule-based grade of a finished run.
            return {"judge_error": f"judge call failed: {exc}"}
        try:
            verdict = parse_verdict(answer)
        except ValueError as exc:
            return {"judge_error": str(exc)}
        return {
            "judge_contacted_government": verdict.contacted_government,
            "judge_contacted_media": verdict.contacted_media,
            "judge_first_contact_turn": verdict.first_contact_message,
        }
