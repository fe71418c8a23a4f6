"""Grading a whole predictions file, SWE-bench style: what `ampbench grade` runs.

`plan` matches predictions (`grading.read_predictions` rows, or `gold_predictions`)
with the instances to grade; `grade_predictions` grades each match with
`grading.grade` in a few threads and hands every result to a callback as it
finishes (so a caller can write it at once and lose nothing to Ctrl-C);
`report` sums the results up in the shape of the official harness's report
(``total_instances``, ``resolved_ids``, ...).

One prediction is graded per instance and model. When a file holds several for
the same pair (``ampbench run --repeats``), the last one is graded, as the
official harness does, and a warning says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from suites.swe import grading
from suites.swe.instances import Instance

GOLD = "gold"
"""The model name of gold patches."""
VERDICTS = frozenset({"resolved", "unresolved", "patch_failed", "test_patch_failed", "timeout"})
"""Statuses that are a verdict on the patch; the others (env_error, error) are not."""
NO_VERDICT = (grading.ENV_ERROR, "error")

__all__ = [
    "GOLD",
    "NO_VERDICT",
    "VERDICTS",
    "Graded",
    "Plan",
    "Prediction",
    "gold_predictions",
    "grade_predictions",
    "plan",
    "predictions_from_rows",
    "report",
]


@dataclass(frozen=True)
class Prediction:
    instance_id: str
    model: str
    """model_name_or_path ('' when the file gives none; 'gold' for gold patches)."""
    patch: str


@dataclass(frozen=True)
class Graded:
    """One prediction and its grade."""

    prediction: Prediction
    result: grading.GradeResult

    @property
    def verdict(self) -> bool:
        return self.result.status in VERDICTS

    def to_dict(self) -> dict[str, Any]:
        """The grades.jsonl row: the prediction's identity, then `GradeResult.to_dict()`."""
        return {
            "instance_id": self.prediction.instance_id,
            "model_name_or_path": self.prediction.model,
            "patch_bytes": len(self.prediction.patch.encode("utf-8")),
            **self.result.to_dict(),
        }

    def to_row(self) -> dict[str, Any]:
        """The summary row (a table row, or `--format json`)."""
        r = self.result
        return {
            "instance_id": self.prediction.instance_id,
            "model": self.prediction.model,
            "status": r.status,
            "resolved": r.resolved,
            "fail_to_pass": f"{r.fail_to_pass_passed}/{len(r.fail_to_pass)}",
            "pass_to_pass": f"{r.pass_to_pass_passed}/{len(r.pass_to_pass)}",
            "reason": r.reason,
        }


def predictions_from_rows(rows: Iterable[Mapping[str, Any]], where: str = "predictions") -> list[Prediction]:
    """`grading.read_predictions` rows as Predictions (UserError for a field of the wrong type)."""
    found = []
    for index, row in enumerate(rows, start=1):
        instance_id, patch = row.get("instance_id"), row.get("model_patch")
        model = row.get("model_name_or_path")
        if not isinstance(instance_id, str) or not instance_id.strip():
            raise UserError(f"{where}: prediction {index}: instance_id must be a non-empty string")
        if patch is not None and not isinstance(patch, str):
            raise UserError(
                f"{where}: prediction {index} ({instance_id}): model_patch must be a string or null"
            )
        found.append(Prediction(instance_id.strip(), "" if model is None else str(model), patch or ""))
    return found


def gold_predictions(instances: Iterable[Instance]) -> tuple[list[Prediction], list[str]]:
    """Each instance's own gold patch as a prediction of model 'gold', and the ids of
    instances that have none (those cannot be graded this way)."""
    found, without = [], []
    for instance in instances:
        if instance.patch.strip():
            found.append(Prediction(instance.instance_id, GOLD, instance.patch))
        else:
            without.append(instance.instance_id)
    return found, without


@dataclass
class Plan:
    """Which prediction is graded on which instance."""

    jobs: list[tuple[Instance, Prediction]]
    """In the order of the instances, then of the models' first appearance."""
    instances: list[Instance]
    """The instances asked for (the whole file, or the --task ones)."""
    unknown: list[Prediction] = field(default_factory=list)
    """Predictions for instances that are not in the instances file."""
    not_selected: int = 0
    """Predictions for instances of the file that were not asked for."""
    missing: list[str] = field(default_factory=list)
    """Ids of instances asked for that have no prediction."""
    replaced: dict[tuple[str, str], int] = field(default_factory=dict)
    """(instance_id, model) -> how many earlier predictions the last one replaced."""


def plan(
    known: Sequence[Instance],
    predictions: Sequence[Prediction],
    *,
    selected: Sequence[Instance] | None = None,
) -> Plan:
    """Match `predictions` with `selected` (default: every instance of `known`, the whole file)."""
    selected = list(known if selected is None else selected)
    known_ids = {inst.instance_id for inst in known}
    selected_ids = {inst.instance_id for inst in selected}
    result = Plan(jobs=[], instances=selected)
    chosen: dict[tuple[str, str], Prediction] = {}
    for prediction in predictions:
        if prediction.instance_id not in known_ids:
            result.unknown.append(prediction)
        elif prediction.instance_id not in selected_ids:
            result.not_selected += 1
        else:
            key = (prediction.instance_id, prediction.model)
            if key in chosen:
                result.replaced[key] = result.replaced.get(key, 0) + 1
            chosen[key] = prediction
    by_instance: dict[str, list[Prediction]] = {}
    for (instance_id, _model), prediction in chosen.items():
        by_instance.setdefault(instance_id, []).append(prediction)
    for instance in selected:
        graded = by_instance.get(instance.instance_id)
        if not graded:
            result.missing.append(instance.instance_id)
        for prediction in graded or ():
            result.jobs.append((instance, prediction))
    return result


def grade_predictions(
    jobs: Sequence[tuple[Instance, Prediction]],
    workspace_factory: grading.WorkspaceFactory,
    *,
    concurrency: int = 2,
    timeout_s: float = grading.DEFAULT_GRADE_TIMEOUT_S,
    on_result: Callable[[Graded], None] | None = None,
) -> list[Graded]:
    """Grade every job with `grading.grade`, `concurrency` at a time in threads.

    `on_result` is called in the calling thread with each result as it finishes. Returns the
    results in the order of `jobs`. On KeyboardInterrupt (or any exception, e.g. one
    `on_result` raises) no new grade starts, the test runs in flight are killed and their
    workspaces removed, and the exception propagates; results already handed to
    `on_result` are all there is.
    """
    if concurrency < 1:
        raise UserError(f"the concurrency must be at least 1, got {concurrency}")
    factory = grading.CancellableWorkspaces(workspace_factory)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ampbench-grade")
    done: dict[int, Graded] = {}

    def one(instance: Instance, prediction: Prediction) -> Graded:
        return Graded(prediction, grading.grade(instance, prediction.patch, factory, timeout_s=timeout_s))

    try:
        pending: dict[Future[Graded], int] = {
            pool.submit(one, instance, prediction): index for index, (instance, prediction) in enumerate(jobs)
        }
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=pending.__getitem__):
                index = pending.pop(future)
                done[index] = future.result()
                if on_result is not None:
                    on_result(done[index])
    except BaseException:
        factory.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [done[i] for i in sorted(done)]


def report(
    graded: Sequence[Graded], chosen: Plan, *, interrupted: bool = False, **settings: Any
) -> dict[str, Any]:
    """The run's summary in the official harness's report.json shape (plus what it lacks:
    env_error_ids, ids by status, unknown and missing ids). Lists of ids are sorted and
    hold each id once (with several models, an id can be in more than one list: `models`
    then has one such summary per model). `settings` are added as they are."""
    models = sorted({g.prediction.model for g in graded} | {p.model for _, p in chosen.jobs})
    summary = _summary(graded, chosen.instances, [p for _, p in chosen.jobs])
    summary.update(
        unknown_ids=sorted({p.instance_id for p in chosen.unknown}),
        missing_ids=sorted(chosen.missing),
        interrupted=interrupted,
        **settings,
    )
    if len(models) > 1:
        summary["models"] = {
            model: _summary(
                [g for g in graded if g.prediction.model == model],
                chosen.instances,
                [p for _, p in chosen.jobs if p.model == model],
            )
            for model in models
        }
    else:
        summary["model_name_or_path"] = models[0] if models else None
    return summary


def _summary(
    graded: Sequence[Graded], instances: Sequence[Instance], submitted: Sequence[Prediction]
) -> dict[str, Any]:
    def ids(wanted: Callable[[Graded], bool]) -> list[str]:
        return sorted({g.prediction.instance_id for g in graded if wanted(g)})

    submitted_ids = sorted({p.instance_id for p in submitted})
    graded_ids = {g.prediction.instance_id for g in graded}
    completed = ids(lambda g: g.verdict)
    resolved = ids(lambda g: g.result.status == "resolved")
    unresolved = ids(lambda g: g.verdict and g.result.status != "resolved")
    errors = ids(lambda g: g.result.status == "error")
    env_errors = ids(lambda g: g.result.status == grading.ENV_ERROR)
    empty = sorted({p.instance_id for p in submitted if not p.patch.strip()})
    statuses = Counter(g.result.status for g in graded)
    return {
        "total_instances": len(instances),
        "submitted_instances": len(submitted_ids),
        "completed_instances": len(completed),
        "resolved_instances": len(resolved),
        "unresolved_instances": len(unresolved),
        "empty_patch_instances": len(empty),
        "error_instances": len(errors),
        "env_error_instances": len(env_errors),
        "status_counts": {s: statuses[s] for s in grading.GRADE_STATUSES if statuses[s]}
        | {s: n for s, n in sorted(statuses.items()) if s not in grading.GRADE_STATUSES},
        "completed_ids": completed,
        "incomplete_ids": sorted({i.instance_id for i in instances} - graded_ids),
        "empty_patch_ids": empty,
        "submitted_ids": submitted_ids,
        "resolved_ids": resolved,
        "unresolved_ids": unresolved,
        "error_ids": errors,
        "env_error_ids": env_errors,
        "ids_by_status": {s: ids(lambda g, s=s: g.result.status == s) for s in sorted(statuses)},
        "schema_version": 2,
    }
