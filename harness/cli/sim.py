"""`ampbench sim`: run the built-in simulated provider as a standalone server."""

from __future__ import annotations

import sys

import typer

from harness.cli._wait import wait_until_stopped
from harness.errors import UserError

app = typer.Typer(
    help="The built-in simulated LLM provider (Anthropic Messages, OpenAI Chat Completions and Responses wire formats).",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Keep `serve` a subcommand even while it is the only one."""


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; loopback unless you mean to expose it."),
    port: int = typer.Option(8765, help="Port to listen on (0 picks a free one)."),
    faults: float = typer.Option(0.0, help="Fraction of requests that fail, between 0 and 1."),
    seed: int = typer.Option(0, help="Seed of the fault draw: same seed, same failures."),
    fault_kinds: str = typer.Option(
        "",
        "--fault-kinds",
        help="Comma-separated fault kinds (rate_limit, server_error, overloaded, slow, drop, stream_drop); default all.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print one line per request received."),
) -> None:
    """Serve simulated models until Ctrl-C; point an SDK or an agent at the printed URLs."""
    from harness.sim import PROFILES, SimServer
    from harness.sim.faults import parse_kinds

    if not 0.0 <= faults <= 1.0:
        raise UserError(f"--faults must be between 0 and 1, got {faults}")
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    try:
        kinds = parse_kinds(fault_kinds)
    except ValueError as exc:
        raise UserError(f"--fault-kinds: {exc}") from None

    server = SimServer(
        host=host,
        port=port,
        faults=faults,
        seed=seed,
        fault_kinds=kinds,
        on_request=_echo if verbose else None,
    )
    try:
        server.start()
    except OSError as exc:
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, or --port 0 for a free one"
        ) from None

    typer.echo(f"ampbench simulator listening on {server.url}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}, not only on loopback: anyone who can reach it can use it")
    typer.echo(f"models (SIMULATED, not real LLMs): {', '.join(sorted(PROFILES))}")
    if faults:
        typer.echo(f"faults: {faults:.0%} of requests, seed {seed}, kinds {', '.join(kinds)}")
    typer.echo("export these to point an SDK or agent at it:")
    typer.echo(f"  export ANTHROPIC_BASE_URL={server.url}")
    typer.echo(f"  export OPENAI_BASE_URL={server.url}/v1")
    typer.echo(f"request counts: curl {server.url}/_sim/stats    (Ctrl-C stops)")
    sys.stdout.flush()

    try:
        wait_until_stopped()
    finally:
        stats = server.stats()
        server.stop()
    typer.echo(f"stopped after {stats['requests']} requests")


def _echo(line: str) -> None:
    typer.echo(line)
