"""The `ampbench` command line.

Each command group lives in its own module; this one assembles them and
turns every deliberate error (`AmpbenchError`) into one line on stderr and
exit code 2, without a traceback.
"""

from __future__ import annotations

import sys

import typer

from harness.cli import run as run_cmds
from harness.errors import AmpbenchError, Interrupted
from harness.redact import scrub_patterns

app = typer.Typer(
    name="ampbench",
    help="Measure exchange amplification: provider-visible exchanges, model calls, tool calls and tokens per request.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("run")(run_cmds.run)
app.command("report")(run_cmds.report)
app.command("demo")(run_cmds.demo)
_BUILT_IN = frozenset({"run", "report", "demo"})


# Command groups built in their own modules: (module, attribute, group or command, name, help).
_MOUNTS = (
    ("sim", "app", "group", "sim", "The built-in simulated provider (a real HTTP server on loopback)."),
    ("cassettes", "app", "group", "cassettes", "List and check recorded cassettes."),
    ("ingest", "ingest_command", "command", "ingest", None),
    ("analysis", "compare_command", "command", "compare", None),
    ("analysis", "project_command", "command", "project", None),
    ("proxy", "proxy_command", "command", "proxy", None),
    ("proxy", "wrap_command", "command", "wrap", None),
    ("grade", "grade_command", "command", "grade", None),
)


_mounted: set[str] = set()


def _mount_groups(argv: list[str]) -> None:
    """Import the module of the command being run, or all of them when help lists every command.

    Each module pulls in its own dependencies (vcrpy, pandas, the proxy's server); importing all
    of them cost every command, `run` included, over a second of CPU before doing anything.
    """
    import importlib

    wanted = argv[0] if argv else None
    if wanted in _BUILT_IN:
        return
    if wanted not in {name for *_, name, _ in _MOUNTS}:
        wanted = None  # help, or a typo: list every command
    for module_name, attr, kind, name, help_text in _MOUNTS:
        if (wanted is not None and name != wanted) or name in _mounted:
            continue
        _mounted.add(name)
        module = importlib.import_module(f"harness.cli.{module_name}")
        if kind == "group":
            app.add_typer(getattr(module, attr), name=name, help=help_text)
        else:
            app.command(name)(getattr(module, attr))


def main() -> None:
    """Run a command; every failure ends in one line on stderr and an exit code, never a traceback."""
    from typer._click import exceptions as click_errors

    _mount_groups(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()  # a bare `ampbench` or group: the help, as before
        raise SystemExit(2) from None
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "ampbench"
        print(scrub_patterns(f"error: {exc.format_message()} (see: {where} --help)"), file=sys.stderr)
        raise SystemExit(2) from None
    except click_errors.ClickException as exc:
        print(scrub_patterns(f"error: {exc.format_message()}"), file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except Interrupted as exc:
        print(scrub_patterns(str(exc)), file=sys.stderr)
        raise SystemExit(130) from None
    except AmpbenchError as exc:
        print(scrub_patterns(f"error: {exc}"), file=sys.stderr)
        raise SystemExit(2) from None
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except OSError as exc:
        # A full disk, a closed pipe, a file that vanished: said in one line.
        print(
            scrub_patterns(f"error: {exc.strerror or exc}: {exc.filename or ''}").rstrip(": "),
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
