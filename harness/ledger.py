"""The ledger: one row per HTTP attempt, counted at the transport.

`CountingTransport` wraps whatever transport sits below it (live network,
cassette replay, the simulator) and records every attempt the SDK makes:
successes, error statuses, timeouts and dropped connections alike. It is the
only place in ampbench that counts exchanges; everything else reads its rows.

A response body is parsed once, here, by the provider's parser; the client
that made the call picks the parsed turn up from `capture()` instead of
parsing the body a second time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2

from harness import context
from harness.conversation import ModelTurn
from harness.errors import AmpbenchError
from harness.records import Exchange
from harness.wire import parse_exchange

# Response headers worth keeping: they explain retries and rate limits.
_KEPT_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry", "request-id", "x-request-id")
SIMULATED_HEADER = "x-ampbench-simulated"


class LedgerSink(Protocol):
    """Where the ledger sends each exchange as soon as it is complete."""

    def record(self, exchange: Exchange) -> None: ...


# Request headers whose values are credentials: a sink with `add_secret` learns them, so
# that no file it writes can hold them, whatever a provider echoes back.
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")


class MemorySink:
    """Keeps exchanges in a list; for tests and small scripts."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def record(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


@dataclass
class ResponseSlot:
    """Filled by the transport with the parsed response of the call in flight."""

    turn: ModelTurn | None = None
    exchange: Exchange | None = None


_slot: ContextVar[ResponseSlot | None] = ContextVar("ampbench_response_slot", default=None)


@contextlib.contextmanager
def capture() -> Iterator[ResponseSlot]:
    """Collect the parsed turn of the HTTP exchange made inside this block."""
    slot = ResponseSlot()
    token = _slot.set(slot)
    try:
        yield slot
    finally:
        _slot.reset(token)


def decode_body(raw: bytes, headers: httpx2.Headers) -> bytes:
    """Undo Content-Encoding (gzip, br, ...) the way httpx2 would for the client."""
    if not raw or "content-encoding" not in headers:
        return raw
    return httpx2.Response(200, headers=headers, content=raw).read()


def exchange_from_turn(
    ctx: context.ExchangeContext,
    *,
    endpoint: str,
    method: str,
    host: str,
    status: int | None,
    streamed: bool,
    latency_ms: float,
    ttfb_ms: float | None = None,
    request_bytes: int,
    response_bytes: int,
    turn: ModelTurn | None,
    error: str | None,
    headers: dict[str, str],
    simulated: bool,
) -> Exchange:
    """Build a ledger row; shared by the live transport, the proxy and ingest."""
    row = Exchange(
        run_id=ctx.run_id,
        task_id=ctx.task_id,
        model=ctx.model,
        repeat=ctx.repeat,
        step=ctx.step,
        role=ctx.role,
        attempt=ctx.attempt,
        session=ctx.session,
        user_turn=ctx.user_turn,
        endpoint=endpoint,
        method=method,
        host=host,
        status=status,
        streamed=streamed,
        latency_ms=round(latency_ms, 3),
        ttfb_ms=round(ttfb_ms, 3) if ttfb_ms is not None else None,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        simulated=simulated,
        headers=headers,
        error=error,
    )
    if turn is not None:
        if turn.usage is not None:
            u = turn.usage
            row.input_tokens = u.input_tokens
            row.output_tokens = u.output_tokens
            row.cache_read_input_tokens = u.cache_read_input_tokens
            row.cache_creation_input_tokens = u.cache_creation_input_tokens
            row.reasoning_tokens = u.reasoning_tokens
            row.usage = u.raw
        row.tool_calls = len(turn.tool_calls)
        row.tool_names = [c.name for c in turn.tool_calls]
        row.visible_reasoning_chars = turn.visible_reasoning_chars
        row.stop_reason = turn.stop_reason
        row.response_model = turn.model
        if turn.error and not row.error:
            row.error = turn.error
    return row


# Failures raised before a single byte of the request was written: the provider never saw
# the attempt. Anything later (read timeouts, dropped connections, cut streams) may have
# reached it and stays an exchange.
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.UnsupportedProtocol)


def reached_provider(exc: BaseException) -> bool:
    """Whether an attempt that ended in `exc` may have reached the provider."""
    return not isinstance(exc, _NOT_SENT)


# httpcore trace events (after their `http11.`/`http2.` prefix) -> the moment each one marks.
_WIRE_MARKS = {
    "send_request_headers.started": "sent",
    "receive_response_headers.complete": "first",
    "receive_response_body.complete": "last",
    "receive_response_body.failed": "last",
}


class WireClock:
    """Times one attempt on the wire, from httpcore's trace events.

    Timing around the transport call would include waiting for a pooled
    connection and for ampbench's own event loop; these marks are taken where
    httpcore writes the request's first byte and reads the response's first
    and last, so `latency_ms` and `ttfb_ms` are what the provider's side of
    the wire would see. Where no httpcore sits below (a cassette), there are
    no marks and the clock falls back to the time spent below the ledger.
    """

    def __init__(self, request: httpx2.Request) -> None:
        self.started = time.perf_counter()
        self.marks: dict[str, float] = {}
        outer = request.extensions.get("trace")

        async def trace(name: str, info: dict[str, Any]) -> None:
            mark = _WIRE_MARKS.get(name.partition(".")[2])
            if mark is not None and mark not in self.marks:
                self.marks[mark] = time.perf_counter()
            if outer is not None:
                await outer(name, info)

        request.extensions["trace"] = trace

    def latency_ms(self) -> float:
        """First byte written to last byte read (or to now, for an attempt still failing)."""
        end = self.marks.get("last") or time.perf_counter()
        return (end - self.marks.get("sent", self.started)) * 1000

    def ttfb_ms(self) -> float | None:
        if "sent" in self.marks and "first" in self.marks:
            return (self.marks["first"] - self.marks["sent"]) * 1000
        return None


class _TeeStream(httpx2.AsyncByteStream):
    """Passes the body through unchanged and reports it once the client is done."""

    def __init__(self, inner: httpx2.AsyncByteStream, on_done: Any) -> None:
        self._inner = inner
        self._on_done = on_done
        self._chunks: list[bytes] = []
        self._error: str | None = None
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._chunks.append(chunk)
                yield chunk
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}".strip()
            self._finish()
            raise

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._on_done(b"".join(self._chunks), self._error)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._finish()


class CountingTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that records one ledger row per attempt, then delegates."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, sink: LedgerSink) -> None:
        self.inner = inner
        self.sink = sink

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        ctx = context.current()
        slot = _slot.get()
        add_secret = getattr(self.sink, "add_secret", None)
        if add_secret is not None:
            for name in _CREDENTIAL_HEADERS:
                if name in request.headers:
                    add_secret(request.headers[name])
        body = await request.aread()
        clock = WireClock(request)
        endpoint = request.url.path
        common = {
            "endpoint": endpoint,
            "method": request.method,
            "host": request.url.host,
            "request_bytes": len(body),
        }
        try:
            response = await self.inner.handle_async_request(request)
        except AmpbenchError:
            # The harness's own layers (a cassette miss) sent nothing to any provider.
            raise
        except Exception as exc:
            row = exchange_from_turn(
                ctx,
                **common,
                status=None,
                streamed=False,
                latency_ms=clock.latency_ms(),
                ttfb_ms=clock.ttfb_ms(),
                response_bytes=0,
                turn=None,
                error=f"{type(exc).__name__}: {exc}".strip(),
                headers={},
                simulated=False,
            )
            row.sent = reached_provider(exc)
            self._emit(row, None, slot)
            raise

        headers = response.headers
        content_type = headers.get("content-type", "")
        streamed = "text/event-stream" in content_type

        def done(raw: bytes, stream_error: str | None) -> None:
            turn = None
            decoded = b""
            with contextlib.suppress(Exception):
                decoded = decode_body(raw, headers)
            if decoded:
                turn = parse_exchange(
                    endpoint, decoded, content_type=content_type, status=response.status_code
                )
            row = exchange_from_turn(
                ctx,
                **common,
                status=response.status_code,
                streamed=streamed,
                latency_ms=clock.latency_ms(),
                ttfb_ms=clock.ttfb_ms(),
                response_bytes=len(raw),
                turn=turn,
                error=stream_error,
                headers={k: headers[k] for k in _KEPT_HEADERS if k in headers},
                simulated=headers.get(SIMULATED_HEADER) == "1",
            )
            self._emit(row, turn, slot)

        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(
            status_code=response.status_code,
            headers=headers,
            stream=_TeeStream(response.stream, done),
            extensions=response.extensions,
            request=request,
        )

    def _emit(self, row: Exchange, turn: ModelTurn | None, slot: ResponseSlot | None) -> None:
        if slot is not None:
            slot.turn = turn
            slot.exchange = row
        self.sink.record(row)

    async def aclose(self) -> None:
        await self.inner.aclose()
