"""Record and replay every HTTP attempt with vcrpy cassettes, one file per task run.

vcrpy's global patching does not fit a concurrent harness (its default
matchers ignore the body, concurrent tasks would share a cassette, exceptions
are never recorded). So ampbench plugs vcrpy's `Cassette`, serializer and
persister into its own transport, which sits *below* the ledger:

    SDK -> httpx2 client -> CountingTransport (ledger) -> CassetteTransport -> network

so a replayed run passes through the same counting code as a live one. The
cassette of the task run in progress is chosen from the context variables,
so tasks never see each other's recordings.

What a cassette holds beyond plain vcrpy: attempts that ended in an exception
(timeouts, dropped connections, streams cut mid-body) are stored as
interactions whose response carries an `ampbench_exception` entry, and are
raised again on replay. Bodies are stored decoded (no gzip), requests keep only
harmless headers, and the keys of the run are scrubbed from every byte written.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from harness.imports import VCR_PATCH_TARGETS, skipping

with skipping(VCR_PATCH_TARGETS):  # cassettes only; vcrpy patches no library here
    from vcr.cassette import Cassette
    from vcr.errors import UnhandledHTTPRequestError
    from vcr.persisters.filesystem import FilesystemPersister
    from vcr.record_mode import RecordMode
    from vcr.request import Request as VcrRequest
    from vcr.serializers import jsonserializer

from harness import context
from harness.errors import CassetteDamaged, CassetteMiss
from harness.redact import Scrubber, scrub_patterns

MODES = ("off", "record", "replay", "auto")
EXTENSION = "json"

# Request headers worth keeping in a cassette; everything else (keys, cookies,
# organisation ids, SDK telemetry) is dropped before anything is written.
_KEEP_REQUEST_HEADERS = frozenset(
    {
        "content-type",
        "accept",
        "anthropic-version",
        "anthropic-beta",
        "x-stainless-retry-count",
        "x-ampbench-repeat",
    }
)
# Response headers that would leak who recorded, or that no longer hold once the body is decoded.
_DROP_RESPONSE_HEADERS = frozenset(
    {
        "set-cookie",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
        "x-api-key",
        "authorization",
        "cookie",
        "content-encoding",
        "content-length",
        "transfer-encoding",
        "connection",
        "date",
        "server",
    }
)
# Fields that differ between otherwise identical requests of third-party clients.
_VOLATILE_BODY_FIELDS = ("user", "safety_identifier", "prompt_cache_key")


def slug(text: str) -> str:
    """A file-name-safe form of a model spec or task id."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def canonical_body(body: bytes) -> str:
    """The request body in a form that ignores key order and volatile fields."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace")
    if isinstance(data, dict):
        for name in _VOLATILE_BODY_FIELDS:
            data.pop(name, None)
        metadata = data.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("user_id", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _body_bytes(request: VcrRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    return body if isinstance(body, bytes) else str(body).encode("utf-8")


def _key(request: VcrRequest) -> str:
    # Computed once per request object and kept on it: a recorded request's key when
    # the cassette is indexed, a live request's for its lookup and, in auto, its indexing
    # once recorded.
    key = getattr(request, "_ampbench_key", None)
    if key is None:
        # Stored bodies were scrubbed; scrubbing the live one the same way keeps them matching.
        key = canonical_body(_scrub_patterns_bytes(_body_bytes(request)))
        request._ampbench_key = key  # type: ignore[attr-defined]
    return key


def _scrub_patterns_bytes(body: bytes) -> bytes:
    text = body.decode("utf-8", "surrogateescape")
    scrubbed = scrub_patterns(text)
    return body if scrubbed == text else scrubbed.encode("utf-8", "surrogateescape")


def body_matcher(r1: VcrRequest, r2: VcrRequest) -> bool:
    """A cheap boolean matcher: no diff is built on failure (vcrpy's `body` builds one)."""
    return _key(r1) == _key(r2)


def method_matcher(r1: VcrRequest, r2: VcrRequest) -> bool:
    return r1.method == r2.method


def path_matcher(r1: VcrRequest, r2: VcrRequest) -> bool:
    # The host is not matched: simulator and local servers listen on changing ports.
    # The path keeps the base URL's prefix (/v1) and the cassette file fixes the model.
    return r1.path.rstrip("/") == r2.path.rstrip("/")


MATCH_ON = (method_matcher, path_matcher, body_matcher)

MatchKey = tuple[str, str, str]


def match_key(request: VcrRequest) -> MatchKey:
    """`MATCH_ON` as one hashable value: two requests match exactly when their keys are equal."""
    return (request.method, request.path.rstrip("/"), _key(request))


class IndexedCassette(Cassette):
    """vcrpy's Cassette, with a lookup that costs the same however long the cassette is.

    vcrpy's `play_response` walks every interaction, running each matcher and
    formatting a debug message for each one that differs: O(k) per request and
    O(k²) per task run. Here the interactions not yet played wait in one queue per
    match key, in recorded order, so a lookup is a dict access and a `popleft`;
    the first unplayed match comes out, as with vcrpy's scan.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unplayed: dict[MatchKey, deque[int]] = {}
        self._indexed = 0
        """How many interactions of `data`, from the first, have been queued."""

    def _index_new(self) -> None:
        # Only what was loaded from the file is replayed. An interaction recorded during this
        # run is not played to a later identical request (as vcrpy's scan would): in auto mode
        # a retry of a 529 must reach the provider again, not get the recorded 529 back.
        while self._indexed < self._loaded_count:
            index = self._indexed
            self._unplayed.setdefault(match_key(self.data[index][0]), deque()).append(index)
            self._indexed = index + 1

    def _load(self) -> None:
        try:
            super()._load()
            self._index_new()
        except CassetteMiss:  # CassetteDamaged from the persister, already explained
            raise
        except Exception as exc:
            # The file parsed, but an interaction cannot be indexed (a method that is
            # not a string, say): damaged too, rather than a crash at the first request.
            raise CassetteDamaged(
                f"cassette {self._path} is damaged ({type(exc).__name__}: {str(exc)[:120]}); "
                "re-record it with --cassettes record"
            ) from None

    def rewind(self) -> None:
        super().rewind()
        self._unplayed = {}
        self._indexed = 0

    def next_response(self, request: VcrRequest) -> dict[str, Any] | None:
        """The first unplayed recorded response matching `request`, now played; None if there is none."""
        if self.allow_playback_repeats:
            # Repeats replay played interactions too, which a queue of unplayed ones cannot.
            try:
                return super().play_response(request)
            except UnhandledHTTPRequestError:
                return None
        self._index_new()
        request = self._before_record_request(request)
        queue = self._unplayed.get(match_key(request)) if request else None
        if not queue:
            return None
        index = queue.popleft()
        stored, response = self.data[index]
        # The bookkeeping of vcrpy's play_response, which its save modes read.
        if index < self._loaded_count:
            self._played_interactions.append((stored, response))
        self.play_counts[index] += 1
        return response

    def play_response(self, request: VcrRequest) -> dict[str, Any]:
        response = self.next_response(request)
        if response is None:
            raise UnhandledHTTPRequestError(
                f"The cassette ({self._path!r}) doesn't contain the request ({request!r}) asked for"
            )
        return response

    def __contains__(self, request: VcrRequest) -> bool:
        if self.allow_playback_repeats:
            return super().__contains__(request)
        self._index_new()
        request = self._before_record_request(request)
        return bool(request) and bool(self._unplayed.get(match_key(request)))


def _vcr_request(request: httpx2.Request, body: bytes) -> VcrRequest:
    headers = {k: v for k, v in request.headers.items() if k.lower() in _KEEP_REQUEST_HEADERS}
    # No credentials in the stored URL: user:password@ goes, as do the auth headers.
    url = request.url.copy_with(query=request.url.query or None, username=None, password=None)
    return VcrRequest(request.method, str(url), body, headers)


class _StrictPersister(FilesystemPersister):
    """vcrpy's file persister, except that a damaged cassette is an error, not an empty one.

    vcrpy treats an unreadable or empty file as missing and records over it; a
    replay then fails with "empty or missing" and `auto` silently re-records.
    """

    @classmethod
    def load_cassette(cls, cassette_path: Any, serializer: Any) -> Any:
        from vcr.persisters.filesystem import CassetteNotFoundError

        path = Path(cassette_path)
        if not path.exists():
            raise CassetteNotFoundError()
        if not path.is_file():
            raise CassetteDamaged(f"cassette {path} is not a file")
        try:
            data = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            raise CassetteDamaged(f"cassette {path} cannot be read ({exc}); re-record it") from None
        if not data.strip():
            raise CassetteDamaged(f"cassette {path} is empty; re-record it with --cassettes record")
        try:
            return super().load_cassette(cassette_path, serializer)
        except Exception as exc:
            raise CassetteDamaged(
                f"cassette {path} is damaged ({type(exc).__name__}: {str(exc)[:120]}); "
                "re-record it with --cassettes record"
            ) from None


@dataclass
class CassetteStore:
    """The cassettes of one run: `<root>/<suite>/<model>/<task>__r<repeat>.json`."""

    root: Path
    suite: str
    mode: str
    scrubber: Scrubber = field(default_factory=Scrubber)
    """Applied to every body stored: the run's keys, keys seen on the wire, key-shaped strings."""
    _open: dict[tuple[str, str, int], IndexedCassette] = field(default_factory=dict)

    def path_for(self, model: str, task_id: str, repeat: int) -> Path:
        return self.root / slug(self.suite) / slug(model) / f"{slug(task_id)}__r{repeat}.{EXTENSION}"

    def cassette(self, model: str, task_id: str, repeat: int) -> IndexedCassette:
        key = (model, task_id, repeat)
        cassette = self._open.get(key)
        if cassette is None:
            # Record starts every task run afresh; replay and auto read what is on disk.
            make = IndexedCassette if self.mode == "record" else IndexedCassette.load
            cassette = make(
                path=str(self.path_for(model, task_id, repeat)),
                serializer=jsonserializer,
                persister=_StrictPersister,
                record_mode=RecordMode.ALL if self.mode == "record" else RecordMode.NEW_EPISODES,
                match_on=MATCH_ON,
                before_save_interaction=self._scrub,
            )
            self._open[key] = cassette
        return cassette

    def _scrub(self, request: VcrRequest, response: dict[str, Any]) -> tuple[VcrRequest, dict[str, Any]]:
        request.body = self.scrubber.bytes(_body_bytes(request))
        text = response["body"].get("string")
        if isinstance(text, bytes):
            response["body"]["string"] = self.scrubber.bytes(text)
        elif isinstance(text, str):
            response["body"]["string"] = self.scrubber(text)
        return request, response

    def save(self, model: str, task_id: str, repeat: int) -> None:
        """Write the task run's cassette (record/auto) and forget it."""
        cassette = self._open.pop((model, task_id, repeat), None)
        if cassette is None or self.mode == "replay":
            return
        if cassette.dirty or self.mode == "record":
            # vcrpy saves through the private _save when its context manager exits;
            # this store is that context, once per task run.
            cassette._metadata["ampbench"] = {
                "suite": self.suite,
                "model": model,
                "task_id": task_id,
                "repeat": repeat,
            }
            cassette._save(force=True)

    def save_all(self) -> None:
        for key in list(self._open):
            self.save(*key)


def closest_request(cassette: Cassette, body: bytes) -> str:
    """Describe the recorded request nearest to an unmatched one, for the miss message."""
    if not cassette.data:
        return f"the cassette {cassette.path} is empty or missing"
    target = canonical_body(body)
    best = max(
        cassette.data,
        key=lambda pair: difflib.SequenceMatcher(
            None, canonical_body(_body_bytes(pair[0])), target
        ).quick_ratio(),
    )
    recorded = canonical_body(_body_bytes(best[0]))
    at = next(
        (i for i, (a, b) in enumerate(zip(recorded, target, strict=False)) if a != b),
        min(len(recorded), len(target)),
    )
    return f"closest recorded request {best[0].method} {best[0].path} first differs at character {at}: recorded {recorded[max(0, at - 40) : at + 40]!r} vs now {target[max(0, at - 40) : at + 40]!r}"


def _exception_from(entry: dict[str, Any], request: httpx2.Request) -> Exception:
    cls = getattr(httpx2, str(entry.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, httpx2.TransportError)):
        cls = httpx2.RemoteProtocolError
    return cls(str(entry.get("message", "")), request=request)


class _ReplayStream(httpx2.AsyncByteStream):
    """A recorded body, cut where the recorded stream was cut, then the recorded exception."""

    def __init__(self, body: bytes, error: Exception | None) -> None:
        self._body = body
        self._error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body
        if self._error is not None:
            raise self._error


class CassetteTransport(httpx2.AsyncBaseTransport):
    """Answers from the task run's cassette, or forwards to `live` and records."""

    def __init__(self, store: CassetteStore, live: httpx2.AsyncBaseTransport | None = None) -> None:
        self.store = store
        self.live = live

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        ctx = context.current()
        body = await request.aread()
        cassette = self.store.cassette(ctx.model, ctx.task_id, ctx.repeat)
        vreq = _vcr_request(request, body)
        if self.store.mode in ("replay", "auto"):
            recorded = cassette.next_response(vreq)
            if recorded is not None:
                return self._replayed(recorded, request)
            if self.store.mode == "replay":
                raise CassetteMiss(
                    f"no recorded response for task {ctx.task_id} ({ctx.model}, repeat {ctx.repeat}) "
                    f"step {ctx.step} attempt {ctx.attempt}: {closest_request(cassette, body)}; "
                    "re-record with --cassettes record (or auto)"
                )
        if self.live is None:  # pragma: no cover - the runner always gives record/auto a live transport
            raise CassetteMiss("no live transport to record with")
        return await self._record(cassette, vreq, request)

    def _replayed(self, recorded: dict[str, Any], request: httpx2.Request) -> httpx2.Response:
        failure = recorded.get("ampbench_exception")
        error = _exception_from(failure, request) if failure else None
        if failure and not failure.get("mid_stream"):
            raise error  # type: ignore[misc]
        headers = [(k, v) for k, values in recorded["headers"].items() for v in values]
        raw = recorded["body"]["string"] or b""
        raw = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        return httpx2.Response(
            recorded["status"]["code"], headers=headers, stream=_ReplayStream(raw, error), request=request
        )

    async def _record(
        self, cassette: IndexedCassette, vreq: VcrRequest, request: httpx2.Request
    ) -> httpx2.Response:
        assert self.live is not None
        try:
            response = await self.live.handle_async_request(request)
        except httpx2.TransportError as exc:
            cassette.append(vreq, _failure_response(exc, status=0, headers={}, body=b"", mid_stream=False))
            raise
        chunks: list[bytes] = []
        failure: Exception | None = None
        wire = httpx2.Response(
            response.status_code, headers=response.headers, stream=response.stream, request=request
        )
        try:
            # Reading decodes gzip/br, so the cassette holds plain text a person can read.
            async for chunk in wire.aiter_bytes():
                chunks.append(chunk)
        except httpx2.TransportError as exc:
            failure = exc
        finally:
            await wire.aclose()
        body = b"".join(chunks)
        headers: dict[str, list[str]] = {}
        for name, value in response.headers.multi_items():
            if name.lower() not in _DROP_RESPONSE_HEADERS:
                headers.setdefault(name.lower(), []).append(value)
        if failure is not None:
            cassette.append(
                vreq,
                _failure_response(
                    failure, status=response.status_code, headers=headers, body=body, mid_stream=True
                ),
            )
        else:
            cassette.append(
                vreq,
                {
                    "status": {"code": response.status_code, "message": response.reason_phrase},
                    "headers": headers,
                    "body": {"string": body},
                },
            )
        flat = [(k, v) for k, values in headers.items() for v in values]
        return httpx2.Response(
            response.status_code, headers=flat, stream=_ReplayStream(body, failure), request=request
        )

    async def aclose(self) -> None:
        if self.live is not None:
            await self.live.aclose()


def _failure_response(
    exc: Exception, *, status: int, headers: dict[str, list[str]], body: bytes, mid_stream: bool
) -> dict[str, Any]:
    return {
        "status": {"code": status, "message": "ampbench: the attempt ended in an exception"},
        "headers": headers,
        "body": {"string": body},
        "ampbench_exception": {"type": type(exc).__name__, "message": str(exc), "mid_stream": mid_stream},
    }


def iter_cassette_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob(f"*.{EXTENSION}") if p.is_file())
