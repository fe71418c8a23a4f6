"""`python -m harness` is the `ampbench` command."""

from harness.cli import main

main()
