"""The server half of HTTP/1.1 on asyncio streams: read a request, write a response head and body.

Just enough for API clients (SDKs, curl, agents): keep-alive, Content-Length
and chunked request bodies, `Expect: 100-continue`, and response bodies
framed either by the upstream's Content-Length or as chunks written as they
arrive, so an SSE stream reaches the client event by event. The upstream
side is httpx2; this module never touches a body's content.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus

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


class BadRequest(Exception):
    """A request this server cannot read; answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    lower: dict[str, str] = field(default_factory=dict)
    """Header names lower-cased -> the first value: for lookups."""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.lower.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def forwardable_headers(self, drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        """Headers for the upstream: no hop-by-hop ones, no Host or framing (httpx2 sets its own)."""
        named = {t.strip().lower() for t in self.lower.get("connection", "").split(",") if t.strip()}
        skip = HOP_BY_HOP | named | drop | {"host", "content-length", "expect"}
        return [(k, v) for k, v in self.headers if k.lower() not in skip]


async def read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
    """The next request on a connection; None when the client closed it between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest(400, "the connection closed in the middle of a request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, f"request head larger than {MAX_HEAD_BYTES} bytes") from None
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise BadRequest(400, f"malformed request line {lines[0][:80]!r}") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(505, f"unsupported protocol {version[:20]!r}")
    if target.startswith(("http://", "https://")):
        # Absolute form (a client configured with us as a forward proxy): keep the path.
        rest = target.split("://", 1)[1]
        target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip()))
    request = Request(method.upper(), target, version, headers)
    for name, value in headers:
        request.lower.setdefault(name.lower(), value)
    request.body = await _read_body(request, reader, writer)
    return request


async def _read_body(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    chunked = "chunked" in request.lower.get("transfer-encoding", "").lower()
    length_text = request.lower.get("content-length")
    if not chunked and not length_text:
        return b""
    if request.lower.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    try:
        if not chunked:
            try:
                length = int(length_text or "0")
            except ValueError:
                raise BadRequest(400, f"bad Content-Length {length_text!r}") from None
            if length < 0:
                raise BadRequest(400, f"bad Content-Length {length_text!r}")
            return await reader.readexactly(length)
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise BadRequest(400, "bad chunk size in the request body") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers: dropped, like every other hop-by-hop detail
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "the connection closed in the middle of a request body") from None


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def response_head(status: int, reason_phrase: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason_phrase or reason(status)}".rstrip()]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; the caller never passes an empty one (that ends the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status >= 200 and status not in (204, 304)
