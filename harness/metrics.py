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

from collections import Counter
from pathlib import Path
from typing import Any

from harness.records import NUMERIC_TASK_COLUMNS

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


def truthy(series: Any) -> Any:
    return series.astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes"))


def variant_text(manifest: dict[str, Any]) -> str:
    """The suite options of a run that change the agent, as `name=value` text ('' for none)."""
    variant = manifest.get("variant") or {}
    if not isinstance(variant, dict):
        return ""
    return ", ".join(f"{k}={variant[k]}" for k in sorted(variant))


def label(model: str, simulated: bool, variant: str = "") -> str:
    """A group as people read it: the model, `(simulated)` where it is, and its variant."""
    return model + (SIMULATED_LABEL if simulated else "") + (f" [{variant}]" if variant else "")


def normalise_tasks(tasks: Any, run: int, run_dir: Path, manifest: dict[str, Any]) -> Any:
    """tasks.csv of one run with typed columns, plus run, run_dir, variant and label."""
    import pandas as pd

    tasks = tasks.copy()
    for col in ("run_id", "suite", "task_id", "model", "simulated", "source", "status", "error"):
        if col not in tasks:
            tasks[col] = None
    if "tool_calls_by_name" not in tasks:
        tasks["tool_calls_by_name"] = None
    for col in NUMERIC_TASK_COLUMNS:
        tasks[col] = pd.to_numeric(tasks[col], errors="coerce") if col in tasks else float("nan")
    tasks["run"] = run
    tasks["run_dir"] = str(run_dir)
    tasks["run_id"] = tasks["run_id"].fillna(manifest.get("run_id") or run_dir.name).astype(str)
    tasks["suite"] = tasks["suite"].fillna(manifest.get("suite") or "?").astype(str)
    tasks["task_id"] = tasks["task_id"].astype(str)
    tasks["model"] = tasks["model"].astype(str)
    tasks["simulated"] = truthy(tasks["simulated"])
    tasks["status"] = tasks["status"].fillna("ok").astype(str)
    tasks["repeat"] = tasks["repeat"].fillna(0).astype("int64")
    tasks["session"] = tasks["session"].fillna(0).astype("int64")
    tasks["variant"] = variant_text(manifest)
    if "no_provider_reason" not in tasks:
        tasks["no_provider_reason"] = None
    tasks["no_provider_reason"] = tasks["no_provider_reason"].where(tasks["no_provider_reason"].notna(), None)
    return tasks


def add_labels(tasks: Any) -> Any:
    """The `label` column: a model is marked simulated wherever any of its task runs was."""
    simulated = set(tasks.loc[tasks["simulated"], "model"])
    tasks["label"] = [
        label(m, m in simulated, v) for m, v in zip(tasks["model"], tasks["variant"], strict=True)
    ]
    return tasks


def task_features(tasks: Any, exchanges: Any) -> Any:
    """One row per task run with the numbers every figure is computed from.

    `tasks` are normalised task rows (`normalise_tasks`, `add_labels`); task-level
    counts come from them (themselves computed from the exchanges, or from an
    ingested log). What tasks.csv does not carry is summed here from `exchanges`
    (with a `run` column): agent exchanges showing visible reasoning, latencies
    and judge retries. Attempts that never reached the provider are not exchanges.
    """
    import numpy as np
    import pandas as pd

    columns = [*KEY, "suite", "variant", "label", "simulated", "status", "error", "tool_calls_by_name"]
    columns.append("no_provider_reason")
    columns += [c for c in NUMERIC_TASK_COLUMNS if c not in KEY]
    feats = tasks[columns].copy()
    extra = ["reasoning_exchanges", "agent_latency_s", "agent_latency_known", "judge_latency_s"]
    extra.append("judge_retries")
    ex = exchanges
    if len(ex):
        sent = ex["sent"].astype(bool) if "sent" in ex else pd.Series(True, index=ex.index)
        agent = (ex["role"] == "agent") & sent
        judge = (ex["role"] == "judge") & sent
        latency = pd.to_numeric(ex.get("latency_ms"), errors="coerce") / 1000.0
        attempt = pd.to_numeric(ex.get("attempt"), errors="coerce").fillna(1)
        vis = pd.to_numeric(ex.get("visible_reasoning_chars"), errors="coerce").fillna(0)
        frame = pd.DataFrame(
            {
                **{k: ex[k] for k in KEY},
                "reasoning_exchanges": (agent & (vis > 0)).astype("int64"),
                "agent_latency_s": latency.where(agent, 0.0).fillna(0.0),
                "agent_latency_known": (agent & latency.notna()).astype("int64"),
                "judge_latency_s": latency.where(judge, 0.0).fillna(0.0),
                "judge_retries": (judge & (attempt > 1)).astype("int64"),
            }
        )
        sums = frame.groupby(KEY, sort=False, observed=True).sum().reset_index()
        for k in ("repeat", "session", "run"):
            sums[k] = sums[k].astype("int64")
        sums["task_id"] = sums["task_id"].astype(str)
        sums["model"] = sums["model"].astype(str)
        feats = feats.merge(sums, on=KEY, how="left")
    for col in extra:
        if col not in feats:
            feats[col] = 0.0
        feats[col] = feats[col].fillna(0.0).astype("float64")
    feats["agent_latency_s"] = feats["agent_latency_s"].where(feats["agent_latency_known"] > 0, np.nan)
    return feats


def no_provider(feats: Any) -> Any:
    """Task runs no provider was behind (ingested demonstrations, replays, scripted test models)."""
    reason = feats["no_provider_reason"]
    return (reason.notna() & (reason.astype(str) != "")).to_numpy()


def counted(feats: Any) -> Any:
    """Boolean mask of the task runs that figures count: not errored, and a provider behind them."""
    return (feats["status"] != ERROR_STATUS).to_numpy() & ~no_provider(feats)


# ---------------------------------------------------------------- figures


def stat_matrix(feats: Any) -> tuple[Any, list[str]]:
    """The per-task-run matrix behind `FIGURES`: unknown values are 0 with a 0 in their `_known` column."""
    import numpy as np

    cols: dict[str, Any] = {"one": np.ones(len(feats))}
    for name in (
        "exchanges",
        "retries",
        "model_calls",
        "tool_calls",
        "judge_exchanges",
        "reasoning_exchanges",
    ):
        cols[name] = feats[name].fillna(0).to_numpy(dtype=float)
    ut = feats["user_turns"].to_numpy(dtype=float)
    ut_known = np.isfinite(ut) & (ut > 0)
    cols["user_turns"] = np.where(ut_known, ut, 0.0)
    cols["exchanges_ut"] = np.where(ut_known, cols["exchanges"], 0.0)
    for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cost_usd", "score"):
        values = feats[name].to_numpy(dtype=float)
        known = np.isfinite(values)
        cols[name] = np.where(known, values, 0.0)
        cols[name + "_known"] = known.astype(float)
    inp = feats["input_tokens"].to_numpy(dtype=float)
    prompt = feats["prompt_tokens"].to_numpy(dtype=float)
    both = np.isfinite(inp) & np.isfinite(prompt)
    cols["amp_input"] = np.where(both, inp, 0.0)
    cols["amp_prompt"] = np.where(both, prompt, 0.0)
    names = list(cols)
    return np.column_stack([cols[n] for n in names]), names


def ratio(num: Any, den: Any) -> Any:
    """Element-wise num / den, NaN where the denominator is 0 (no task run knew the value)."""
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def figures_from_sums(sums: Any, names: list[str]) -> dict[str, float | None]:
    """Every figure from the column sums of a (sub)matrix of `stat_matrix`."""
    col = {n: i for i, n in enumerate(names)}
    out: dict[str, float | None] = {}
    for figure, (a, b) in FIGURES.items():
        den = sums[col[b]]
        out[figure] = float(sums[col[a]] / den) if den > 0 else None
    return out


def figures(feats: Any) -> dict[str, float | None]:
    """Point values of every figure over the counted task runs of `feats`."""
    matrix, names = stat_matrix(feats[counted(feats)])
    return figures_from_sums(matrix.sum(axis=0), names)


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
    good = feats[counted(feats)]
    out: dict[str, Any] = {}
    for name in TOTALS:
        series = good[name]
        if name in _ALWAYS_KNOWN_TOTALS:
            out[name] = int(series.fillna(0).sum())
        elif name == "cost_usd":
            out[name] = float(series.sum()) if series.notna().any() else None
        else:
            out[name] = int(series.sum()) if series.notna().any() else None
    return out


def errors(feats: Any) -> dict[str, Any]:
    """Errored task runs of `feats`: how many, and how many per error message (most frequent first)."""
    bad = feats[(feats["status"] == ERROR_STATUS).to_numpy()]
    messages = Counter(str(e) if isinstance(e, str) and e else "unknown error" for e in bad["error"])
    return {
        "errored": len(bad),
        "errors": dict(sorted(messages.items(), key=lambda kv: (-kv[1], kv[0]))),
        "errored_exchanges": int(bad["exchanges"].fillna(0).sum()),
        "errored_unsent_attempts": int(bad["unsent_attempts"].fillna(0).sum()),
        "no_provider": int((no_provider(feats) & (feats["status"] != ERROR_STATUS).to_numpy()).sum()),
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
