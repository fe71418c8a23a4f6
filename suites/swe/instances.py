"""SWE-bench task instances: the schema, loading from dataset exports, filters.

An instance follows SWE-bench's schema (the columns of the Hugging Face
datasets ``princeton-nlp/SWE-bench``, ``_Lite``, ``_Verified``): ``instance_id``,
``repo``, ``base_commit``, ``problem_statement``, ``patch``, ``test_patch``,
``FAIL_TO_PASS``, ``PASS_TO_PASS``, ``version``, ``environment_setup_commit``,
``hints_text``, ``created_at``. In the dataset, FAIL_TO_PASS and PASS_TO_PASS
are JSON-encoded lists held in strings; real lists are accepted too.

`load_instances` reads a JSONL, JSON (a list of objects) or Parquet export.
Error policy:

* a file that cannot be read as a whole (missing, not JSON, not a list, no
  valid row) raises `harness.errors.UserError` with one line naming the file
  (and the line, where there is one);
* a bad row (invalid JSON on its line, a missing field, a malformed value, a
  duplicate id) is skipped, and a warning ``FILE:LINE: reason`` is returned
  alongside the instances, so one broken row does not stop a 2,294-task run;
  ``strict=True`` turns the first bad row into a UserError instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from harness.errors import UserError

SWE_DIR = Path(__file__).resolve().parent
BUNDLED_JSONL = SWE_DIR / "instances.jsonl"
PROJECTS_DIR = SWE_DIR / "projects"

# Column order of the SWE-bench datasets; to_record() writes them in this order.
SWE_BENCH_FIELDS = (
    "repo",
    "instance_id",
    "base_commit",
    "patch",
    "test_patch",
    "problem_statement",
    "hints_text",
    "created_at",
    "version",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "environment_setup_commit",
)
REQUIRED_FIELDS = (
    "instance_id",
    "repo",
    "base_commit",
    "problem_statement",
    "test_patch",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
)

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


class InstanceFormatError(ValueError):
    """One record does not follow the schema; the message says why (no location)."""


@dataclass(frozen=True)
class Instance:
    """One SWE-bench task instance."""

    instance_id: str
    """E.g. 'django__django-11099' or 'ampbench__tinycsv-1'."""
    repo: str
    """'owner/name' on GitHub (or 'ampbench/<name>' for the bundled mini suite)."""
    base_commit: str
    """The commit the agent starts from."""
    problem_statement: str
    """The issue text shown to the agent."""
    patch: str = ""
    """The gold fix (a git diff); never shown to the agent."""
    test_patch: str = ""
    """Adds or changes the tests that decide the instance; applied only when grading."""
    fail_to_pass: tuple[str, ...] = ()
    """Test ids that fail before the fix and must pass after it."""
    pass_to_pass: tuple[str, ...] = ()
    """Test ids that pass before and must still pass after it."""
    version: str = ""
    environment_setup_commit: str = ""
    hints_text: str = ""
    created_at: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Other columns of the source row (e.g. 'difficulty' of SWE-bench Verified), kept as they were."""

    @property
    def repo_owner(self) -> str:
        return self.repo.split("/", 1)[0]

    @property
    def repo_name(self) -> str:
        return self.repo.split("/", 1)[1]

    @property
    def test_ids(self) -> tuple[str, ...]:
        """FAIL_TO_PASS then PASS_TO_PASS."""
        return self.fail_to_pass + self.pass_to_pass

    def to_record(self) -> dict[str, Any]:
        """The row in SWE-bench's shape: test lists JSON-encoded, extra columns after."""
        record: dict[str, Any] = {
            "repo": self.repo,
            "instance_id": self.instance_id,
            "base_commit": self.base_commit,
            "patch": self.patch,
            "test_patch": self.test_patch,
            "problem_statement": self.problem_statement,
            "hints_text": self.hints_text,
            "created_at": self.created_at,
            "version": self.version,
            "FAIL_TO_PASS": json.dumps(list(self.fail_to_pass)),
            "PASS_TO_PASS": json.dumps(list(self.pass_to_pass)),
            "environment_setup_commit": self.environment_setup_commit,
        }
        for key, value in self.extra.items():
            record.setdefault(key, value)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Instance:
        """Validate one row; raises InstanceFormatError with the reason."""
        if not isinstance(record, Mapping):
            raise InstanceFormatError(f"expected an object, got {type(record).__name__}")
        missing = [name for name in REQUIRED_FIELDS if _is_missing(record.get(name))]
        if missing:
            raise InstanceFormatError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        instance_id = _text(record, "instance_id").strip()
        repo = _text(record, "repo").strip()
        if not _REPO.match(repo):
            raise InstanceFormatError(f"repo must look like 'owner/name', got {repo!r}")
        base_commit = _text(record, "base_commit").strip().lower()
        if not _COMMIT.match(base_commit):
            raise InstanceFormatError(f"base_commit must be a hex commit id, got {base_commit!r}")
        extra = {k: v for k, v in record.items() if k not in SWE_BENCH_FIELDS}
        return cls(
            instance_id=instance_id,
            repo=repo,
            base_commit=base_commit,
            problem_statement=_text(record, "problem_statement"),
            patch=_text(record, "patch"),
            test_patch=_text(record, "test_patch"),
            fail_to_pass=_test_list(record, "FAIL_TO_PASS"),
            pass_to_pass=_test_list(record, "PASS_TO_PASS"),
            version=_text(record, "version"),
            environment_setup_commit=_text(record, "environment_setup_commit").strip(),
            hints_text=_text(record, "hints_text"),
            created_at=_text(record, "created_at"),
            extra=extra,
        )


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN from pandas
        return True
    return isinstance(value, str) and value == ""


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if _is_missing(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # e.g. version 3.0 read as a number
    if hasattr(value, "isoformat"):
        return value.isoformat()  # created_at as a pandas Timestamp / datetime
    raise InstanceFormatError(f"{name} must be a string, got {type(value).__name__}")


def _test_list(record: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = record.get(name)
    if hasattr(value, "tolist"):  # numpy array from a Parquet export
        value = value.tolist()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InstanceFormatError(f"{name} must be a JSON-encoded list of test ids") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InstanceFormatError(f"{name} must be a list of test ids (strings)")
    return tuple(value)


class LoadedInstances(NamedTuple):
    instances: list[Instance]
    warnings: list[str]
    """One 'FILE:LINE: reason' per skipped row."""


# --------------------------------------------------------------------------- reading files


def _rows_jsonl(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, InstanceFormatError(f"invalid JSON ({exc.msg} at column {exc.colno})")


def _rows_json(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(data, dict) and isinstance(data.get("instances"), list):
        data = data["instances"]
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON list of instances, got a JSON {type(data).__name__}")
    for index, row in enumerate(data, start=1):
        yield f"{path}: item {index}", row


def _rows_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pandas as pd  # optional: only Parquet needs it
    except ImportError:
        raise UserError(
            f"{path}: reading Parquet needs pandas and pyarrow (pip install pandas pyarrow)"
        ) from None
    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise UserError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise UserError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    for index, row in enumerate(frame.to_dict("records"), start=1):
        yield f"{path}: row {index}", row


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return _rows_parquet(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if suffix in (".jsonl", ".ndjson"):
        return _rows_jsonl(path, text)
    if suffix == ".json":
        return _rows_json(path, text)
    # Unknown suffix: a list is JSON, anything else is taken for JSONL.
    return _rows_json(path, text) if text.lstrip().startswith("[") else _rows_jsonl(path, text)


def read_instances(path: str | os.PathLike[str], *, strict: bool = False) -> LoadedInstances:
    """Every valid instance of a JSONL / JSON / Parquet file, in file order (see the module doc)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"instances file {os.fspath(path)!r} not found")
    instances: list[Instance] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for where, row in _rows(p):
        try:
            if isinstance(row, InstanceFormatError):
                raise row
            instance = Instance.from_record(row)
            if instance.instance_id in seen:
                raise InstanceFormatError(f"duplicate instance_id {instance.instance_id!r}")
        except InstanceFormatError as exc:
            if strict:
                raise UserError(f"{where}: {exc}") from None
            warnings.append(f"{where}: {exc}")
            continue
        seen.add(instance.instance_id)
        instances.append(instance)
    if not instances:
        raise UserError(f"{p}: no valid instances" + (f" (first problem: {warnings[0]})" if warnings else ""))
    return LoadedInstances(instances, warnings)


# --------------------------------------------------------------------------- filters


def parse_shard(shard: str | tuple[int, int]) -> tuple[int, int]:
    """'2/4' -> (2, 4); shards are numbered from 1."""
    if isinstance(shard, tuple):
        index, count = shard
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
        if not match:
            raise UserError(f"shard must look like i/n (e.g. 1/4), got {shard!r}")
        index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UserError(f"shard {index}/{count} is out of range: use i/n with 1 <= i <= n")
    return index, count


def _split_ids(task_ids: str | Iterable[str]) -> list[str]:
    items = task_ids.split(",") if isinstance(task_ids, str) else list(task_ids)
    return [t.strip() for item in items for t in item.split(",") if t.strip()]


def select(
    instances: Sequence[Instance],
    *,
    task_ids: str | Iterable[str] | None = None,
    limit: int | None = None,
    shard: str | tuple[int, int] | None = None,
) -> list[Instance]:
    """Apply the filters in this order: task ids, shard, limit.

    `task_ids` keeps file order; an unknown id is a UserError. `shard` 'i/n'
    takes every n-th instance starting at the i-th (round robin, so every shard
    gets a mix of repositories). `limit` keeps the first N of what is left.
    """
    chosen = list(instances)
    if task_ids is not None:
        wanted = _split_ids(task_ids)
        known = {inst.instance_id for inst in chosen}
        unknown = [t for t in wanted if t not in known]
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise UserError(f"unknown task id(s) {shown} ({len(known)} instances available)")
        wanted_set = set(wanted)
        chosen = [inst for inst in chosen if inst.instance_id in wanted_set]
    if shard is not None:
        index, count = parse_shard(shard)
        chosen = chosen[index - 1 :: count]
    if limit is not None:
        if limit < 1:
            raise UserError(f"the task limit must be at least 1, got {limit}")
        chosen = chosen[:limit]
    return chosen


def load_instances(
    path: str | os.PathLike[str],
    *,
    task_ids: str | Iterable[str] | None = None,
    limit: int | None = None,
    shard: str | tuple[int, int] | None = None,
    strict: bool = False,
) -> LoadedInstances:
    """`read_instances` then `select`; warnings are those of the whole file."""
    loaded = read_instances(path, strict=strict)
    return LoadedInstances(
        select(loaded.instances, task_ids=task_ids, limit=limit, shard=shard), loaded.warnings
    )


def write_instances(path: str | os.PathLike[str], instances: Iterable[Instance]) -> int:
    """Write instances as SWE-bench JSONL rows; returns the count."""
    lines = [json.dumps(inst.to_record(), ensure_ascii=False) for inst in instances]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


# --------------------------------------------------------------------------- the bundled mini suite


def bundled_instances(
    *,
    task_ids: str | Iterable[str] | None = None,
    limit: int | None = None,
    shard: str | tuple[int, int] | None = None,
) -> list[Instance]:
    """The offline mini suite shipped in suites/swe/instances.jsonl (regenerate it with
    ``python -m suites.swe.build_instances``)."""
    loaded = read_instances(BUNDLED_JSONL, strict=True)
    return select(loaded.instances, task_ids=task_ids, limit=limit, shard=shard)


def bundled_project_dir(instance_id: str) -> Path | None:
    """The source folder of a bundled instance (holding repo/, gold.patch, ...), or None."""
    if not instance_id or "/" in instance_id or instance_id.startswith("."):
        return None
    path = PROJECTS_DIR / instance_id
    return path if (path / "repo").is_dir() else None
