"""`ampbench proxy` and `ampbench wrap`: count the exchanges of any client through a loopback proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from harness.cli._wait import wait_until_stopped
from harness.errors import UserError

# stdout belongs to the wrapped command (its JSON output stays parseable); ampbench talks on stderr.
err = Console(stderr=True, soft_wrap=True, markup=False)

UpstreamOpt = Annotated[
    str | None,
    typer.Option(
        help="sim (an in-process simulator), auto ($ANTHROPIC_BASE_URL / $OPENAI_BASE_URL, else the "
        "providers' hosts) or a URL such as http://127.0.0.1:8080.",
    ),
]
OutOpt = Annotated[Path | None, typer.Option(help="Run directory (default results/<run_id>).")]
CassettesOpt = Annotated[
    str, typer.Option(help="off, record (keep what passes through) or replay (answer from recordings).")
]
CassetteDirOpt = Annotated[Path, typer.Option(help="Root folder of cassettes.")]
TimeoutOpt = Annotated[float, typer.Option(help="Upstream read timeout in seconds.")]


def _print_table(run_dir: Path) -> None:
    from harness import report
    from harness.results import load

    data = load(run_dir)
    if not len(data.tasks):
        err.print(
            "no exchanges reached the proxy: does the client read ANTHROPIC_BASE_URL / OPENAI_BASE_URL "
            "(or take a base URL option pointing at it)?"
        )
    else:
        err.print(report.rich_table(data))
        for row in report.summary_rows(data):
            if row["tool_calls_by_name"]:
                err.print(
                    f"tool calls of {row['model']}: "
                    + ", ".join(f"{k} {v}" for k, v in row["tool_calls_by_name"].items())
                )
        breakdown = session_breakdown(data.tasks)
        if breakdown is not None:
            err.print(breakdown)
    misses = data.manifest.get("cassette_misses")
    if misses:
        err.print(f"note: {misses} requests had no recording (see manifest.json cassette_miss_examples)")
    refused = data.manifest.get("refused_requests")
    if refused:
        err.print(
            f"note: {refused} requests refused with a 400 and sent nowhere (a request target other than "
            "/path?query, or a malformed request): no exchanges (see manifest.json refused_examples)",
            highlight=False,
        )


BREAKDOWN_ROWS = 20
# (tasks.csv column, header): main + side + non-model = exchanges; main and side model calls are the
# successful generations among the first two (main = the agent's own count of its loop's turns).
BREAKDOWN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("exchanges", "exchanges"),
    ("main_exchanges", "= main conv."),
    ("side_exchanges", "+ side"),
    ("non_model_exchanges", "+ non-model"),
    ("main_model_calls", "main calls"),
    ("side_model_calls", "side calls"),
)


def session_breakdown(tasks: Any) -> Any:
    """Per session: its exchanges split into main conversation, side and non-model requests."""
    from rich.table import Table

    if not len(tasks) or any(c not in tasks for c, _ in BREAKDOWN_COLUMNS):
        return None
    table = Table(
        title="Exchanges per session",
        caption="main conv.: generation requests of the main model's main conversation, failed ones "
        "too · side: other models or conversations (titles, summaries) · non-model: probes, model "
        "listings, count_tokens · calls: the successful ones (main calls = the agent's own turn count)",
        caption_justify="left",
    )
    table.add_column("session", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("model", no_wrap=True)
    for _, header in BREAKDOWN_COLUMNS:
        table.add_column(header, justify="right")
    for values in tasks.head(BREAKDOWN_ROWS).to_dict("records"):
        session = str(values["task_id"]) + (f" r{values['repeat']}" if values.get("repeat") else "")
        table.add_row(session, str(values["model"]), *(_count(values[c]) for c, _ in BREAKDOWN_COLUMNS))
    if len(tasks) > BREAKDOWN_ROWS:
        table.add_row(f"… {len(tasks) - BREAKDOWN_ROWS} more", "", *("" for _ in BREAKDOWN_COLUMNS))
    return table


def _count(value: Any) -> str:
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return "–"


def proxy_command(
    upstream: UpstreamOpt = None,
    port: Annotated[int, typer.Option(help="Loopback port to listen on (0 picks a free one).")] = 8766,
    out: OutOpt = None,
    cassettes: CassettesOpt = "off",
    cassette_dir: CassetteDirOpt = Path("cassettes"),
    timeout: TimeoutOpt = 600.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print one line per exchange.")] = False,
) -> None:
    """Run a counting reverse proxy on loopback until Ctrl-C; point any client's base URL at it."""
    from harness.proxy import ProxyConfig, ProxyThread

    config = ProxyConfig(
        upstream=upstream,
        port=port,
        out=out,
        cassettes=cassettes,
        cassette_dir=cassette_dir,
        timeout_s=timeout,
        on_exchange=_echo if verbose else None,
        on_refused=_echo_refused if verbose else None,
    )
    proxy = ProxyThread(config).start()
    p = proxy.proxy
    err.print(
        f"ampbench proxy listening on {p.url} -> {p.upstream.label if p.upstream else 'recordings only'}"
    )
    err.print(f"cassettes: {cassettes}" + (f" ({cassette_dir})" if cassettes != "off" else ""))
    err.print("point clients at it:")
    err.print(f"  export ANTHROPIC_BASE_URL={p.url}")
    err.print(f"  export OPENAI_BASE_URL={p.url}/v1")
    err.print(
        f"optional: send the header x-ampbench-session: NAME to name sessions · counts: {p.url}/_ampbench/stats"
    )
    err.print(f"writing {p.run_dir} (Ctrl-C stops and writes tasks.csv)")
    try:
        wait_until_stopped()
    finally:
        run_dir = proxy.stop()
    _print_table(run_dir)
    err.print(f"results: {run_dir}")


def _echo(row: dict[str, object]) -> None:
    status = row["status"] if row["status"] is not None else f"-> {row.get('proxy_status') or 'dropped'}"
    extra = f" {row['error']}" if row.get("error") else ""
    err.print(
        f"{row['task_id']} r{row['repeat']} step {row['step']} attempt {row['attempt']}: "
        f"{row['method']} {row['endpoint']} {row.get('request_model') or ''} {status} "
        f"{row['latency_ms']:.0f} ms{extra}",
        highlight=False,
    )


def _echo_refused(reason: str) -> None:
    err.print(f"refused, not forwarded: {reason}", highlight=False, markup=False)


def wrap_command(
    command: Annotated[list[str] | None, typer.Argument(help="The command to run, after `--`.")] = None,
    upstream: UpstreamOpt = "auto",
    out: OutOpt = None,
    cassettes: CassettesOpt = "off",
    cassette_dir: CassetteDirOpt = Path("cassettes"),
    timeout: TimeoutOpt = 600.0,
) -> None:
    """Run COMMAND with its base URLs pointed at a counting proxy, then print its amplification table.

    Usage: ampbench wrap [OPTIONS] -- COMMAND [ARGS]...  The exit code is COMMAND's.
    """
    from harness.proxy import ProxyConfig, ProxyThread

    if not command:
        raise UserError("no command to run: ampbench wrap [OPTIONS] -- COMMAND [ARGS]...")
    if cassettes == "replay" and upstream == "auto":
        upstream = None  # replay needs no upstream; `auto` is only the default
    config = ProxyConfig(
        upstream=upstream,
        port=0,
        out=out,
        kind="wrap",
        cassettes=cassettes,
        cassette_dir=cassette_dir,
        timeout_s=timeout,
        command=list(command),
    )
    proxy = ProxyThread(config).start()
    env = dict(os.environ)
    env["ANTHROPIC_BASE_URL"] = proxy.url
    env["OPENAI_BASE_URL"] = proxy.url + "/v1"
    if upstream == "sim" or cassettes == "replay":
        # Nothing real is reached: the SDKs only need some key to start.
        env.setdefault("ANTHROPIC_API_KEY", "sim")
        env.setdefault("OPENAI_API_KEY", "sim")
    returncode = 1
    try:
        try:
            child = subprocess.Popen(command, env=env)
        except OSError as exc:
            raise UserError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from None
        try:
            returncode = child.wait()
        except KeyboardInterrupt:
            # The terminal sent SIGINT to the child too; give it time to exit on its own.
            try:
                returncode = child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.terminate()
                returncode = child.wait()
    finally:
        run_dir = proxy.stop()
    _print_table(run_dir)
    err.print(f"results: {run_dir}")
    sys.stdout.flush()
    # A child killed by a signal exits like a shell reports it: 128 + the signal number.
    raise typer.Exit(returncode if returncode >= 0 else 128 - returncode)
