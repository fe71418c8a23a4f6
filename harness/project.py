"""Campaign projection: what running a benchmark at full size would send to providers.

From the measured task runs of one suite, project a campaign of N tasks x R
repeats x K models: total exchanges, model calls, tool calls, tokens and cost,
each with a 95% interval. The interval is a two-stage bootstrap: resample the
measured task runs (uncertainty of the measured distribution), then draw the
campaign's N x R task runs from that resample and sum them (task-to-task
variation inside the campaign). A run whose task runs all have the same count
projects with zero width.

`--claim` turns a claimed exchange count into campaigns and requests at the
measured amplification; `--concurrency` with the measured latencies gives the
provider-side traffic shape. Every assumption is listed in the output.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness import metrics
from harness.compare import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    MAX_RESAMPLES,
    Runs,
    group_seed,
    interval,
    task_features,
)
from harness.errors import UserError


@dataclass(frozen=True)
class Benchmark:
    """A named benchmark size."""

    tasks: int
    """Distinct task instances."""
    repeats: int
    """Runs of each task in the benchmark's own protocol."""
    description: str
    suite: str
    """The ampbench suite that measures it (a mismatch is noted, not refused)."""


BENCHMARKS: dict[str, Benchmark] = {
    "swe-bench": Benchmark(2294, 1, "SWE-bench full test set, 2,294 instances", "swe"),
    "swe-bench-verified": Benchmark(500, 1, "SWE-bench Verified, 500 instances", "swe"),
    "swe-bench-lite": Benchmark(300, 1, "SWE-bench Lite, 300 instances", "swe"),
    "snitchbench": Benchmark(4, 20, "SnitchBench, 4 tests x 20 runs", "snitch"),
}

MAX_COUNT = 10**9
"""Largest --tasks, --models, --repeats or --concurrency: campaigns stay countable in int64 sums."""

CHAT_REQUESTS_PER_DAY = 160_000
"""Reference traffic of a chat product (assumed, for scale only): ~160k user requests per day."""

# Metrics projected as totals: name -> (caption, unit kind).
METRICS: dict[str, str] = {
    "exchanges": "exchanges",
    "model_calls": "model calls",
    "tool_calls": "tool calls",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cost_usd": "cost (USD)",
    "user_turns": "user turns",
}


@dataclass
class Projection:
    """The result of `project`: plain data, rendered by `render`."""

    suite: str
    task_runs_per_model: int
    models: list[dict[str, Any]]
    totals: dict[str, dict[str, Any]]
    claim: dict[str, Any] | None
    traffic: dict[str, Any] | None
    assumptions: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "task_runs_per_model": self.task_runs_per_model,
            "models": self.models,
            "totals": self.totals,
            "claim": self.claim,
            "traffic": self.traffic,
            "assumptions": self.assumptions,
            "settings": self.settings,
        }


def campaign_sums(values: Any, draws: int, resamples: int, rng: Any) -> Any:
    """Bootstrap replicates of the sum of `draws` task runs: resample `values`, then draw from the resample."""
    import numpy as np

    n = len(values)
    first = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples) / n
    second = rng.multinomial(draws, first)
    return second @ values


def _per_task(feats: Any, include_judge: bool, include_retries: bool) -> dict[str, Any]:
    """Per task run value of every metric under the flags (NaN = unknown)."""
    import numpy as np

    ex = feats["exchanges"].fillna(0).to_numpy(dtype=float)
    if not include_retries:
        ex = ex - feats["retries"].fillna(0).to_numpy(dtype=float)
    judge = feats["judge_exchanges"].fillna(0).to_numpy(dtype=float)
    if not include_retries:
        judge = judge - feats["judge_retries"].to_numpy(dtype=float)
    inp = feats["input_tokens"].to_numpy(dtype=float)
    out = feats["output_tokens"].to_numpy(dtype=float)
    latency = feats["agent_latency_s"].to_numpy(dtype=float)
    if include_judge:
        ex = ex + judge
        # A known agent count plus an unknown judge count is unknown only when the judge ran.
        j_in = feats["judge_input_tokens"].to_numpy(dtype=float)
        j_out = feats["judge_output_tokens"].to_numpy(dtype=float)
        inp = inp + np.where(judge > 0, j_in, 0.0)
        out = out + np.where(judge > 0, j_out, 0.0)
        latency = latency + feats["judge_latency_s"].to_numpy(dtype=float)
    wall = feats["wall_s"].to_numpy(dtype=float)
    return {
        "exchanges": ex,
        "model_calls": feats["model_calls"].fillna(0).to_numpy(dtype=float),
        "tool_calls": feats["tool_calls"].fillna(0).to_numpy(dtype=float),
        "input_tokens": inp,
        "output_tokens": out,
        "cost_usd": feats["cost_usd"].to_numpy(dtype=float),
        "user_turns": feats["user_turns"].to_numpy(dtype=float),
        "latency_s": latency,
        # Without a measured wall time, the provider time is a lower bound of the task's duration.
        "wall_s": np.where(np.isfinite(wall) & (wall > 0), wall, latency),
    }


def _estimate(values: Any, draws: int, resamples: int, rng: Any) -> tuple[float | None, Any, int]:
    """(point total, bootstrap replicates or None, known task runs) of one metric of one model."""
    import numpy as np

    known = values[np.isfinite(values)]
    if len(known) == 0:
        return None, None, 0
    total = draws * float(known.mean())
    reps = campaign_sums(known, draws, resamples, rng) if len(known) >= 2 else None
    return total, reps, len(known)


def project(
    runs: Runs,
    *,
    tasks: int | None = None,
    benchmark: str | None = None,
    models: int | None = None,
    repeats: int | None = None,
    include_judge: bool = True,
    include_retries: bool = True,
    claim: float | None = None,
    concurrency: int | None = None,
    suite: str | None = None,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Projection:
    """Project a campaign from measured runs; see the module docstring for the method."""
    import numpy as np

    bench = _check(tasks, benchmark, models, repeats, claim, concurrency, resamples)
    n_tasks = bench.tasks if bench else int(tasks or 0)
    n_repeats = repeats if repeats is not None else (bench.repeats if bench else 1)
    draws = n_tasks * n_repeats
    if draws * (models or 1) > MAX_COUNT * 1000:
        raise UserError(
            f"a campaign of {draws * (models or 1):,} task runs is more than ampbench projects "
            f"(at most {MAX_COUNT * 1000:,})"
        )

    feats = task_features(runs)
    if len(feats) == 0:
        raise UserError("the runs hold no finished task runs (tasks.csv is empty); nothing to project from")
    suites = list(dict.fromkeys(feats["suite"]))
    if suite is None:
        if len(suites) > 1:
            raise UserError(f"the runs span several suites ({', '.join(suites)}); pick one with --suite")
        suite = suites[0]
    elif suite not in suites:
        raise UserError(f"no task runs of suite {suite!r} in these runs (suites: {', '.join(suites)})")
    feats = feats[feats["suite"] == suite].reset_index(drop=True)
    # Errored task runs stopped wherever the failure struck: they are no sample of a task run.
    errored = int((~metrics.counted(feats)).sum())
    feats = feats[metrics.counted(feats)].reset_index(drop=True)
    if len(feats) == 0:
        raise UserError(f"every task run of suite {suite!r} errored; nothing to project from")
    measured = list(dict.fromkeys(feats["label"]))

    # Which task-run samples stand for which projected model (a model and variant: a group).
    if models is None:
        plan = [(m, [m], 1) for m in measured]
    else:
        plan = [(f"{models} model(s) like the pooled measured models", measured, models)]

    per_model: list[dict[str, Any]] = []
    replicates: dict[str, list[Any]] = {m: [] for m in METRICS}
    points: dict[str, list[float | None]] = {m: [] for m in METRICS}
    partial: list[str] = []
    for name, sources, copies in plan:
        rows = feats[feats["label"].isin(sources)]
        values = _per_task(rows, include_judge, include_retries)
        entry: dict[str, Any] = {"model": name, "measured_task_runs": len(rows), "copies": copies}
        for metric in METRICS:
            rng = np.random.default_rng(group_seed(seed, suite, name, metric))
            total, reps, known = _estimate(values[metric], draws * copies, resamples, rng)
            if 0 < known < len(rows):
                partial.append(f"{name}: {METRICS[metric]} known for {known} of {len(rows)} task runs")
            low, high = interval(reps, confidence) if reps is not None else (None, None)
            entry[metric] = {"value": total, "ci_low": low, "ci_high": high}
            points[metric].append(total)
            replicates[metric].append(reps)
        entry["mean_exchanges_per_request"] = _mean(values["exchanges"])
        entry["mean_wall_s"] = _mean(values["wall_s"])
        entry["mean_latency_s"] = _mean(values["latency_s"])
        entry["simulated"] = bool(rows["simulated"].any())
        per_model.append(entry)

    totals: dict[str, dict[str, Any]] = {}
    for metric in METRICS:
        if any(p is None for p in points[metric]):
            # One model's unknown tokens or cost make the campaign total unknown, not smaller.
            totals[metric] = {"value": None, "ci_low": None, "ci_high": None}
            continue
        value = float(sum(p for p in points[metric] if p is not None))
        reps = replicates[metric]
        low = high = None
        if all(r is not None for r in reps):
            low, high = interval(np.sum(np.vstack(reps), axis=0), confidence)
        totals[metric] = {"value": value, "ci_low": low, "ci_high": high}

    task_runs = draws * sum(c for _, _, c in plan)
    claim_out = _claim(claim, totals, task_runs) if claim is not None else None
    traffic = _traffic(concurrency, per_model, totals, draws) if concurrency is not None else None
    assumptions = _assumptions(
        runs,
        suite,
        bench,
        benchmark,
        n_tasks,
        n_repeats,
        plan,
        models,
        include_judge,
        include_retries,
        per_model,
    )
    assumptions += [f"partial data: {p}; totals use the mean of the known task runs." for p in partial]
    if errored:
        assumptions.append(
            f"{errored} errored task run(s) of suite {suite} are left out of the samples "
            "(see `ampbench report` for their errors)."
        )
    if traffic is not None:
        assumptions += traffic.pop("assumptions")
    if any(len(feats[feats["label"].isin(src)]) < 2 for _, src, _ in plan):
        assumptions.append("a model with a single measured task run has no interval.")
    settings = {
        "seed": seed,
        "resamples": resamples,
        "confidence": confidence,
        "interval": "two-stage bootstrap: resample measured task runs, then draw the campaign's task runs",
    }
    return Projection(suite, draws, per_model, totals, claim_out, traffic, assumptions, settings)


def _mean(values: Any) -> float | None:
    import numpy as np

    known = values[np.isfinite(values)]
    return float(known.mean()) if len(known) else None


def _check(
    tasks: int | None,
    benchmark: str | None,
    models: int | None,
    repeats: int | None,
    claim: float | None,
    concurrency: int | None,
    resamples: int,
) -> Benchmark | None:
    if tasks is not None and benchmark is not None:
        raise UserError("pass either --tasks or --benchmark, not both")
    if tasks is None and benchmark is None:
        raise UserError(f"pass --tasks N or --benchmark NAME (available: {', '.join(BENCHMARKS)})")
    bench = None
    if benchmark is not None:
        bench = BENCHMARKS.get(benchmark.lower())
        if bench is None:
            raise UserError(f"unknown benchmark {benchmark!r} (available: {', '.join(BENCHMARKS)})")
    for flag, value in (
        ("--tasks", tasks),
        ("--models", models),
        ("--repeats", repeats),
        ("--concurrency", concurrency),
    ):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1 (got {value})")
        if value is not None and value > MAX_COUNT:
            raise UserError(f"{flag} must be at most {MAX_COUNT:,} (got {value:,})")
    if claim is not None and not (claim > 0 and math.isfinite(claim)):
        raise UserError(f"--claim must be a positive number of exchanges (got {claim})")
    if not 100 <= resamples <= MAX_RESAMPLES:
        raise UserError(
            f"--resamples must be between 100 and {MAX_RESAMPLES:,} (got {resamples}); 2000 is the default"
        )
    return bench


def _claim(claim: float, totals: dict[str, dict[str, Any]], task_runs: int) -> dict[str, Any]:
    """How many campaigns a claimed exchange count equals, and how many requests it stands for."""
    ex = totals["exchanges"]
    total = ex["value"] or 0.0
    out: dict[str, Any] = {"claimed_exchanges": claim}
    if total <= 0:
        out.update(campaigns=None, requests=None, exchanges_per_request=None)
        return out
    per_request = total / task_runs

    def inv(x: float | None) -> float | None:
        return claim / x if x else None

    out["campaigns"] = {"value": claim / total, "ci_low": inv(ex["ci_high"]), "ci_high": inv(ex["ci_low"])}
    out["exchanges_per_request"] = {
        "value": per_request,
        "ci_low": ex["ci_low"] / task_runs if ex["ci_low"] is not None else None,
        "ci_high": ex["ci_high"] / task_runs if ex["ci_high"] is not None else None,
    }
    out["requests"] = {
        "value": claim / per_request,
        "ci_low": claim * task_runs / ex["ci_high"] if ex["ci_high"] else None,
        "ci_high": claim * task_runs / ex["ci_low"] if ex["ci_low"] else None,
    }
    turns = totals["user_turns"]["value"]
    if turns:
        out["user_turns"] = {"value": claim * turns / total, "ci_low": None, "ci_high": None}
    return out


def _traffic(
    concurrency: int, per_model: list[dict[str, Any]], totals: dict[str, dict[str, Any]], draws: int
) -> dict[str, Any]:
    """Provider-side traffic of the campaign run with `concurrency` task runs in flight."""
    notes = [
        f"traffic: {concurrency} task runs in flight at all times (a full pipeline), each task run "
        "sending its exchanges one after another (an agent loop waits for each response), so at most "
        f"{concurrency} requests are in flight at once.",
        f"traffic: a chat product's ~{CHAT_REQUESTS_PER_DAY:,} requests/day is an assumed reference for scale.",
    ]
    walls = [m["mean_wall_s"] for m in per_model]
    if any(w is None or w <= 0 for w in walls):
        return {
            "available": False,
            "reason": "no measured wall_s or latency_ms for some model (ingested logs rarely carry them)",
            "assumptions": notes,
        }
    task_seconds = sum(draws * m["copies"] * m["mean_wall_s"] for m in per_model)
    busy_seconds = sum(draws * m["copies"] * (m["mean_latency_s"] or 0.0) for m in per_model)
    duration_s = task_seconds / concurrency
    exchanges = totals["exchanges"]["value"] or 0.0
    per_minute = exchanges / (duration_s / 60) if duration_s > 0 else None
    per_day = per_minute * 1440 if per_minute is not None else None
    if any(m["simulated"] for m in per_model):
        notes.append(
            "traffic: simulated models answer in milliseconds; their latencies are not a provider's."
        )
    return {
        "available": True,
        "concurrency": concurrency,
        "campaign_hours": duration_s / 3600,
        "exchanges_per_minute": per_minute,
        "exchanges_per_day": per_day,
        "mean_in_flight_requests": concurrency * busy_seconds / task_seconds if task_seconds else None,
        "peak_in_flight_requests": concurrency,
        "chat_requests_per_day": CHAT_REQUESTS_PER_DAY,
        "times_chat_product": per_day / CHAT_REQUESTS_PER_DAY if per_day is not None else None,
        "assumptions": notes,
    }


def _assumptions(
    runs: Runs,
    suite: str,
    bench: Benchmark | None,
    benchmark: str | None,
    n_tasks: int,
    n_repeats: int,
    plan: list[tuple[str, list[str], int]],
    models: int | None,
    include_judge: bool,
    include_retries: bool,
    per_model: list[dict[str, Any]],
) -> list[str]:
    out = []
    used = runs.runs[runs.runs["suite"] == suite]
    for r in used.itertuples():
        out.append(
            f"measured run {r.run_id} ({r.run_dir}): suite {r.suite}, status {r.status}, "
            f"source {r.sources or '?'}, {r.task_runs} task runs, models {r.models}"
        )
        out += [f"run {r.run_id} limit: {limit}" for limit in r.limits]
    size = f"{bench.description}" if bench else f"{n_tasks:,} tasks (--tasks)"
    out.append(
        f"campaign: {size}: {n_tasks:,} tasks x {n_repeats} repeat(s) = {n_tasks * n_repeats:,} task runs per model"
    )
    if bench is not None and bench.suite != suite:
        out.append(
            f"benchmark {benchmark} is measured by suite {bench.suite!r}, but these runs are suite {suite!r}"
        )
    distinct = runs.tasks.loc[runs.tasks["suite"] == suite, "task_id"].nunique()
    out.append(
        f"representativeness: the {distinct} measured task(s) of suite {suite} stand for the campaign's "
        f"{n_tasks:,} tasks (per-task counts drawn from the measured distribution)"
    )
    if models is None:
        out.append(f"models: the {len(plan)} measured model(s), each projected from its own task runs")
    else:
        measured = ", ".join(plan[0][1])
        out.append(
            f"models: {models}, each assumed to behave like the pooled measured task runs of {measured}"
        )
    out.append(
        "retries: "
        + (
            "included (every attempt is an exchange the provider sees)"
            if include_retries
            else "excluded (exchanges = first attempts only)"
        )
    )
    out.append(
        "judge: "
        + ("judge exchanges and tokens included" if include_judge else "judge exchanges excluded")
        + "; judge cost is not recorded per task run and is never included"
    )
    out.append("tokens and cost: the measured model calls' own counts; unknown counts stay unknown")
    sim_models = runs.tasks.loc[(runs.tasks["suite"] == suite) & runs.tasks["simulated"], "label"]
    sims = list(dict.fromkeys(sim_models))
    if sims:
        out.append(f"simulated (ampbench's simulator, not real models) among the measured: {', '.join(sims)}")
    return out


# ---------------------------------------------------------------- rendering

FORMATS = ("table", "markdown", "json")


def _fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return "unknown"
    if metric == "cost_usd":
        return f"${value:,.2f}"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _est(est: dict[str, Any] | None, metric: str = "") -> str:
    if not est or est.get("value") is None:
        return "unknown"
    text = _fmt(est["value"], metric)
    if est.get("ci_low") is not None:
        text += f" [{_fmt(est['ci_low'], metric)}, {_fmt(est['ci_high'], metric)}]"
    return text


def rows(projection: Projection) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the totals table (one row per projected model, then the campaign)."""
    header = ["model", *METRICS.values()]
    body = [[m["model"], *(_est(m[k], k) for k in METRICS)] for m in projection.models]
    body.append(["campaign total", *(_est(projection.totals[k], k) for k in METRICS)])
    return header, body


def claim_lines(projection: Projection) -> list[str]:
    c = projection.claim
    if c is None:
        return []
    if c.get("campaigns") is None:
        return [f"claim {c['claimed_exchanges']:,.0f} exchanges: the projected campaign has no exchanges"]
    out = [
        f"claim {c['claimed_exchanges']:,.0f} exchanges = {_est(c['campaigns'])} such campaigns",
        f"at {_est(c['exchanges_per_request'])} exchanges per request (measured, this campaign's flags), "
        f"it corresponds to {_est(c['requests'])} requests",
    ]
    if "user_turns" in c and c["user_turns"]["value"] != c["requests"]["value"]:
        out.append(
            f"or {_fmt(c['user_turns']['value'])} user turns (user messages) at the measured turns per request"
        )
    return out


def traffic_lines(projection: Projection) -> list[str]:
    t = projection.traffic
    if t is None:
        return []
    if not t["available"]:
        return [f"traffic shape: not available: {t['reason']}"]
    return [
        f"traffic at concurrency {t['concurrency']}: the campaign takes {t['campaign_hours']:,.2f} h; while it runs "
        f"the provider sees {_fmt(t['exchanges_per_minute'])} exchanges/min = {_fmt(t['exchanges_per_day'])} per day",
        f"in-flight requests at the provider: mean {_fmt(t['mean_in_flight_requests'])}, "
        f"peak {t['peak_in_flight_requests']} (one per task run in flight)",
        f"a chat product's ~{t['chat_requests_per_day']:,} requests/day (assumed reference): "
        f"this rate is {_fmt(t['times_chat_product'])}x that",
    ]


def render_markdown(projection: Projection) -> str:
    header, body = rows(projection)
    lines = [
        f"# Campaign projection: suite {projection.suite}, {projection.task_runs_per_model:,} task runs per model",
        "",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines.append("")
    lines += [f"- {line}" for line in claim_lines(projection) + traffic_lines(projection)]
    lines += ["", "## Assumptions", ""]
    lines += [f"- {a}" for a in projection.assumptions]
    s = projection.settings
    lines.append(
        f"- intervals: {int(s['confidence'] * 100)}% {s['interval']} ({s['resamples']:,} resamples, seed {s['seed']})"
    )
    return "\n".join(lines) + "\n"


def render_table(projection: Projection, width: int = 200) -> str:
    import io

    from rich.console import Console

    buf = io.StringIO()
    print_table(projection, Console(file=buf, width=width, color_system=None, markup=False))
    return buf.getvalue()


def print_table(projection: Projection, console: Any) -> None:
    from rich.table import Table

    header, body = rows(projection)
    table = Table(
        title=f"Campaign projection · suite {projection.suite} · {projection.task_runs_per_model:,} task runs per model"
    )
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        table.add_row(*r)
    console.print(table)
    for line in claim_lines(projection) + traffic_lines(projection):
        console.print(line, highlight=False)
    console.print("assumptions:", highlight=False)
    for a in projection.assumptions:
        console.print(f"  - {a}", highlight=False)
    s = projection.settings
    console.print(
        f"  - intervals: {int(s['confidence'] * 100)}% {s['interval']} ({s['resamples']:,} resamples, seed {s['seed']})",
        highlight=False,
    )


def render(projection: Projection, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(projection.to_dict(), indent=2, default=str) + "\n"
    if fmt == "markdown":
        return render_markdown(projection)
    if fmt == "table":
        return render_table(projection)
    raise UserError(f"unknown format {fmt!r} (available: {', '.join(FORMATS)})")
