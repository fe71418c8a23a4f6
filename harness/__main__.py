"""`python -m harness` and the `ampbench` command."""

from harness.imports import collector_paused


def main() -> None:
    # Start-up imports build objects that live as long as the process: the collector would
    # only walk them, again and again, while they load.
    with collector_paused():
        from harness.cli import main as cli_main
    cli_main()


if __name__ == "__main__":
    main()
