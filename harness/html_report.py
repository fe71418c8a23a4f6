"""One self-contained HTML page: per-run summaries, the comparison and its pictures.

Everything is inside the file: CSS in a <style> element, pictures as inline
<svg>, system fonts only. No script, font, stylesheet or image is fetched, so
the page reads the same offline, from an archive, or attached to a paper.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from harness import compare as cmp
from harness import plots, report

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
         margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #1d2330; background: #fff;
         line-height: 1.45; }
  h1 { font-size: 1.6rem; margin-bottom: .2rem; }
  h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #d8dde6; padding-bottom: .2rem; }
  h3 { font-size: 1.05rem; margin-top: 1.4rem; }
  .meta { color: #5b6475; font-size: .9rem; }
  .scroll { overflow-x: auto; }
  table { border-collapse: collapse; font-size: .82rem; margin: .6rem 0; font-variant-numeric: tabular-nums; }
  th, td { border: 1px solid #d8dde6; padding: .25rem .5rem; text-align: right; white-space: nowrap; }
  th { background: #eef1f6; white-space: normal; vertical-align: bottom; }
  .ci { color: #5b6475; font-size: .75rem; }
  td.text, th.text { text-align: left; }
  tr:nth-child(even) td { background: #f8f9fb; }
  figure { margin: 1.2rem 0; }
  figcaption { font-size: .9rem; color: #3a4252; margin-top: .3rem; }
  figure svg { max-width: 100%; height: auto; display: block; }
  ul.notes li { margin: .2rem 0; }
  code { font-size: .85rem; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ subtitle }}</p>

<h2>Runs</h2>
{{ runs_table | safe }}

<h2>Comparison by suite and model</h2>
<p class="meta">{{ settings }}</p>
<h3>Exchanges</h3>
{{ main_table | safe }}
<h3>Tokens, cost and score</h3>
{{ token_table | safe }}
{% if ratio_table %}<h3>Ratios to the baseline model</h3>
{{ ratio_table | safe }}{% endif %}
{% if tool_lines %}<ul>{% for line in tool_lines %}<li>{{ line }}</li>{% endfor %}</ul>{% endif %}
<h3>Notes and caveats</h3>
<ul class="notes">{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>

<h2>Pictures</h2>
{% for fig in figures %}<figure id="fig-{{ fig.name }}">
{{ fig.svg | safe }}
<figcaption>Figure {{ loop.index }}. {{ fig.caption }}</figcaption>
</figure>
{% endfor %}

<h2>Per-run summaries</h2>
{% for run in run_summaries %}<h3>{{ run.title }}</h3>
{{ run.table | safe }}
{% if run.notes %}<ul class="notes">{% for n in run.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% endfor %}

<hr>
<p class="meta">Written by ampbench. Vocabulary: an <em>exchange</em> is one HTTP request/response pair a
provider sees (retries included); a <em>request</em> is one task run; a <em>model call</em> is one successful
generation of the agent loop.</p>
</body>
</html>
"""


_WITH_INTERVAL = re.compile(r"^(.+?) (\[[^\]]+\])$")


def _table(header: list[str], rows: list[list[str]], text_columns: int = 2) -> str:
    """An escaped HTML table; the first `text_columns` columns are left-aligned text."""

    def cls(i: int) -> str:
        return ' class="text"' if i < text_columns else ""

    def cell(text: str) -> str:
        # "value [low, high]": the interval goes on its own smaller line, so wide tables stay narrow.
        match = _WITH_INTERVAL.match(text)
        if match is None:
            return html.escape(text)
        return f'{html.escape(match[1])}<br><span class="ci">{html.escape(match[2])}</span>'

    out = ['<div class="scroll"><table>', "<thead><tr>"]
    out += [f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td{cls(i)}>{cell(str(c))}</td>" for i, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _run_summary(runs: cmp.Runs, run: int) -> dict[str, Any]:
    data = runs.run_data(run)
    rows = report.summary_rows(data)
    header = [h for _, h in report.COLUMNS]
    body = [[report._fmt(r[k]) for k, _ in report.COLUMNS] for r in rows]
    m = data.manifest
    title = (
        f"{m.get('run_id', data.run_dir.name)} · suite {m.get('suite', '?')} · status {m.get('status', '?')}"
    )
    notes = [
        f"tool calls of {r['model']}: " + ", ".join(f"{k} {v}" for k, v in r["tool_calls_by_name"].items())
        for r in rows
        if r["tool_calls_by_name"]
    ]
    notes += report.notes(data, rows)
    return {"title": title, "table": _table(header, body, text_columns=1), "notes": notes}


def build_html(
    runs: cmp.Runs,
    comparison: cmp.Comparison,
    *,
    title: str = "ampbench · exchange amplification report",
) -> str:
    """The page as a string, from loaded runs and their comparison."""
    import jinja2

    feats = cmp.task_features(runs)
    figs = plots.figures(runs, feats)
    figures = [
        {"name": name, "caption": plots.FIGURES[name][0], "svg": plots.svg_inline(fig, f"f{i}")}
        for i, (name, fig) in enumerate(figs.items())
    ]
    runs_header = [
        "run",
        "suite",
        "status",
        "source",
        "models",
        "task runs",
        "errored",
        "exchanges",
        "directory",
    ]
    runs_rows = [
        [
            r["run_id"],
            r["suite"],
            str(r["status"]),
            r["sources"],
            r["models"],
            f"{r['task_runs']:,}",
            f"{r['errored_task_runs']:,}",
            f"{r['exchanges']:,}",
            r["run_dir"],
        ]
        for r in comparison.runs
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(_TEMPLATE)
    n_runs = len(comparison.runs)
    subtitle = (
        f"{n_runs} run{'s' if n_runs != 1 else ''}, {sum(g['requests'] for g in comparison.groups):,} task runs, "
        f"{sum(r['exchanges'] for r in comparison.runs):,} exchanges"
    )
    return template.render(
        title=title,
        subtitle=subtitle,
        settings=cmp.settings_line(comparison),
        runs_table=_table(runs_header, runs_rows, text_columns=5),
        main_table=_table(*cmp.table_rows(comparison, cmp.MAIN_COLUMNS)),
        token_table=_table(*cmp.table_rows(comparison, cmp.TOKEN_COLUMNS)),
        ratio_table=_table(*cmp.ratio_rows(comparison), text_columns=4) if comparison.ratios else "",
        tool_lines=cmp.tool_lines(comparison),
        figures=figures,
        run_summaries=[_run_summary(runs, i) for i in range(n_runs)],
        notes=comparison.notes or ["none"],
    )


def write_report(run_dirs: list[Path], out: Path, *, seed: int = 0, baseline: str | None = None) -> Path:
    """Load, compare and write the page; returns its path."""
    runs = cmp.load_runs(run_dirs)
    comparison = cmp.compare(runs, seed=seed, baseline=baseline)
    out = Path(out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_html(runs, comparison), encoding="utf-8")
    return out
