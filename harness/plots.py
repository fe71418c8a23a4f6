"""Pictures of amplification (matplotlib, PNG and SVG), drawn from `harness.compare.Runs`.

Figures are built on `matplotlib.figure.Figure` directly, not pyplot: no global
figure registry, no GUI backend, safe to call from tests and threads. Each
builder returns None when the runs hold nothing to draw (e.g. no token counts,
or no multi-turn suite).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.compare import Runs
from harness.metrics import KEY

MAX_TASK_LINES = 40
"""Individual task curves drawn per model in the cumulative-token plot (the median is over all)."""

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "ampbench",  # stable SVG ids: the same runs give the same file
    "svg.fonttype": "none",  # text stays text in SVG (smaller, searchable)
}


def _figure(width: float = 8.0, height: float = 4.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _group_name(suite: str, label: str, several_suites: bool) -> str:
    return f"{label}\n[{suite}]" if several_suites else label


def _groups(feats: Any) -> list[tuple[str, str, Any]]:
    """(suite, label, rows) per suite x model, in order of first appearance."""
    order = list(dict.fromkeys(zip(feats["suite"], feats["label"], strict=True)))
    return [(s, m, feats[(feats["suite"] == s) & (feats["label"] == m)]) for s, m in order]


def exchanges_distribution(runs: Runs, feats: Any) -> Any:
    """Box plot of exchanges per request, one box per suite x model, mean marked."""
    groups = _groups(feats)
    if not groups:
        return None
    data = [g["exchanges"].dropna().to_numpy() for _, _, g in groups]
    return _boxes(
        groups,
        data,
        several=len({s for s, _, _ in groups}) > 1,
        xlabel="model (n = task runs)",
        ylabel="exchanges per request (count)",
        title="Exchanges per request (box: quartiles, whiskers 1.5 IQR, ◆ mean)",
    )


def exchanges_vs_steps(runs: Runs, feats: Any) -> Any:
    """Scatter of exchanges against model calls per task run; points above the diagonal are retries."""
    groups = _groups(feats)
    if not groups:
        return None
    several = len({s for s, _, _ in groups}) > 1
    fig = _figure()
    ax = fig.add_subplot()
    top = 1.0
    for i, (suite, label, g) in enumerate(groups):
        x = g["model_calls"].to_numpy(dtype=float)
        y = g["exchanges"].to_numpy(dtype=float)
        # Counts are whole numbers: shift each model sideways a little so models do not hide each other.
        dodge = (i - (len(groups) - 1) / 2) * 0.6 / len(groups)
        ax.scatter(x + dodge, y, s=14, alpha=0.6, label=_group_name(suite, label, several).replace("\n", " "))
        if len(x):
            top = max(top, float(max(x.max(), y.max())))
    ax.plot(
        [0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="one exchange per model call"
    )
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("model calls per request (steps)")
    ax.set_ylabel("exchanges per request (count)")
    ax.set_title("Exchanges vs steps (above the line: retries and failed attempts)")
    title = "points shifted sideways by model" if len(groups) > 1 else None
    ax.legend(fontsize=8, title=title, title_fontsize=8)
    return fig


def cumulative_curves(runs: Runs) -> Any:
    """Cumulative agent input tokens per task run after each step (DataFrame: KEY, suite, step, cum_tokens).

    Every attempt at a step is counted: a retry resends the whole context too.
    Task runs with no known input tokens are left out.
    """
    import pandas as pd

    ex = runs.exchanges
    if len(ex) == 0 or "input_tokens" not in ex:
        return pd.DataFrame(columns=[*KEY, "suite", "step", "cum_tokens"])
    agent = ex[(ex["role"] == "agent") & ex["input_tokens"].notna()]
    if len(agent) == 0:
        return pd.DataFrame(columns=[*KEY, "suite", "step", "cum_tokens"])
    per_step = (
        agent.assign(tokens=agent["input_tokens"].astype("float64"))
        .groupby([*KEY, "suite", "step"], sort=True, observed=True)["tokens"]
        .sum()
        .reset_index()
    )
    per_step["cum_tokens"] = per_step.groupby(KEY, sort=False, observed=True)["tokens"].cumsum()
    return per_step


def cumulative_input_tokens(runs: Runs, feats: Any) -> Any:
    """Cumulative input tokens against step: median over task runs, with some task runs drawn faintly."""
    curves = cumulative_curves(runs)
    if len(curves) == 0:
        return None
    labels = dict(zip(runs.tasks["model"], runs.tasks["label"], strict=True))
    several = curves["suite"].nunique() > 1
    fig = _figure()
    ax = fig.add_subplot()
    colors = _colors()
    for i, ((suite, model), g) in enumerate(curves.groupby(["suite", "model"], sort=False, observed=True)):
        color = colors[i % len(colors)]
        for n, (_, task) in enumerate(g.groupby(KEY, sort=False, observed=True)):
            if n >= MAX_TASK_LINES:
                break
            ax.plot(task["step"], task["cum_tokens"], color=color, alpha=0.15, linewidth=0.8)
        median = g.groupby("step")["cum_tokens"].median()
        name = _group_name(str(suite), labels.get(model, str(model)), several).replace("\n", " ")
        ax.plot(median.index, median.to_numpy(), color=color, linewidth=2.2, label=name)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("step (model call number within the task run)")
    ax.set_ylabel("cumulative input tokens (tokens)")
    ax.yaxis.set_major_formatter(_thousands())
    ax.set_title("Cumulative input tokens vs step: resent context grows ~quadratically")
    ax.legend(fontsize=8, title="median over task runs reaching the step", title_fontsize=8)
    return fig


def exchanges_per_user_turn(runs: Runs, feats: Any) -> Any:
    """Box plot of exchanges per user turn, for suites whose tasks have more than one user turn."""
    multi = feats[feats["user_turns"].fillna(0) > 1]
    suites = set(multi["suite"])
    sub = feats[feats["suite"].isin(suites) & (feats["user_turns"].fillna(0) > 0)]
    groups = _groups(sub)
    if not groups:
        return None
    data = [(g["exchanges"] / g["user_turns"]).to_numpy(dtype=float) for _, _, g in groups]
    return _boxes(
        groups,
        data,
        several=len(suites) > 1,
        xlabel="model (n = task runs of multi-turn suites)",
        ylabel="exchanges per user turn (count)",
        title="Exchanges per user turn (multi-turn suites; ◆ mean)",
    )


def _boxes(groups: list[Any], data: list[Any], *, several: bool, xlabel: str, ylabel: str, title: str) -> Any:
    """One box per suite x model, mean marked, labelled with its number of task runs."""
    fig = _figure(max(6.0, 1.3 * len(groups) + 2), 4.8)
    ax = fig.add_subplot()
    positions = list(range(1, len(groups) + 1))
    ax.boxplot(
        data, positions=positions, widths=0.55, showmeans=True, meanprops={"marker": "D", "markersize": 5}
    )
    labels = [f"{_group_name(s, m, several)} (n={len(d)})" for (s, m, _), d in zip(groups, data, strict=True)]
    # Model specs are long; slanted labels keep neighbours from overprinting each other.
    ax.set_xticks(positions, labels, fontsize=8, rotation=20, ha="right", rotation_mode="anchor")
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:,.0f}")


def _colors() -> list[str]:
    import matplotlib

    return list(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])


FIGURES: dict[str, tuple[str, Callable[[Runs, Any], Any]]] = {
    "exchanges_distribution": ("Distribution of exchanges per request", exchanges_distribution),
    "exchanges_vs_steps": ("Exchanges vs steps (model calls)", exchanges_vs_steps),
    "cumulative_input_tokens": ("Cumulative input tokens vs step", cumulative_input_tokens),
    "exchanges_per_user_turn": ("Exchanges per user turn", exchanges_per_user_turn),
}
"""name -> (caption, builder) of every picture, in the order reports show them."""


def figures(runs: Runs, feats: Any = None) -> dict[str, Any]:
    """Every figure the runs can support, by name (see `FIGURES`)."""
    import matplotlib

    from harness.compare import task_features

    feats = task_features(runs) if feats is None else feats
    out = {}
    with matplotlib.rc_context(_STYLE):
        for name, (_, build) in FIGURES.items():
            fig = build(runs, feats)
            if fig is not None:
                out[name] = fig
    return out


def save(fig: Any, path: Path) -> Path:
    """Write one figure; the format follows the suffix (.png at 150 dpi, .svg)."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        # No date and no tool credit in the file: the same runs give byte-identical pictures.
        metadata = {"Date": None} if path.suffix == ".svg" else {}
        fig.savefig(path, dpi=150, metadata=metadata)
    return path


def write_plots(runs: Runs, out_dir: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write every figure as `<name>.<format>` into `out_dir`; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures(runs).items():
        for fmt in formats:
            written.append(save(fig, out_dir / f"{name}.{fmt}"))
    return written


def svg_inline(fig: Any, prefix: str) -> str:
    """The figure as an `<svg>` element to paste into HTML.

    Drops the XML prologue, DOCTYPE and RDF metadata, and prefixes every id so that
    several figures on one page cannot pick up each other's clip paths or markers.
    """
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", text)
    return text
