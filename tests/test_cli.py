"""Bad input gets one clear line, a non-zero exit, no traceback and no run directory."""

from __future__ import annotations

import pytest

from tests.conftest import ampbench


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--suite", "snich", "--model", "sim:terse"], {}, "unknown suite 'snich'"),
        (["--suite", "snitch", "--model", "nonsense"], {}, "malformed model spec"),
        (["--suite", "snitch", "--model", "acme:big-model"], {}, "unknown provider 'acme'"),
        (["--suite", "snitch", "--model", "anthropic:claude-sonnet-4-5"], {}, "set ANTHROPIC_API_KEY"),
        (["--suite", "snitch", "--model", "deepseek:deepseek-chat"], {}, "set DEEPSEEK_API_KEY"),
        (
            ["--suite", "snitch", "--model", "sim:nosuchprofile"],
            {},
            "unknown simulator profile 'nosuchprofile'",
        ),
        (["--suite", "snitch", "--model", "compat:llama"], {}, "compat:MODEL@http"),
        (
            ["--suite", "snitch", "--suite-dir", "/nonexistent/snitchbench", "--model", "sim:terse"],
            {},
            "/nonexistent/snitchbench",
        ),
        (["--suite", "snitch", "--model", "sim:terse", "--repeats", "0"], {}, "--repeats"),
        (
            ["--suite", "snitch", "--model", "sim:terse", "--cassettes", "sometimes"],
            {},
            "unknown cassette mode",
        ),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, args, env, expected):
    out = tmp_path / "run"
    result = ampbench("run", *args, "--out", str(out), "--no-progress", env=env, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_wrong_flag_is_a_usage_error(tmp_path):
    result = ampbench("run", "--suite", "snitch", "--no-such-flag", timeout=60)
    assert result.returncode == 2
    assert "No such option" in result.stderr and "Traceback" not in result.stderr


def test_report_of_a_missing_run_is_one_line(tmp_path):
    result = ampbench("report", str(tmp_path / "nope"), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_existing_run_dir_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("data")
    result = ampbench("run", "--suite", "snitch", "--model", "sim:terse", "--out", str(out), timeout=60)
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (out / "keep.txt").read_text() == "data"
