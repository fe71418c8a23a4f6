"""The client side of the proxy: one HTTP/1.1 connection on asyncio streams, parsed and framed by h11.

h11 (python-hyper's HTTP/1.1 state machine, the one under httpcore and
uvicorn) reads every request and frames every response; this module only
moves bytes between it and the socket. It gives keep-alive, Content-Length
and chunked request bodies, `Expect: 100-continue`, HEAD, and response
bodies framed either by the upstream's Content-Length or as chunks written as
they arrive, so an SSE stream reaches the client event by event. A request
h11 cannot read is answered with one line and the connection closed. Bodies
are never looked into here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
MAX_HEAD_BYTES = 1 << 20
"""Largest request head (request line and headers) read; larger ones get a 431."""
READ_SIZE = 1 << 16
# After an answer that closes the connection, unread request bytes would make the kernel reset it
# (and the client could lose the answer): read and drop them for this long first.
_LINGER_S = 1.0
_LINGER_BYTES = 1 << 20


class BadRequest(Exception):
    """A request h11 cannot read; answered with `status` and a one-line message, then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client closed the connection, or writing to it failed."""


@dataclass
class Request:
    method: str
    target: str
    """The request target as sent (h11 guarantees visible ASCII); checked by `upstream.origin_form`."""
    headers: list[tuple[str, str]]
    body: bytes = b""
    lower: dict[str, str] = field(default_factory=dict)
    """Header names lower-cased -> the first value: for lookups."""
    path: str = ""
    query: str = ""

    def forwardable_headers(self, drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        """Headers for the upstream: no hop-by-hop ones, no Host or framing (httpx2 sets its own)."""
        named = {t.strip().lower() for t in self.lower.get("connection", "").split(",") if t.strip()}
        skip = HOP_BY_HOP | named | drop | {"host", "content-length", "expect"}
        return [(k, v) for k, v in self.headers if k.lower() not in skip]


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class ClientConnection:
    """One client connection: requests in, responses out, in order (h11 allows one at a time)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._eof = False

    @property
    def client_gone(self) -> bool:
        # HTTP clients never half-close: EOF means the client gave up (its own timeout, Ctrl-C).
        return self._eof or self.reader.at_eof()

    @property
    def can_answer(self) -> bool:
        """Whether no response has begun yet, so that one can still be sent."""
        return self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE)

    async def _event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof:
                    raise ClientGone("in the middle of a request") from None
                if exc.error_status_hint == 431:
                    raise BadRequest(431, f"request head larger than {MAX_HEAD_BYTES} bytes") from None
                # h11 quotes the offending bytes (a header line may hold a key): its words only.
                words = str(exc).split(": bytearray(", 1)[0]
                raise BadRequest(exc.error_status_hint, f"malformed request: {one_line(words)}") from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError) as exc:
                raise ClientGone(str(exc)) from None
            self._eof = self._eof or not data
            self._h11.receive_data(data)

    async def read_head(self) -> Request | None:
        """The next request's line and headers; None when the client closed the connection between requests."""
        event = await self._event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # h11 yields nothing else before a request
            raise BadRequest(400, f"malformed request: unexpected {type(event).__name__}")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()]
        request = Request(event.method.decode("ascii").upper(), event.target.decode("ascii"), headers)
        for name, value in headers:
            request.lower.setdefault(name.lower(), value)
        return request

    async def read_body(self) -> bytes:
        """The body of the request whose head was just read (Content-Length or chunked; trailers dropped)."""
        if self._h11.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
        parts: list[bytes] = []
        while True:
            event = await self._event()
            if isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                raise ClientGone("in the middle of a request body")

    # --- responses -----------------------------------------------------------------------------

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            self._h11.send_failed()
            raise ClientGone(str(exc)) from None

    async def send_head(self, status: int, reason_phrase: str, headers: list[tuple[bytes, bytes]]) -> None:
        """A response head. Without Content-Length, h11 frames the body as chunks (close-delimited for
        an HTTP/1.0 client), and adds `Connection: close` when the connection cannot be kept."""
        phrase = reason_phrase.encode("latin-1", "replace") if reason_phrase else reason(status)
        await self._send(h11.Response(status_code=status, headers=headers, reason=phrase))

    async def send_data(self, data: bytes) -> None:
        """One piece of the body, written at once: a chunk of its own when the body is chunked."""
        await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def answer(
        self, status: int, headers: list[tuple[str, str]], body: bytes, *, close: bool = False
    ) -> bool:
        """A whole response of the proxy's own; False when the client is gone."""
        head = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        head.append((b"Content-Length", str(len(body)).encode()))
        if close:
            head.append((b"Connection", b"close"))
        try:
            await self.send_head(status, "", head)
            if body:
                await self.send_data(body)
            await self.end()
        except (ClientGone, h11.LocalProtocolError):
            return False
        return True

    def next_cycle(self) -> bool:
        """Ready the connection for its next request; False when it must close (as h11 decides)."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            return True
        return False

    async def close(self, *, linger: bool = False) -> None:
        """Close the connection; with `linger`, first let the client read what was written."""
        writer = self.writer
        if linger and not self._eof and not writer.is_closing():
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()
                await asyncio.wait_for(self._drain_input(), _LINGER_S)
        with contextlib.suppress(Exception):
            writer.close()

    async def _drain_input(self) -> None:
        dropped = 0
        while dropped < _LINGER_BYTES:
            data = await self.reader.read(READ_SIZE)
            if not data:
                return
            dropped += len(data)
