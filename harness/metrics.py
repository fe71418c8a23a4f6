"""Every headline figure, defined once.

`summary.md`, `ampbench report`, the HTML report, `compare` and `project` all
read their numbers from here, so a figure cannot differ between them.

Rules (the README states them too):

- A figure is a ratio of sums over task runs, `sum(a) / sum(b)`: exchanges per
  request is `sum(exchanges) / requests`, exchanges per user turn is
  `sum(exchanges) / sum(user_turns)`, token amplification is
  `sum(input_tokens) / sum(prompt_tokens)`.
- Unknown values are excluded, never read as 0: a token, cost or score figure
  uses only the task runs that reported that value, and token amplification
  only those that reported both its input and its prompt tokens. A figure with
  no such task run is None.
- Errored task runs (status `error`) are counted apart, with their errors
  grouped by message; they are left out of every figure and distribution,
  because their counts stop wherever the failure struck.
- Task runs are grouped by suite, variant (suite options that change the
  agent, such as the SWE scaffold) and model.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.records import NUMERIC_TASK_COLUMNS, missing, number

KEY: list[str] = ["run", "task_id", "model", "repeat", "session"]
"""Columns that identify one task run across runs (`run` is the position of its directory)."""

SIMULATED_LABEL = " (simulated)"
ERROR_STATUS = "error"

# Figures as (numerator, denominator) columns of the per-task matrix; every one is sum(a) / sum(b).
FIGURES: dict[str, tuple[str, str]] = {
    "exchanges_per_request": ("exchanges", "one"),
    "exchanges_per_user_turn": ("exchanges_ut", "user_turns"),
    "retries_share": ("retries", "exchanges"),
    "model_calls_per_request": ("model_calls", "one"),
    "tool_calls_per_request": ("tool_calls", "one"),
    "input_tokens_per_request": ("input_tokens", "input_tokens_known"),
    "output_tokens_per_request": ("output_tokens", "output_tokens_known"),
    "reasoning_tokens_per_request": ("reasoning_tokens", "reasoning_tokens_known"),
    "token_amplification": ("amp_input", "amp_prompt"),
    "visible_reasoning_share": ("reasoning_exchanges", "exchanges"),
    "judge_exchanges_per_request": ("judge_exchanges", "one"),
    "cost_usd_per_request": ("cost_usd", "cost_usd_known"),
    "score": ("score", "score_known"),
}

TITLES: dict[str, str] = {
    "exchanges_per_request": "exchanges per request",
    "exchanges_per_user_turn": "exchanges per user turn",
    "retries_share": "retries / exchanges",
    "model_calls_per_request": "model calls per request",
    "tool_calls_per_request": "tool calls per request",
    "input_tokens_per_request": "input tokens per request",
    "output_tokens_per_request": "output tokens per request",
    "reasoning_tokens_per_request": "reasoning tokens per request",
    "token_amplification": "token amplification (input / prompt tokens)",
    "visible_reasoning_share": "share of exchanges with visible reasoning",
    "judge_exchanges_per_request": "judge exchanges per request",
    "cost_usd_per_request": "cost per request (USD)",
    "score": "score (mean)",
}

RATIO_FIGURES: tuple[str, ...] = (
    "exchanges_per_request",
    "model_calls_per_request",
    "tool_calls_per_request",
    "input_tokens_per_request",
    "output_tokens_per_request",
    "token_amplification",
    "cost_usd_per_request",
)
"""Figures compared between each group and the baseline of its suite."""

DISTRIBUTIONS: tuple[str, ...] = ("exchanges", "model_calls", "tool_calls")
"""Per-request counts whose distribution (median, p90, max, ...) is reported beside the mean."""

TOTALS: tuple[str, ...] = (
    "user_turns",
    "exchanges",
    "unsent_attempts",
    "retries",
    "failed_exchanges",
    "model_calls",
    "tool_calls",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "visible_reasoning_chars",
    "judge_exchanges",
    "cost_usd",
)
"""Sums over the counted task runs of a group; token and cost totals are None when none is known."""

_ALWAYS_KNOWN_TOTALS = frozenset({"exchanges", "unsent_attempts", "retries", "model_calls", "tool_calls"})


# ---------------------------------------------------------------- task tables


def is_truthy(value: Any) -> bool:
    """A flag cell as written to tasks.csv (`true`, `1`, `yes`, ...)."""
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


def truthy(series: Any) -> Any:
    return series.map(is_truthy).astype(bool)


def variant_text(manifest: dict[str, Any]) -> str:
    """The suite options of a run that change the agent, as `name=value` text ('' for none)."""
    variant = manifest.get("variant") or {}
    if not isinstance(variant, dict):
        return ""
    return ", ".join(f"{k}={variant[k]}" for k in sorted(variant))


def label(model: str, simulated: bool, variant: str = "") -> str:
    """A group as people read it: the model, `(simulated)` where it is, and its variant."""
    return model + (SIMULATED_LABEL if simulated else "") + (f" [{variant}]" if variant else "")


_TEXT_DEFAULTS = ("run_id", "suite", "task_id", "model", "simulated", "source", "status", "error")


def normalise_task(
    row: Mapping[str, Any], run: int, run_dir: Path, manifest: dict[str, Any]
) -> dict[str, Any]:
    """One tasks.csv row with typed cells, plus run, run_dir and variant (unknown numbers are NaN)."""
    out = {k: (None if missing(v) else v) for k, v in row.items()}
    for col in (*_TEXT_DEFAULTS, "tool_calls_by_name", "no_provider_reason"):
        out.setdefault(col, None)
    for col in NUMERIC_TASK_COLUMNS:
        out[col] = number(out.get(col))
    out["run"] = run
    out["run_dir"] = str(run_dir)
    run_id = out["run_id"]
    out["run_id"] = str(manifest.get("run_id") or run_dir.name) if run_id is None else str(run_id)
    out["suite"] = str(manifest.get("suite") or "?") if out["suite"] is None else str(out["suite"])
    out["task_id"] = str(out["task_id"])
    out["model"] = str(out["model"])
    out["simulated"] = is_truthy(out["simulated"])
    out["status"] = "ok" if out["status"] is None else str(out["status"])
    for col in ("repeat", "session"):
        value = out[col]
        out[col] = 0 if math.isnan(value) else int(value)
    out["variant"] = variant_text(manifest)
    return out


def normalise_tasks(tasks: Any, run: int, run_dir: Path, manifest: dict[str, Any]) -> Any:
    """tasks.csv of one run (a DataFrame) with typed columns, plus run, run_dir, variant (`normalise_task`)."""
    import pandas as pd

    rows = [normalise_task(r, run, run_dir, manifest) for r in records(tasks)]
    columns = list(dict.fromkeys([*tasks.columns, *_TEXT_DEFAULTS, "tool_calls_by_name"]))
    columns += [c for c in NUMERIC_TASK_COLUMNS if c not in columns]
    columns += ["run", "run_dir", "variant", "no_provider_reason"]
    columns = list(dict.fromkeys(columns))
    frame = pd.DataFrame(rows, columns=columns)
    for col in NUMERIC_TASK_COLUMNS:
        frame[col] = frame[col].astype("float64")
    for col in ("repeat", "session", "run"):
        frame[col] = frame[col].astype("int64")
    frame["simulated"] = frame["simulated"].astype(bool)
    frame["no_provider_reason"] = frame["no_provider_reason"].astype(object)
    return frame


def labels(models: Iterable[str], simulated: Iterable[bool], variants: Iterable[str]) -> list[str]:
    """The label of every task run: a model is marked simulated wherever any of its task runs was."""
    rows = list(zip(models, simulated, variants, strict=True))
    sim = {m for m, s, _ in rows if s}
    return [label(m, m in sim, v) for m, _, v in rows]


def add_labels(tasks: Any) -> Any:
    """The `label` column of normalised task rows (a DataFrame or a list of dicts), see `labels`."""
    if isinstance(tasks, list):
        names = labels(
            (t["model"] for t in tasks), (t["simulated"] for t in tasks), (t["variant"] for t in tasks)
        )
        for task, name in zip(tasks, names, strict=True):
            task["label"] = name
        return tasks
    tasks["label"] = labels(tasks["model"], tasks["simulated"], tasks["variant"])
    return tasks


EXCHANGE_SUMS: tuple[str, ...] = (
    "reasoning_exchanges",
    "agent_latency_s",
    "agent_latency_known",
    "judge_latency_s",
    "judge_retries",
)
"""What a task run's features sum from its exchanges (tasks.csv does not carry them)."""


EXCHANGE_INPUTS: tuple[str, ...] = (
    *KEY,
    "role",
    "sent",
    "latency_ms",
    "attempt",
    "visible_reasoning_chars",
)
"""The exchange columns `exchange_sums` reads, in the order of its tuples."""


def exchange_sums(exchanges: Any, run: int | None = None) -> dict[tuple[Any, ...], list[float]]:
    """`EXCHANGE_SUMS` per task run (`KEY`) of exchange rows (dicts or a DataFrame), `sum_exchanges`.

    The rows carry a `run` column unless `run` is given (one run's exchanges).
    """
    if isinstance(exchanges, list):
        return sum_exchanges(
            tuple(run if c == "run" and run is not None else ex.get(c) for c in EXCHANGE_INPUTS)
            for ex in exchanges
        )
    size = len(exchanges)
    if not size:
        return {}
    columns = [
        [run] * size
        if c == "run" and run is not None
        else (exchanges[c].tolist() if c in exchanges else [None] * size)
        for c in EXCHANGE_INPUTS
    ]
    return sum_exchanges(zip(*columns, strict=True))


def sum_exchanges(exchanges: Iterable[tuple[Any, ...]]) -> dict[tuple[Any, ...], list[float]]:
    """`EXCHANGE_SUMS` per task run from exchanges as tuples of `EXCHANGE_INPUTS`.

    Agent exchanges showing visible reasoning, latencies and judge retries. Attempts that never
    reached the provider are not exchanges.
    """
    out: dict[tuple[Any, ...], list[float]] = {}
    for run, task_id, model, repeat, session, role, sent, latency_ms, attempt, vis in exchanges:
        sent = True if missing(sent) else bool(sent)
        agent = role == "agent" and sent
        judge = role == "judge" and sent
        latency = number(latency_ms) / 1000.0
        known = not math.isnan(latency)
        key = (int(run), str(task_id), model, int(repeat), int(session))
        sums = out.get(key)
        if sums is None:
            sums = out[key] = [0.0, 0.0, 0.0, 0.0, 0.0]
        if agent:
            if number(vis) > 0:
                sums[0] += 1
            if known:
                sums[1] += latency
                sums[2] += 1
        elif judge:
            if known:
                sums[3] += latency
            tries = number(attempt)
            if not math.isnan(tries) and tries > 1:
                sums[4] += 1
    return out


_FEATURE_COLUMNS = [*KEY, "suite", "variant", "label", "simulated", "status", "error", "tool_calls_by_name"]
_FEATURE_COLUMNS.append("no_provider_reason")
_FEATURE_COLUMNS += [c for c in NUMERIC_TASK_COLUMNS if c not in KEY]


def task_feature_rows(
    tasks: Iterable[Mapping[str, Any]],
    exchanges: Any = None,
    *,
    sums: dict[tuple[Any, ...], list[float]] | None = None,
) -> list[dict[str, Any]]:
    """One dict per task run with the numbers every figure is computed from.

    `tasks` are normalised, labelled task rows (`normalise_task`, `add_labels`); task-level
    counts come from them (themselves computed from the exchanges, or from an ingested log).
    What tasks.csv does not carry is summed from `exchanges` (`exchange_sums`), or given as `sums`.
    """
    if sums is None:
        sums = exchange_sums(exchanges if exchanges is not None else [])
    zero = [0.0] * len(EXCHANGE_SUMS)
    out = []
    for task in tasks:
        feat = {c: task.get(c) for c in _FEATURE_COLUMNS}
        found = sums.get(tuple(feat[k] for k in KEY), zero)
        feat.update(zip(EXCHANGE_SUMS, found, strict=True))
        if not feat["agent_latency_known"] > 0:
            feat["agent_latency_s"] = math.nan
        out.append(feat)
    return out


def task_features(tasks: Any, exchanges: Any) -> Any:
    """`task_feature_rows` as a DataFrame, for DataFrames of tasks (`normalise_tasks`, `add_labels`)
    and of exchanges (with a `run` column)."""
    import pandas as pd

    rows = task_feature_rows(records(tasks[_FEATURE_COLUMNS]), sums=exchange_sums(exchanges))
    feats = pd.DataFrame(rows, columns=[*_FEATURE_COLUMNS, *EXCHANGE_SUMS])
    for col in EXCHANGE_SUMS:
        feats[col] = feats[col].astype("float64")
    for col in ("run", "repeat", "session"):
        feats[col] = feats[col].astype("int64")
    return feats


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a DataFrame (or a list of rows) as dicts."""
    if isinstance(frame, list):
        return frame
    return frame.to_dict(orient="records")


def has_no_provider(feat: Mapping[str, Any]) -> bool:
    """A task run no provider was behind (ingested demonstrations, replays, scripted test models)."""
    reason = feat.get("no_provider_reason")
    return not missing(reason) and str(reason) != ""


def is_counted(feat: Mapping[str, Any]) -> bool:
    """A task run the figures count: not errored, and a provider behind it."""
    return feat["status"] != ERROR_STATUS and not has_no_provider(feat)


def no_provider(feats: Any) -> Any:
    """Boolean mask of `has_no_provider` over a DataFrame of features."""
    import numpy as np

    return np.array([has_no_provider(f) for f in records(feats)], dtype=bool)


def counted(feats: Any) -> Any:
    """Boolean mask of `is_counted` over a DataFrame of features."""
    import numpy as np

    return np.array([is_counted(f) for f in records(feats)], dtype=bool)


# ---------------------------------------------------------------- figures

STAT_COLUMNS: tuple[str, ...] = (
    "one",
    "exchanges",
    "retries",
    "model_calls",
    "tool_calls",
    "judge_exchanges",
    "reasoning_exchanges",
    "user_turns",
    "exchanges_ut",
    "input_tokens",
    "input_tokens_known",
    "output_tokens",
    "output_tokens_known",
    "reasoning_tokens",
    "reasoning_tokens_known",
    "cost_usd",
    "cost_usd_known",
    "score",
    "score_known",
    "amp_input",
    "amp_prompt",
)
"""The per-task-run values behind `FIGURES` (the columns of `stat_matrix`)."""


def _finite(value: Any) -> bool:
    return not missing(value) and math.isfinite(value)


def stat_row(feat: Mapping[str, Any]) -> tuple[float, ...]:
    """The `STAT_COLUMNS` of one task run: unknown values are 0 with a 0 in their `_known` column."""
    row: dict[str, float] = {"one": 1.0}
    for name in (
        "exchanges",
        "retries",
        "model_calls",
        "tool_calls",
        "judge_exchanges",
        "reasoning_exchanges",
    ):
        value = feat[name]
        row[name] = 0.0 if missing(value) else float(value)
    ut = feat["user_turns"]
    ut_known = _finite(ut) and ut > 0
    row["user_turns"] = float(ut) if ut_known else 0.0
    row["exchanges_ut"] = row["exchanges"] if ut_known else 0.0
    for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cost_usd", "score"):
        value = feat[name]
        known = _finite(value)
        row[name] = float(value) if known else 0.0
        row[name + "_known"] = 1.0 if known else 0.0
    inp, prompt = feat["input_tokens"], feat["prompt_tokens"]
    both = _finite(inp) and _finite(prompt)
    row["amp_input"] = float(inp) if both else 0.0
    row["amp_prompt"] = float(prompt) if both else 0.0
    return tuple(row[n] for n in STAT_COLUMNS)


def stat_matrix(feats: Any) -> tuple[Any, list[str]]:
    """The per-task-run matrix behind `FIGURES`: one `stat_row` per task run."""
    import numpy as np

    rows = [stat_row(f) for f in records(feats)]
    matrix = np.array(rows, dtype=float) if rows else np.zeros((0, len(STAT_COLUMNS)))
    return matrix, list(STAT_COLUMNS)


def ratio(num: Any, den: Any) -> Any:
    """Element-wise num / den, NaN where the denominator is 0 (no task run knew the value)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def column_sums(rows: Iterable[tuple[float, ...]]) -> list[float]:
    """Sums of `stat_row`s, column by column, added in row order."""
    sums = [0.0] * len(STAT_COLUMNS)
    for row in rows:
        sums = [a + b for a, b in zip(sums, row, strict=True)]
    return sums


def figures_from_sums(sums: Any, names: list[str]) -> dict[str, float | None]:
    """Every figure from the column sums of a (sub)matrix of `stat_matrix`."""
    col = {n: i for i, n in enumerate(names)}
    out: dict[str, float | None] = {}
    for figure, (a, b) in FIGURES.items():
        den = sums[col[b]]
        out[figure] = float(sums[col[a]] / den) if den > 0 else None
    return out


def figures(feats: Any) -> dict[str, float | None]:
    """Point values of every figure over the counted task runs of `feats` (rows or a DataFrame)."""
    rows = [stat_row(f) for f in records(feats) if is_counted(f)]
    return figures_from_sums(column_sums(rows), list(STAT_COLUMNS))


def distribution(values: Any) -> dict[str, float | int | None]:
    """mean, median, p90 (linear interpolation between order statistics), min, max, sd (n-1)."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"n": 0, "mean": None, "median": None, "p90": None, "min": None, "max": None, "sd": None}
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "median": float(np.percentile(x, 50)),
        "p90": float(np.percentile(x, 90)),
        "min": float(x.min()),
        "max": float(x.max()),
        "sd": float(x.std(ddof=1)) if len(x) > 1 else None,
    }


def totals(feats: Any) -> dict[str, Any]:
    """Sums over the counted task runs; unknown-able columns are None when no task run knew them."""
    good = [f for f in records(feats) if is_counted(f)]
    out: dict[str, Any] = {}
    for name in TOTALS:
        known = [f[name] for f in good if not missing(f[name])]
        if name in _ALWAYS_KNOWN_TOTALS:
            out[name] = int(sum(known))
        elif name == "cost_usd":
            out[name] = float(sum(known)) if known else None
        else:
            out[name] = int(sum(known)) if known else None
    return out


def errors(feats: Any) -> dict[str, Any]:
    """Errored task runs of `feats`: how many, and how many per error message (most frequent first)."""
    rows = records(feats)
    bad = [f for f in rows if f["status"] == ERROR_STATUS]
    messages = Counter(
        str(e) if isinstance(e, str) and e else "unknown error" for e in (f["error"] for f in bad)
    )

    def total(name: str) -> int:
        return int(sum(f[name] for f in bad if not missing(f[name])))

    return {
        "errored": len(bad),
        "errors": dict(sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))),
        "errored_exchanges": total("exchanges"),
        "errored_unsent_attempts": total("unsent_attempts"),
        "no_provider": sum(1 for f in rows if has_no_provider(f) and f["status"] != ERROR_STATUS),
    }


def error_lines(group_label: str, errs: dict[str, Any], *, limit: int = 5) -> list[str]:
    """Human lines for the errors of one group (and its task runs without a provider)."""
    out = []
    if errs.get("no_provider"):
        out.append(
            f"{group_label}: {errs['no_provider']} task run(s) had no provider behind them (demonstrations, "
            "replays, scripted models; see no_provider_reason) and are left out of the figures"
        )
    if not errs["errored"]:
        return out
    head = (
        f"{group_label}: {errs['errored']} task run(s) errored and are left out of the figures"
        f" ({errs['errored_exchanges']} exchanges and {errs['errored_unsent_attempts']} unsent attempts"
        " before the failures)"
    )
    out.append(head)
    items = list(errs["errors"].items())
    for message, n in items[:limit]:
        out.append(f"  {n}× {message[:300]}")
    if len(items) > limit:
        out.append(f"  … and {len(items) - limit} other error messages")
    return out
