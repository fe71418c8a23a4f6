"""The HTML report and the pictures: self-contained, every picture inline, labelled axes, renders offline."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import compare as cmp
from harness import plots
from harness.cli.analysis import write_html
from harness.errors import UserError
from tests.test_compare import make_run, random_tasks


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("html")
    rng = random.Random(11)
    multi = make_run(
        root,
        "snitch-run",
        {
            "anthropic:claude-x": random_tasks(rng, 4, 3, turns=4),
            "sim:terse": random_tasks(rng, 4, 3, turns=4),
        },
    )
    ingested = make_run(
        root,
        "swe-ingest",
        {"openai:gpt-y": random_tasks(rng, 6, 1, tokens=False)},
        suite="swe",
        manifest={"kind": "ingest", "limits": ["see https://example.org/limits for what trajectories omit"]},
        source="ingest:mini-swe-agent",
    )
    return [multi, ingested]


@pytest.fixture(scope="module")
def page(run_dirs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_html(run_dirs, tmp_path_factory.mktemp("out") / "sub" / "report.html")


def test_page_fetches_nothing(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"<script|<link|<iframe|<object|<embed|@import|@font-face", text, re.I)
    refs = re.findall(
        r"""\b(?:src|href|xlink:href|srcset|poster|action)\s*=\s*["']([^"']*)["']""", text, re.I
    )
    assert all(r.startswith(("#", "data:")) for r in refs), [
        r for r in refs if not r.startswith(("#", "data:"))
    ]
    assert all(u.startswith("#") for u in re.findall(r"url\(\s*['\"]?([^)'\"]*)", text))
    # The only web addresses left are XML namespace names (never fetched) and text a reader sees.
    without_namespaces = re.sub(r'\sxmlns(?::\w+)?="[^"]*"', "", text)
    for match in re.finditer(r"https?://", without_namespaces):
        before = without_namespaces[max(0, match.start() - 200) : match.start()]
        assert before.rfind("<") < before.rfind(">") or "<" not in before, "a web address inside a tag"


def test_page_has_tables_notes_and_every_picture_inline(page: Path, run_dirs: list[Path]) -> None:
    text = page.read_text(encoding="utf-8")
    runs = cmp.load_runs(run_dirs)
    figures = plots.figures(runs)
    assert set(figures) == set(plots.FIGURES)  # multi-turn suite and token counts: all four pictures
    for name in figures:
        assert f'id="fig-{name}"' in text
    assert text.count("<svg") == len(figures) and "<img" not in text
    comparison = cmp.compare(runs)
    for group in comparison.groups:
        assert group["model"] in text
        # The headline mean as the tables print it.
        assert f"{group['exchanges_per_request']['value']:,.2f}" in text
    assert "sim:terse (simulated)" in text and "ingest:mini-swe-agent" in text
    assert "what trajectories omit" in text  # the ingested run's caveat
    assert "Per-run summaries" in text and "snitch-run · suite snitch" in text


def test_pictures_have_axis_labels_with_units(run_dirs: list[Path]) -> None:
    figures = plots.figures(cmp.load_runs(run_dirs))
    assert figures
    for name, fig in figures.items():
        for ax in fig.axes:
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert label.strip(), f"{name}: empty axis label"
                assert re.search(r"\(.+\)", label), f"{name}: no unit in {label!r}"
            assert ax.get_title()


def test_write_plots_png_and_svg(run_dirs: list[Path], tmp_path: Path) -> None:
    written = plots.write_plots(cmp.load_runs(run_dirs), tmp_path / "plots")
    assert {p.name for p in written} == {f"{n}.{ext}" for n in plots.FIGURES for ext in ("png", "svg")}
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
        else:
            assert b"<svg" in data and b"<text" in data  # labels stay text (svg.fonttype none)
            assert b"(count)" in data or b"(tokens)" in data


def test_missing_data_leaves_pictures_out(tmp_path: Path) -> None:
    run = make_run(tmp_path, "bare", {"m:a": random_tasks(random.Random(5), 3, 1, tokens=False)})
    figures = plots.figures(cmp.load_runs([run]))
    # No token counts and single-turn tasks: no cumulative-token and no per-user-turn picture.
    assert set(figures) == {"exchanges_distribution", "exchanges_vs_steps"}


def test_write_html_refuses_a_directory(run_dirs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        write_html(run_dirs, tmp_path)


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_screenshot_in_headless_chromium_offline(page: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            # Any host name fails to resolve: the page must render without the network.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists() and shot.read_bytes().startswith(b"\x89PNG")
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # text, table shading and a picture, not a blank page
    ink = (pixels < 0.6).any(axis=2).mean()
    assert ink > 0.01
