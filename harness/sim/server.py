"""The simulator's HTTP server: real HTTP/1.1 on loopback, standard library only.

Every request on an API path is counted the moment it arrives, before any
fault is decided, so `stats()` is the ground truth the ledger is held
against: dropped connections and error statuses included. `/_sim/stats` and
`/_sim/reset` are control paths and are not counted.

JSON responses carry a Content-Length; streams use chunked transfer
encoding, one chunk per SSE frame, so a client sees events as they are
written and a dropped stream looks like what it is (an incomplete chunked
body).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from harness.sim.faults import Fault, FaultKind, FaultPlan, parse_kinds
from harness.sim.profiles import PROFILES
from harness.sim.view import canonical_json, count_tokens, digest, make_id
from harness.sim.wire import ErrorKind, RenderContext, Wire, WireError, dumps
from harness.sim.wire_anthropic import AnthropicWire
from harness.sim.wire_openai import ChatWire
from harness.sim.wire_responses import ResponsesWire

__all__ = ["REPEAT_HEADER", "SIMULATED_HEADER", "SimServer", "shared_server"]

SIMULATED_HEADER = "x-ampbench-simulated"
REPEAT_HEADER = "x-ampbench-repeat"

_ANTHROPIC = AnthropicWire()
_GENERATION: dict[str, Wire] = {
    "/v1/messages": _ANTHROPIC,
    "/v1/chat/completions": ChatWire(),
    "/v1/responses": ResponsesWire(),
}
_COUNT_TOKENS = "/v1/messages/count_tokens"
_JSON = "application/json"
_SSE = "text/event-stream; charset=utf-8"
# Fixed so that model listings are byte-identical between runs.
_MODELS_CREATED = 1_750_000_000
# Faults that answer with an error status: the error kind and its message.
_FAULT_ERRORS: dict[str, tuple[ErrorKind, str]] = {
    "rate_limit": (
        "rate_limit",
        "Rate limit exceeded (simulated by ampbench). Please retry after a short wait.",
    ),
    "server_error": ("server_error", "Internal server error (simulated by ampbench)."),
    "overloaded": ("overloaded", "Overloaded (simulated by ampbench)."),
}
# Idle keep-alive connections are closed after this long, so threads do not pile up.
_IDLE_TIMEOUT_S = 120


class _Stats:
    """Thread-safe request counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self) -> None:
        self.requests = 0
        self.by_path: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.delay_s = 0.0
        # Requests being answered now, and the most there ever were at once.
        self.in_flight = 0
        self.peak_in_flight = 0
        # How often each (body, repeat) was seen: the attempt number of the next one.
        self.seen: Counter[bytes] = Counter()

    def arrive(self, path: str, model: str | None, body_key: bytes) -> int:
        """Count one request; return how many times this exact body was seen before."""
        with self._lock:
            self.requests += 1
            self.by_path[path] += 1
            if model is not None:
                self.by_model[model] += 1
            before = self.seen[body_key]
            self.seen[body_key] += 1
            return before

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def fault(self, kind: FaultKind, delay_s: float = 0.0) -> None:
        """A fault that changes no status (a slow response, delayed by `delay_s`)."""
        with self._lock:
            self.faults[kind] += 1
            self.delay_s += delay_s

    def outcome(self, status: str, fault: FaultKind | None = None) -> None:
        with self._lock:
            self.by_status[status] += 1
            if fault is not None:
                self.faults[fault] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(
                {
                    "requests": self.requests,
                    "by_path": dict(self.by_path),
                    "by_status": dict(self.by_status),
                    "by_model": dict(self.by_model),
                    "faults": dict(self.faults),
                    # The ground truth for recorded latencies: what the server slept on purpose.
                    "injected_delay_ms": round(self.delay_s * 1000, 3),
                    # For clients that promise a concurrency limit (a cluster's, say).
                    "peak_in_flight": self.peak_in_flight,
                }
            )

    def reset(self) -> None:
        with self._lock:
            in_flight = self.in_flight
            self._reset_locked()
            # A gauge, not a count: requests still being answered stay in flight.
            self.in_flight = self.peak_in_flight = in_flight


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The OS's default backlog is too small for a burst of concurrent clients.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: SimServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sim = sim
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing its keep-alive connection or abandoning a stream is normal traffic.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and each SSE frame are written separately; with Nagle on, a frame can
    # wait ~40 ms for the client's delayed ACK, which would distort every latency.
    disable_nagle_algorithm = True
    server_version = "ampbench-sim"
    sys_version = ""
    timeout = _IDLE_TIMEOUT_S
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the CLI prints its own request lines through `on_request`

    def do_GET(self) -> None:
        self.server.sim._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.sim._handle(self, "POST")

    def do_DELETE(self) -> None:
        self.server.sim._handle(self, "DELETE")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        data = dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", _JSON)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.answered()
        self.wfile.write(data)

    def answered(self) -> None:
        """The request is answered: called before its last byte goes out (so a client that has
        the whole response never finds it still counted in flight), once."""
        done, self.on_answered = getattr(self, "on_answered", None), None
        if done is not None:
            done()

    def send_stream(
        self, frames: Iterable[bytes], headers: dict[str, str], *, drop_after: int | None = None
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", _SSE)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        for index, frame in enumerate(frames):
            if drop_after is not None and index >= drop_after:
                self.drop()
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.answered()
        self.wfile.write(b"0\r\n\r\n")

    def drop(self) -> None:
        """Close the connection without another byte: no response, or an unfinished one."""
        self.close_connection = True
        self.answered()
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


class SimServer:
    """A simulated LLM provider on loopback, speaking the Anthropic and OpenAI wire formats.

    Anthropic SDK: `base_url=server.url`; OpenAI SDK: `base_url=server.url + "/v1"`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: float = 0.0,
        seed: int = 0,
        fault_kinds: Iterable[str] | str | None = None,
        *,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        kinds = (
            parse_kinds(fault_kinds)
            if isinstance(fault_kinds, str) or fault_kinds is None
            else parse_kinds(",".join(fault_kinds))
        )
        self.plan = FaultPlan(rate=float(faults), seed=int(seed), kinds=kinds)
        self.host = host
        self.port = port
        self.on_request = on_request
        self._stats = _Stats()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> SimServer:
        """Bind and serve in a background thread. Raises OSError when the port is taken."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"ampbench-sim:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def stats(self) -> dict[str, Any]:
        """Requests received so far: `requests`, `by_path`, `by_status`, `by_model`, `faults`."""
        return self._stats.snapshot()

    def reset(self) -> None:
        """Zero the counters (and the per-body attempt memory)."""
        self._stats.reset()

    # --- request handling ----------------------------------------------------------------

    def _handle(self, h: _Handler, method: str) -> None:
        path = urlsplit(h.path).path.rstrip("/") or "/"
        raw = h.read_body()
        if path.startswith("/_sim/"):
            self._control(h, method, path)
            return
        self._stats.enter()
        h.on_answered = self._stats.leave
        try:
            self._answer(h, method, path, raw)
        finally:
            h.answered()

    def _answer(self, h: _Handler, method: str, path: str, raw: bytes) -> None:
        try:
            body: Any = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
        repeat = _int_header(h, REPEAT_HEADER) or 0
        canonical = canonical_json(body).encode() if body is not None else raw
        body_key = digest(path.encode(), canonical, str(repeat).encode())
        seen_before = self._stats.arrive(path, model, body_key)
        if self.on_request is not None:
            self.on_request(f"{method} {path} {model or ''}".rstrip())

        # The simulator counts attempts itself: a client that retries above its SDK restarts
        # the SDK's retry header, and trusting it would replay the same fault forever.
        attempt = seen_before
        request_id = "req_" + make_id(digest(body_key, str(attempt).encode()), "request-id", 24)
        anthropic_style = path.startswith("/v1/messages") or "anthropic-version" in h.headers
        headers = {SIMULATED_HEADER: "1", "request-id": request_id}
        if not anthropic_style:
            headers["x-request-id"] = request_id

        wire = _GENERATION.get(path) if method == "POST" else None
        if wire is not None:
            self._generate(h, wire, body, raw, body_key, attempt, repeat, headers)
        elif method == "POST" and path == _COUNT_TOKENS:
            self._count_tokens(h, body, headers)
        elif method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
            self._models(h, path, anthropic_style, headers)
        else:
            fallback: Wire = _ANTHROPIC if anthropic_style else _GENERATION["/v1/chat/completions"]
            message = "Not Found" if anthropic_style else f"Invalid URL ({method} {path})"
            self._error(h, fallback, "not_found", message, headers, param=None)

    def _generate(
        self,
        h: _Handler,
        wire: Wire,
        body: Any,
        raw: bytes,
        body_key: bytes,
        attempt: int,
        repeat: int,
        headers: dict[str, str],
    ) -> None:
        streamed = isinstance(body, dict) and body.get("stream") is True
        fault = self.plan.decide(body_key, attempt=attempt, streamed=streamed)
        if fault is not None and self._inject(h, wire, fault, headers):
            return
        if body is None:
            message = "Invalid JSON in the request body." if raw else "The request body is empty."
            self._error(h, wire, "invalid_request", message, headers, param=None)
            return
        try:
            view = wire.parse(body)
        except WireError as exc:
            self._error(h, wire, exc.kind, exc.message, headers, param=exc.param)
            return
        view.repeat = repeat
        profile = PROFILES.get(view.model)
        if profile is None:
            self._error(h, wire, "not_found", wire.not_found_message(view.model), headers, param="model")
            return
        try:
            reply = profile.respond(view, view.behaviour_key())
        except Exception as exc:  # a profile bug must look like a provider 500, not kill the thread
            print(f"ampbench-sim: profile {view.model!r} failed: {exc!r}", file=sys.stderr)
            self._error(
                h, wire, "server_error", f"simulated profile error: {type(exc).__name__}", headers, param=None
            )
            return
        ctx = RenderContext(key=body_key, tokens=count_tokens(view, reply))
        if view.stream:
            frames = wire.render_stream(view, reply, ctx)
            dropping = fault is not None and fault.kind == "stream_drop"
            self._stats.outcome("200", "stream_drop" if dropping else None)
            # Cut between frames, past the first event, well before the last.
            h.send_stream(frames, headers, drop_after=max(1, len(frames) // 2) if dropping else None)
        else:
            self._stats.outcome("200")
            h.send_json(200, wire.render(view, reply, ctx), headers)

    def _inject(self, h: _Handler, wire: Wire, fault: Fault, headers: dict[str, str]) -> bool:
        """Apply a fault; True when the request is finished (an error or a drop)."""
        if fault.kind == "slow":
            self._stats.fault("slow", fault.delay_s)
            time.sleep(fault.delay_s)
            return False
        if fault.kind == "stream_drop":
            return False  # decided here, carried out halfway through the stream
        if fault.kind == "drop":
            self._stats.outcome("dropped", "drop")
            h.drop()
            return True
        kind, message = _FAULT_ERRORS[fault.kind]
        extra = {"x-should-retry": "true"}
        if kind == "rate_limit":
            extra.update({"retry-after": "1", "retry-after-ms": "20"})
        self._error(h, wire, kind, message, {**headers, **extra}, param=None, fault=fault.kind)
        return True

    def _error(
        self,
        h: _Handler,
        wire: Wire,
        kind: ErrorKind,
        message: str,
        headers: dict[str, str],
        *,
        param: str | None,
        fault: FaultKind | None = None,
    ) -> None:
        status, payload = wire.error(kind, message, param=param, request_id=headers.get("request-id", ""))
        self._stats.outcome(str(status), fault)
        h.send_json(status, payload, headers)

    def _count_tokens(self, h: _Handler, body: Any, headers: dict[str, str]) -> None:
        try:
            view = _ANTHROPIC.parse(body, count_only=True)
        except WireError as exc:
            self._error(h, _ANTHROPIC, exc.kind, exc.message, headers, param=exc.param)
            return
        if view.model not in PROFILES:
            self._error(
                h, _ANTHROPIC, "not_found", _ANTHROPIC.not_found_message(view.model), headers, param="model"
            )
            return
        self._stats.outcome("200")
        h.send_json(200, {"input_tokens": count_tokens(view).input}, headers)

    def _models(self, h: _Handler, path: str, anthropic_style: bool, headers: dict[str, str]) -> None:
        names = sorted(PROFILES)
        wanted = path.removeprefix("/v1/models").strip("/")
        if anthropic_style:
            entries = [
                {
                    "type": "model",
                    "id": n,
                    "display_name": f"{n} (simulated)",
                    "created_at": "2025-06-15T00:00:00Z",
                }
                for n in names
            ]
        else:
            entries = [
                {"id": n, "object": "model", "created": _MODELS_CREATED, "owned_by": "ampbench-sim"}
                for n in names
            ]
        if wanted:
            found = next((e for e in entries if e["id"] == wanted), None)
            if found is None:
                wire: Wire = _ANTHROPIC if anthropic_style else _GENERATION["/v1/chat/completions"]
                self._error(h, wire, "not_found", wire.not_found_message(wanted), headers, param="model")
                return
            self._stats.outcome("200")
            h.send_json(200, found, headers)
            return
        if anthropic_style:
            listing: dict[str, Any] = {
                "data": entries,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        else:
            listing = {"object": "list", "data": entries}
        self._stats.outcome("200")
        h.send_json(200, listing, headers)

    def _control(self, h: _Handler, method: str, path: str) -> None:
        headers = {SIMULATED_HEADER: "1", "request-id": "req_sim_control"}
        if method == "GET" and path == "/_sim/stats":
            h.send_json(200, self.stats(), headers)
        elif method == "POST" and path == "/_sim/reset":
            self.reset()
            h.send_json(200, {"ok": True}, headers)
        elif method == "GET" and path == "/_sim/health":
            h.send_json(
                200, {"ok": True, "profiles": sorted(PROFILES), "fault_rate": self.plan.rate}, headers
            )
        else:
            h.send_json(
                404,
                {"error": f"unknown control path {path} (available: GET /_sim/stats, POST /_sim/reset)"},
                headers,
            )


def _int_header(h: _Handler, name: str) -> int | None:
    value = h.headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


_shared: SimServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> SimServer:
    """The process-wide simulator (no faults), started on a free loopback port at first use."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.running:
            _shared = SimServer().start()
            atexit.register(_shared.stop)
        return _shared
