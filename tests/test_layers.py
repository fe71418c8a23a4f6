"""The import contracts of pyproject.toml: the tree keeps them, and an upward import breaks them.

`lint-imports` analyses the packages it imports; it puts its working directory
first on `sys.path`, ahead of the editable install, so running it inside a
copy of the tree checks the copy. Each case adds one deliberate import to a
copy and expects the contract it breaks to be named.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS = "harness layers, commands down to wire formats"
NO_SUITES = "harness reaches suites only through the suite registry"
SIM = "the simulator shares no code with the client side it checks"
WIRE = "wire formats import no SDK and no HTTP client"
SUITES = "suites never import the runner or the commands"
CONTRACTS = (LAYERS, NO_SUITES, SIM, WIRE, SUITES)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` on the tree at `root` (its pyproject.toml, its packages)."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
            "--no-cache",
            "--no-logo",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_tree(dest: Path) -> Path:
    """harness/, suites/ and pyproject.toml, without bytecode."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("harness", "suites"):
        shutil.copytree(REPO / package, dest / package, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for name in CONTRACTS:
        assert f"{name} KEPT" in " ".join(output.split()), output


def test_an_untouched_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The cycles this layering removed: wire formats or the ledger reaching up.
        ("harness/wire/__init__.py", "import harness.runner", LAYERS),
        ("harness/ledger.py", "import harness.clients", LAYERS),
        ("harness/records.py", "import harness.results", LAYERS),
        # A generic module importing a suite at import time.
        ("harness/sim/profiles.py", "import suites.swe.sim_agents", NO_SUITES),
        ("harness/sim/server.py", "import harness.clients", SIM),
        ("harness/wire/_common.py", "import httpx2", WIRE),
        ("suites/swe/suite.py", "import harness.runner", SUITES),
    ],
)
def test_an_upward_import_breaks_its_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    root = copy_tree(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # deliberate: breaks {broken!r}\n")

    result = lint_imports(root)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert f"{broken} BROKEN" in output, output
    imported = line.removeprefix("import ")
    importer = module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert importer in output and imported in output, output


def _module_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every import that runs at import time: outside functions, inside classes and ifs."""
    found: list[tuple[int, str]] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        pending.extend(ast.iter_child_nodes(node))
    return found


def test_harness_imports_suites_only_inside_functions() -> None:
    """The contract lets `harness.runner -> suites` and `harness.cli.run -> suites` through: keep them lazy."""
    offenders = []
    for path in sorted((REPO / "harness").rglob("*.py")):
        for lineno, module in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if module == "suites" or module.startswith("suites."):
                offenders.append(f"{path.relative_to(REPO)}:{lineno}: import {module}")
    assert offenders == [], "harness must reach suites through suites.get_suite, inside a function"
