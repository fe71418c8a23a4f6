"""Amplification across runs and models, with bootstrap intervals.

Two entry points:

- `load_runs(paths)` turns many run directories into DataFrames spanning them
  (one row per run, per task run, per exchange, per tool call; a `run` column
  says which directory a row came from). It is the notebook API across runs,
  built on the single-run loader `harness.results.load`.
- `compare(runs)` pools the task runs of each suite x model (the same model in
  several runs of one suite counts as one sample) and estimates the headline
  figures with 95% percentile-bootstrap intervals, resampling task runs.

Every figure is a ratio of sums over task runs (`sum(a) / sum(b)`): a mean per
request is `sum(x) / count`, exchanges per user turn is
`sum(exchanges) / sum(user_turns)`, token amplification is
`sum(input_tokens) / sum(prompt_tokens)`. One resample of the task runs gives
one value of every figure, so intervals of related figures come from the same
resamples. A token count the source did not report stays unknown: figures
over it use only the task runs that reported it, and are None when none did.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import metrics, report
from harness.errors import UserError
from harness.metrics import DISTRIBUTIONS, RATIO_FIGURES, distribution, stat_matrix
from harness.metrics import FIGURES as STATS
from harness.metrics import TITLES as STAT_TITLES
from harness.results import EXCHANGE_FIELDS, RunData, load

ANALYSIS_EXCHANGE_COLUMNS: tuple[str, ...] = (
    "task_id",
    "model",
    "repeat",
    "session",
    "step",
    "role",
    "attempt",
    "status",
    "sent",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "tool_calls",
    "visible_reasoning_chars",
    "simulated",
)
"""Exchange columns compare, project and the plots need; the rest stays on disk."""

CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
MAX_RESAMPLES = 100_000
# Cap on one block of resample counts (resamples x task runs), so memory stays flat for big groups.
_BLOCK_CELLS = 2_000_000


# ---------------------------------------------------------------- loading


@dataclass
class Runs:
    """Several run directories as DataFrames (see `load_runs`)."""

    runs: Any
    """pandas.DataFrame, one row per run: run, run_id, run_dir, suite, kind, status, sources, models,
    task_runs, exchanges, orphaned_exchanges, cassette_mode, limits."""
    tasks: Any
    """pandas.DataFrame, one row per task run (tasks.csv of every run), plus `run`, `run_dir` and
    `label` (the model as shown, with " (simulated)"); numeric columns are floats, unknown = NaN."""
    exchanges: Any
    """pandas.DataFrame, one row per exchange of a finished task run, plus `run` and `suite`."""
    tool_calls: Any
    """pandas.DataFrame, one row per tool call, plus `run`."""
    manifests: list[dict[str, Any]] = field(default_factory=list)
    orphaned: list[int] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    _positions: dict[str, dict[int, Any]] = field(default_factory=dict, repr=False)

    def _part(self, name: str, run: int) -> Any:
        frame = getattr(self, name)
        if len(frame) == 0 or "run" not in frame:
            return frame
        if name not in self._positions:
            # Row positions of every run, found once: slicing 50 runs stays one pass per table.
            self._positions[name] = frame.groupby("run", sort=False).indices
        positions = self._positions[name].get(run)
        return frame.iloc[positions if positions is not None else []].reset_index(drop=True)

    def run_data(self, run: int) -> RunData:
        """One run back as `RunData` (as `harness.results.load` returns it, with the loaded columns)."""
        return RunData(
            Path(self.runs["run_dir"].iloc[run]),
            self.manifests[run],
            self._part("tasks", run),
            self._part("exchanges", run),
            self._part("tool_calls", run),
            self.orphaned[run],
            self.warnings[run] if run < len(self.warnings) else [],
        )

    def notes(self) -> list[str]:
        """Caveats of every run (ingest limits, interrupted runs, simulated models), merged across runs."""
        by_text: dict[str, list[str]] = {}
        for i in range(len(self.manifests)):
            for note in report.notes(self.run_data(i), errors=False):
                by_text.setdefault(note, []).append(str(self.runs["run_id"].iloc[i]))
        out = []
        for note, run_ids in by_text.items():
            if len(run_ids) == len(self.manifests) and len(run_ids) > 1:
                out.append(f"all runs: {note}")
            else:
                out.append(f"{', '.join(run_ids)}: {note}")
        return out


def _categorise(frame: Any, columns: tuple[str, ...]) -> Any:
    # Few distinct values repeated on every row: categories keep one copy of each string.
    for col in columns:
        if col in frame:
            frame[col] = frame[col].astype("category")
    return frame


def load_runs(
    runs: Iterable[str | Path | RunData],
    *,
    exchange_columns: Sequence[str] | None = ANALYSIS_EXCHANGE_COLUMNS,
) -> Runs:
    """Load run directories into DataFrames spanning all of them.

    Each directory is read with `harness.results.load` (so exchanges of task attempts that
    never finished are left out, as in `ampbench report`) and only `exchange_columns` of
    its exchanges are kept (pass None for every column of `EXCHANGE_FIELDS`; the columns
    compare needs are always kept), so memory follows the size of the tables, not of the
    raw bodies. Repeated strings (task ids, models, roles, tools) are pandas categories.

    >>> runs = load_runs(["results/run-a", "results/run-b"])
    >>> runs.tasks.groupby(["suite", "label"])["exchanges"].describe()

    A run may also be given as its rows, as `harness.results.read_run` returned them (a run
    that just finished): they are not read again.

    Raises `UserError` for a path that is not a run directory or is given twice.
    """
    import pandas as pd

    given = list(runs)
    read = [r if isinstance(r, RunData) else None for r in given]
    paths = [Path(r.run_dir) if isinstance(r, RunData) else Path(r) for r in given]
    if not paths:
        raise UserError("no run directory given: pass one or more results/<run_id> directories")
    seen: dict[Path, Path] = {}
    for p in paths:
        if not p.is_dir():
            raise UserError(f"{p} is not a directory; pass run directories such as results/<run_id>")
        resolved = p.resolve()
        if resolved in seen:
            raise UserError(f"{p} is given twice (as {seen[resolved]}); each run may be counted once")
        seen[resolved] = p
    # compare, project and the plots need the analysis columns whatever else the caller asks for.
    wanted = list(exchange_columns) if exchange_columns is not None else list(EXCHANGE_FIELDS)
    keep = list(dict.fromkeys([*ANALYSIS_EXCHANGE_COLUMNS, *wanted]))
    run_rows, task_parts, exchange_parts, tool_parts, manifests, orphaned = [], [], [], [], [], []
    warnings: list[list[str]] = []
    for run, path in enumerate(paths):
        data = load(path, rows=read[run])
        manifest = data.manifest
        tasks = metrics.normalise_tasks(data.tasks, run, path, manifest)
        # The task rows name the suite that groups them; the manifest speaks for a run without rows.
        suites = tasks["suite"].dropna().unique().tolist()
        suite = suites[0] if len(suites) == 1 else (manifest.get("suite") or "?")
        exchanges = data.exchanges[[c for c in keep if c in data.exchanges]].copy()
        exchanges["run"] = run
        exchanges["suite"] = suite
        for col in ("repeat", "session"):
            if col in exchanges:
                exchanges[col] = pd.to_numeric(exchanges[col], errors="coerce").fillna(0).astype("int64")
        if "task_id" in exchanges:
            exchanges["task_id"] = exchanges["task_id"].astype(str)
        tools = data.tool_calls.copy()
        tools["run"] = run
        sources = sorted({str(s) for s in tasks["source"].dropna().unique()})
        run_rows.append(
            {
                "run": run,
                "run_id": str(manifest.get("run_id") or path.name),
                "run_dir": str(path),
                "suite": suite,
                "kind": manifest.get("kind"),
                "status": manifest.get("status"),
                "sources": ", ".join(sources),
                "models": ", ".join(dict.fromkeys(tasks["model"].tolist())),
                "task_runs": len(tasks),
                "exchanges": int(exchanges["sent"].sum()) if "sent" in exchanges else len(exchanges),
                "errored_task_runs": int((tasks["status"] == metrics.ERROR_STATUS).sum()),
                "orphaned_exchanges": data.orphaned_exchanges,
                "cassette_mode": manifest.get("cassette_mode"),
                "limits": list(manifest.get("limits", [])),
            }
        )
        task_parts.append(tasks)
        exchange_parts.append(exchanges)
        tool_parts.append(tools)
        manifests.append(manifest)
        orphaned.append(data.orphaned_exchanges)
        warnings.append(list(data.warnings))
        del data  # free the single-run frames before the next directory is read

    tasks = metrics.add_labels(pd.concat(task_parts, ignore_index=True))
    exchanges = _categorise(
        pd.concat(exchange_parts, ignore_index=True), ("task_id", "model", "role", "suite")
    )
    tool_parts = [t for t in tool_parts if len(t)]
    tool_calls = (
        _categorise(
            pd.concat(tool_parts, ignore_index=True), ("run_id", "task_id", "model", "tool", "role", "source")
        )
        if tool_parts
        else pd.DataFrame({"run": []})
    )
    return Runs(pd.DataFrame(run_rows), tasks, exchanges, tool_calls, manifests, orphaned, warnings)


# ---------------------------------------------------------------- per task run features


def task_features(runs: Runs) -> Any:
    """One row per task run with the numbers compare and project resample (`metrics.task_features`).

    In one order whatever order the task runs finished in (tasks.csv is written as they
    finish): resampling draws row positions, so the same runs must give the same intervals.
    """
    feats = metrics.task_features(runs.tasks, runs.exchanges)
    return feats.sort_values(metrics.KEY, kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- bootstrap


def group_seed(seed: int, *names: str) -> list[int]:
    """A seed per group, stable under adding other runs or models to the comparison."""
    return [int(seed), *(zlib.crc32(n.encode("utf-8")) for n in names)]


def resample_sums(matrix: Any, resamples: int, rng: Any) -> Any:
    """Column sums of `matrix` (rows = task runs) over `resamples` bootstrap resamples of its rows.

    Each resample draws as many rows as there are, with replacement. The draws are
    turned into counts per row (how often each row was drawn), so the sums of every
    column are one matrix product instead of a copy of the rows per resample.
    """
    import numpy as np

    n = matrix.shape[0]
    out = np.empty((resamples, matrix.shape[1]))
    block = max(1, _BLOCK_CELLS // max(n, 1))
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        draws = rng.integers(0, n, size=(size, n))
        # Offset each resample's draws into its own range, then count all of them at once.
        draws += np.arange(size)[:, None] * n
        counts = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n)
        out[start : start + size] = counts @ matrix
    return out


def interval(replicates: Any, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap replicates (NaN replicates, from an empty denominator, dropped)."""
    import numpy as np

    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return None, None
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    return _clean(low), _clean(high)


def _clean(value: float) -> float:
    # Sums of identical floats in another order differ in the last bits; 12 significant
    # digits keep "all task runs equal" a zero-width interval, as it should be.
    return float(f"{float(value):.12g}")


RATIO_STATS = RATIO_FIGURES
_ratio = metrics.ratio


# ---------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """The result of `compare`: plain data, rendered by `render`."""

    groups: list[dict[str, Any]]
    ratios: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    notes: list[str]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "runs": self.runs,
            "groups": self.groups,
            "ratios": self.ratios,
            "notes": self.notes,
        }


def _order(tasks: Any) -> list[tuple[str, str]]:
    """(suite, label) groups in order of first appearance: run order, then row order."""
    return list(dict.fromkeys(zip(tasks["suite"], tasks["label"], strict=True)))


def compare(
    runs: Runs,
    *,
    baseline: str | None = None,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """Per suite x variant x model statistics with bootstrap intervals, and ratios to a baseline.

    A group is a suite, the suite options that change the agent (its variant, e.g. the SWE
    scaffold) and a model. `baseline` is a model spec or group label; by default each group
    is compared with the first group of its suite of the same kind (real with real, simulated
    with simulated). Errored task runs are counted per group and left out of every figure.
    The same seed gives the same intervals, whatever else is compared.
    """
    import numpy as np

    if not 100 <= resamples <= MAX_RESAMPLES:
        raise UserError(
            f"--resamples must be between 100 and {MAX_RESAMPLES:,} (got {resamples}); 2000 is the default"
        )
    if not 0.5 <= confidence < 1:
        raise UserError(f"confidence must be in [0.5, 1) (got {confidence})")
    tasks = runs.tasks
    if len(tasks) == 0:
        raise UserError("the runs hold no finished task runs (tasks.csv is empty); nothing to compare")
    feats = task_features(runs)
    matrix, names = stat_matrix(feats)
    col = {n: i for i, n in enumerate(names)}
    order = _order(feats)
    specs = dict(zip(feats["label"], feats["model"], strict=True))
    if baseline is not None and baseline not in set(specs) | set(specs.values()):
        raise UserError(
            f"unknown --baseline {baseline!r} (models in these runs: {', '.join(dict.fromkeys(specs.values()))})"
        )

    groups: list[dict[str, Any]] = []
    replicates: dict[tuple[str, str], dict[str, Any]] = {}
    notes: list[str] = []
    suite_arr = feats["suite"].to_numpy()
    label_arr = feats["label"].to_numpy()
    ok = metrics.counted(feats)
    for suite, label in order:
        in_group = (suite_arr == suite) & (label_arr == label)
        mask = in_group & ok
        sub = matrix[mask]
        gf = feats[mask]
        n = int(mask.sum())
        errs = metrics.errors(feats[in_group])
        notes += metrics.error_lines(f"{suite} · {label}", errs)
        reps = None
        if n >= 2:
            rng = np.random.default_rng(group_seed(seed, suite, label))
            reps = resample_sums(sub, resamples, rng)
        elif n == 1:
            notes.append(f"{suite} · {label}: one task run only, so no interval.")
        group: dict[str, Any] = {
            "suite": suite,
            "model": label,
            "model_spec": specs[label],
            "variant": str(feats.loc[in_group, "variant"].iloc[0]),
            "simulated": bool(feats.loc[in_group, "simulated"].any()),
            "runs": sorted({str(r) for r in tasks.loc[in_group, "run_id"]}),
            "sources": sorted({str(s) for s in tasks.loc[in_group, "source"].dropna()}),
            "requests": n,
            "errored": errs["errored"],
            "errors": errs["errors"],
            "no_provider": errs["no_provider"],
        }
        values = metrics.figures_from_sums(sub.sum(axis=0), names)
        group_reps: dict[str, Any] = {}
        for stat, (a, b) in STATS.items():
            low = high = None
            if reps is not None and values[stat] is not None:
                rep = _ratio(reps[:, col[a]], reps[:, col[b]])
                low, high = interval(rep, confidence)
                group_reps[stat] = rep
            group[stat] = {"value": values[stat], "ci_low": low, "ci_high": high}
        for name in DISTRIBUTIONS:
            dist = distribution(gf[name].to_numpy(dtype=float))
            target = group[f"{name}_per_request"]
            target.update({k: v for k, v in dist.items() if k not in ("mean", "n")})
        group["totals"] = {**metrics.totals(feats[in_group]), "errored": errs["errored"]}
        group["tool_calls_by_name"] = report.tool_names(gf["tool_calls_by_name"])
        for name in ("input_tokens", "output_tokens", "reasoning_tokens", "cost_usd"):
            known = int(gf[name].notna().sum())
            if 0 < known < n:
                notes.append(
                    f"{suite} · {label}: {name} known for {known} of {n} task runs; "
                    "its figures use those task runs only."
                )
        groups.append(group)
        replicates[(suite, label)] = group_reps

    ratios = _ratios(groups, replicates, baseline, confidence, notes)
    settings = {
        "seed": seed,
        "resamples": resamples,
        "confidence": confidence,
        "interval": "percentile bootstrap, resampling task runs within each suite x variant x model",
        "baseline": baseline or "first group of each suite of the same kind (real or simulated)",
        "p90": "linear interpolation between order statistics",
    }
    return Comparison(
        groups=groups,
        ratios=ratios,
        runs=_runs_records(runs),
        notes=runs.notes() + notes,
        settings=settings,
    )


def _runs_records(runs: Runs) -> list[dict[str, Any]]:
    records = runs.runs.to_dict(orient="records")
    for r in records:
        r["limits"] = list(r.get("limits") or [])
    return records


def _baselines(groups: list[dict[str, Any]], baseline: str | None, notes: list[str]) -> dict[int, int]:
    """Index of each group's baseline group (absent: no ratio for that group)."""
    out: dict[int, int] = {}
    for suite in dict.fromkeys(g["suite"] for g in groups):
        members = [i for i, g in enumerate(groups) if g["suite"] == suite]
        if len(members) < 2:
            continue
        if baseline is not None:
            matches = [i for i in members if baseline in (groups[i]["model"], groups[i]["model_spec"])]
            if not matches:
                notes.append(f"{suite}: baseline {baseline} has no task runs in this suite; no ratios.")
                continue
            out.update({i: matches[0] for i in members if i != matches[0]})
            continue
        # A real model is never measured against a simulated one, nor the other way round.
        for simulated in (False, True):
            kind = [i for i in members if groups[i]["simulated"] == simulated]
            out.update({i: kind[0] for i in kind[1:]})
    return out


def _ratios(
    groups: list[dict[str, Any]],
    replicates: dict[tuple[str, str], dict[str, Any]],
    baseline: str | None,
    confidence: float,
    notes: list[str],
) -> list[dict[str, Any]]:
    out = []
    for i, base_i in _baselines(groups, baseline, notes).items():
        group, base = groups[i], groups[base_i]
        for stat in RATIO_STATS:
            num = group[stat]["value"]
            den = base[stat]["value"]
            if num is None or not den:
                continue
            low = high = None
            r_num = replicates[(group["suite"], group["model"])].get(stat)
            r_den = replicates[(base["suite"], base["model"])].get(stat)
            if r_num is not None and r_den is not None:
                low, high = interval(_ratio(r_num, r_den), confidence)
            out.append(
                {
                    "suite": group["suite"],
                    "model": group["model"],
                    "baseline": base["model"],
                    "metric": stat,
                    "ratio": num / den,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return out


# ---------------------------------------------------------------- rendering

FORMATS = ("table", "markdown", "csv", "json")

# (stat, header, kind) of the two tables; kind picks the number format.
MAIN_COLUMNS: list[tuple[str, str, str]] = [
    ("exchanges_per_request", "exch/request [95% CI]", "num"),
    ("exchanges_per_request.median", "median", "num"),
    ("exchanges_per_request.p90", "p90", "num"),
    ("exchanges_per_request.max", "max", "count"),
    ("exchanges_per_user_turn", "exch/user turn [95% CI]", "num"),
    ("retries_share", "retries share", "pct"),
    ("model_calls_per_request", "model calls/request", "num"),
    ("tool_calls_per_request", "tool calls/request", "num"),
    ("judge_exchanges_per_request", "judge exch/request", "num"),
]
TOKEN_COLUMNS: list[tuple[str, str, str]] = [
    ("input_tokens_per_request", "input tok/request", "num"),
    ("output_tokens_per_request", "output tok/request", "num"),
    ("reasoning_tokens_per_request", "reasoning tok/request", "num"),
    ("token_amplification", "token amp", "num"),
    ("visible_reasoning_share", "visible reasoning", "pct"),
    ("cost_usd_per_request", "cost $/request", "usd"),
    ("score", "score", "num"),
]


def _num(value: Any, kind: str = "num") -> str:
    """A number for people: shares as %, money with cents, counts whole, means with 2 decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "usd":
        return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind == "count" or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _cell(group: dict[str, Any], key: str, kind: str) -> str:
    stat, _, part = key.partition(".")
    est = group[stat]
    if part:
        return _num(est.get(part), kind)
    text = _num(est["value"], kind)
    if est["ci_low"] is not None and est["value"] is not None:
        text += f" [{_num(est['ci_low'], kind)}, {_num(est['ci_high'], kind)}]"
    return text


def table_rows(
    comparison: Comparison, columns: list[tuple[str, str, str]]
) -> tuple[list[str], list[list[str]]]:
    """Header and text cells of one comparison table (shared by terminal, Markdown and HTML)."""
    header = ["suite", "model", "runs", "requests", "errored", *(h for _, h, _ in columns)]
    rows = [
        [
            g["suite"],
            g["model"],
            str(len(g["runs"])),
            f"{g['requests']:,}",
            f"{g['errored']:,}",
            *(_cell(g, k, kind) for k, _, kind in columns),
        ]
        for g in comparison.groups
    ]
    return header, rows


def ratio_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    header = ["suite", "model", "baseline", "metric", "ratio [95% CI]"]
    rows = []
    for r in comparison.ratios:
        text = _num(r["ratio"], "ratio")
        if r["ci_low"] is not None:
            text += f" [{_num(r['ci_low'], 'ratio')}, {_num(r['ci_high'], 'ratio')}]"
        rows.append([r["suite"], r["model"], r["baseline"], STAT_TITLES[r["metric"]], text])
    return header, rows


def tool_lines(comparison: Comparison) -> list[str]:
    return [
        f"tool calls of {g['model']} ({g['suite']}): "
        + ", ".join(f"{k} {v:,}" for k, v in g["tool_calls_by_name"].items())
        for g in comparison.groups
        if g["tool_calls_by_name"]
    ]


def settings_line(comparison: Comparison) -> str:
    s = comparison.settings
    return (
        f"{int(s['confidence'] * 100)}% intervals: {s['interval']} ({s['resamples']:,} resamples, seed {s['seed']}); "
        f"p90 by {s['p90']}; ratios against {s['baseline']}."
    )


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    return lines


def render_markdown(comparison: Comparison) -> str:
    lines = ["# Exchange amplification by suite and model", ""]
    lines += _md_table(*table_rows(comparison, MAIN_COLUMNS))
    lines += ["", "## Tokens, cost and score", ""]
    lines += _md_table(*table_rows(comparison, TOKEN_COLUMNS))
    if comparison.ratios:
        lines += ["", "## Ratios to the baseline model", ""]
        lines += _md_table(*ratio_rows(comparison))
    lines += ["", "## Runs", ""]
    lines += _md_table(
        ["run", "suite", "status", "source", "models", "task runs", "errored", "exchanges"],
        [
            [
                r["run_id"],
                r["suite"],
                str(r["status"]),
                r["sources"],
                r["models"],
                f"{r['task_runs']:,}",
                f"{r['errored_task_runs']:,}",
                f"{r['exchanges']:,}",
            ]
            for r in comparison.runs
        ],
    )
    lines.append("")
    lines += [f"- {line}" for line in tool_lines(comparison)]
    lines += [f"- note: {n}" for n in comparison.notes]
    lines.append(f"- {settings_line(comparison)}")
    return "\n".join(lines) + "\n"


def flat_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """One flat dict per suite x model (the CSV rows): estimates, intervals, totals, ratios."""
    rows = []
    ratios = {(r["suite"], r["model"], r["metric"]): r for r in comparison.ratios}
    for g in comparison.groups:
        row: dict[str, Any] = {
            "suite": g["suite"],
            "model": g["model"],
            "model_spec": g["model_spec"],
            "simulated": g["simulated"],
            "runs": " ".join(g["runs"]),
            "sources": " ".join(g["sources"]),
            "requests": g["requests"],
            "errored": g["errored"],
            "errors": json.dumps(g["errors"], sort_keys=True),
        }
        for stat in STATS:
            for part, value in g[stat].items():
                row[stat if part == "value" else f"{stat}_{part}"] = value
        for name, value in g["totals"].items():
            row[f"total_{name}"] = value
        row["tool_calls_by_name"] = json.dumps(g["tool_calls_by_name"], sort_keys=True)
        for stat in RATIO_STATS:
            r = ratios.get((g["suite"], g["model"], stat))
            row[f"{stat}_ratio"] = r["ratio"] if r else None
            row[f"{stat}_ratio_ci_low"] = r["ci_low"] if r else None
            row[f"{stat}_ratio_ci_high"] = r["ci_high"] if r else None
            row["baseline"] = r["baseline"] if r else row.get("baseline")
        rows.append(row)
    return rows


def render_csv(comparison: Comparison) -> str:
    import csv
    import io

    rows = flat_rows(comparison)
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2, default=str) + "\n"


def rich_tables(comparison: Comparison) -> list[Any]:
    """Terminal tables (rich) of the comparison."""
    from rich.table import Table

    out = []
    for title, (header, rows) in (
        ("Exchange amplification per suite and model", table_rows(comparison, MAIN_COLUMNS)),
        ("Tokens, cost and score", table_rows(comparison, TOKEN_COLUMNS)),
        ("Ratios to the baseline model", ratio_rows(comparison)),
    ):
        if not rows:
            continue
        table = Table(title=title)
        for i, h in enumerate(header):
            text = i < 2 or h in ("baseline", "metric")
            # Model specs are long: let them wrap rather than be cut to "compa…".
            wide = h in ("model", "baseline")
            table.add_column(
                h,
                justify="left" if text else "right",
                overflow="fold" if wide else "ellipsis",
                min_width=14 if wide else None,
            )
        for row in rows:
            table.add_row(*row)
        out.append(table)
    return out


def render_table(comparison: Comparison, width: int = 200) -> str:
    """The terminal rendering as text (what `ampbench compare` prints by default)."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, markup=False)
    print_table(comparison, console)
    return buf.getvalue()


def print_table(comparison: Comparison, console: Any) -> None:
    for table in rich_tables(comparison):
        console.print(table)
    for line in tool_lines(comparison):
        console.print(line, highlight=False)
    for note in comparison.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(settings_line(comparison), highlight=False)


def render(comparison: Comparison, fmt: str) -> str:
    """The comparison as text in one of `FORMATS`."""
    if fmt == "markdown":
        return render_markdown(comparison)
    if fmt == "csv":
        return render_csv(comparison)
    if fmt == "json":
        return render_json(comparison)
    if fmt == "table":
        return render_table(comparison)
    raise UserError(f"unknown format {fmt!r} (available: {', '.join(FORMATS)})")
