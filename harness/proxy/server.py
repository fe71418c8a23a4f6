"""The counting reverse proxy: forwards every request, streams every response back, writes one row each.

    client (SDK, agent) --HTTP/1.1--> CountingProxy --httpx2--> upstream (provider, simulator)
                                           |                     '-> CassetteTransport (record / replay)
                                           '-> exchanges.jsonl as each exchange completes

The server side is asyncio streams with HTTP/1.1 parsed and framed by h11
(`harness.proxy.connection`); the upstream side is `httpx2.AsyncClient` in
streaming mode. Each body chunk is written to the client as soon as httpx2
hands it over (`aiter_raw`: undecoded, so Content-Encoding passes through
untouched and the client decodes), and a copy is kept to parse once the
exchange is over, with the same parsers as the live ledger.

Faults reach the client as they would without the proxy: error statuses and
their headers pass through, an upstream that drops the connection makes the
proxy drop the client's, and a stream cut midway is cut at the client too
(no terminating chunk). Only an unreachable upstream (502) and an upstream
timeout (504) get an answer from the proxy itself, a JSON error in the
provider's shape; those rows have `status` null (no response came from the
provider) and `proxy_status` set. An attempt that provably never reached the
upstream (`harness.ledger.reached_provider`: connection refused, DNS, connect
timeout) keeps its row with `sent` false, and is no exchange, as in live runs.

Only origin-form requests (`/path?query`) are forwarded, always to the
configured upstream (`harness.proxy.upstream`). Any other request target
(absolute-form, CONNECT's authority-form, `*`, `@host/x`, `//host/x`, ...) and
any request h11 cannot read is refused: a 400 (431 for a head too large) with
a one-line reason, the connection closed, nothing sent upstream, no row. The
manifest counts them (`refused_requests`, with up to five `refused_examples`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h11
import httpx2

from harness import context
from harness.cassettes import CassetteStore, CassetteTransport
from harness.context import ExchangeContext
from harness.errors import CassetteMiss, UserError
from harness.ingest._common import Origin, tool_row
from harness.ledger import _KEPT_HEADERS, SIMULATED_HEADER, decode_body, exchange_from_turn, reached_provider
from harness.proxy.attribution import (
    DEFAULT_SESSION_HEADERS,
    SESSION_HEADER,
    Attribution,
    Attributor,
    api_key,
)
from harness.proxy.connection import (
    HOP_BY_HOP,
    BadRequest,
    ClientConnection,
    ClientGone,
    Request,
    one_line,
)
from harness.proxy.sessions import (
    EXTRA_TASK_COLUMNS,
    SOURCE,
    SUITE,
    fold_unattributed,
    session_models,
    task_rows,
)
from harness.proxy.upstream import Refused, Route, Upstream, display, is_anthropic, origin_form, resolve
from harness.records import is_sent
from harness.redact import Scrubber
from harness.results import EXCHANGES, TOOL_CALLS, RunWriter, git_sha, read_run, versions
from harness.wire import parse_exchange

CASSETTE_MODES = ("off", "record", "replay")
_log = logging.getLogger(__name__)
CONTROL_PREFIX = "/_ampbench/"
# The simulator's own control paths (/_sim/stats, ...) are passed through but are no API traffic.
SIM_CONTROL_PREFIX = "/_sim/"
# With --cassettes replay there is no upstream: URLs only key the recordings.
REPLAY_ROUTE = Route("http://replay.invalid")
REFUSED_EXAMPLES = 5
LIMITS = [
    "Tool calls are the calls models requested in responses that reached the client; "
    "the proxy does not see whether or how the client ran them.",
    "Sessions come from x-ampbench-session (or a client's own session header, such as Claude Code's "
    "x-claude-code-session-id); without one, from a hash of the API key and the first user message, "
    "so side requests of an agent that start another conversation form sessions of their own.",
    "An attempt the proxy answered itself (upstream unreachable: 502, upstream timeout: 504) has "
    "status null and proxy_status set: no response came from the provider. One that provably never "
    "reached it (connection refused, DNS failure, connect timeout) has sent false and is no exchange.",
    "main_exchanges / side_exchanges / non_model_exchanges split a session's exchanges: generation "
    "requests of the main model's main conversation (its conversation with the most model calls), "
    "other generation requests (other models, other conversations such as titles or summaries), and "
    "requests that generate nothing (probes, model listings, count_tokens). A conversation is keyed by "
    "its first user message: a request that rewrites it (a compacted history) starts another one.",
    "Requests the proxy refused (a request target other than /path?query, such as a forward-proxy or "
    "CONNECT request, or a malformed request) were answered 400 by the proxy and sent nowhere: they "
    "are no exchanges; refused_requests in the manifest counts them.",
]


@dataclass
class ProxyConfig:
    """Everything that defines a proxy run; stored in manifest.json."""

    upstream: str | None = None
    """`sim` (an in-process simulator), `auto` (the providers, or $ANTHROPIC_BASE_URL / $OPENAI_BASE_URL), or a URL."""
    port: int = 0
    """Loopback port to listen on; 0 picks a free one."""
    out: Path | None = None
    """Run directory; default `results/<run_id>`."""
    run_id: str | None = None
    """Default `<kind>-<UTC time>-<random>`."""
    kind: str = "proxy"
    """`proxy` or `wrap`: the run id's prefix and the manifest's `kind`."""
    cassettes: str = "off"
    """off, record (keep what passes through) or replay (answer from recordings, no upstream)."""
    cassette_dir: Path = Path("cassettes")
    """Root folder of cassettes: `<dir>/proxy/<model>/<conversation>__r<repeat>.json`."""
    timeout_s: float = 600.0
    """Upstream read timeout; clients' own timeouts are usually shorter and fire first."""
    session_headers: tuple[str, ...] = DEFAULT_SESSION_HEADERS
    """Request headers that name a session, in order of precedence."""
    command: list[str] | None = None
    """The wrapped command, for the manifest."""
    env: Mapping[str, str] | None = None
    """Environment `auto` reads base URLs from; default os.environ."""
    on_exchange: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)
    """Called with each exchange row once it is written (from the proxy's thread)."""
    on_refused: Callable[[str], None] | None = field(default=None, repr=False)
    """Called with the one-line reason of each refused request (scrubbed; from the proxy's thread)."""

    def validate(self) -> None:
        if self.cassettes not in CASSETTE_MODES:
            raise UserError(
                f"unknown cassette mode {self.cassettes!r} (available: {', '.join(CASSETTE_MODES)})"
            )
        if self.cassettes == "replay" and self.upstream not in (None, "auto"):
            raise UserError("--cassettes replay answers from recordings with no upstream; drop --upstream")
        if self.cassettes != "replay" and not self.upstream:
            raise UserError("no upstream: pass --upstream sim, auto or a URL (or --cassettes replay)")
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port must be between 0 and 65535, got {self.port}")
        if self.timeout_s <= 0:
            raise UserError(f"--timeout must be positive, got {self.timeout_s}")
        if self.out is not None and self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise UserError(f"{self.out} already exists and is not empty; choose another --out")


def error_body(anthropic_shape: bool, kind: str, message: str, *, client_error: bool = False) -> bytes:
    """A JSON error as the provider would word it, so SDKs raise their usual exception."""
    if anthropic_shape:
        kind_a = "invalid_request_error" if client_error else "api_error"
        payload: dict[str, Any] = {"type": "error", "error": {"type": kind_a, "message": message}}
    else:
        kind_o = "invalid_request_error" if client_error else "server_error"
        payload = {"error": {"message": message, "type": kind_o, "param": None, "code": kind}}
    return json.dumps(payload).encode()


class CountingProxy:
    """One proxy run: a loopback server, an upstream client, a run directory. Use from one event loop."""

    def __init__(self, config: ProxyConfig) -> None:
        config.validate()
        self.config = config
        self.run_id = config.run_id or (
            f"{config.kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        )
        self.run_dir = Path(config.out) if config.out else Path("results") / self.run_id
        self.attributor = Attributor(config.session_headers)
        self.scrub = Scrubber()
        """Every key seen on the wire is added: none reaches the run's files, cassettes or log."""
        self.rows: list[dict[str, Any]] = []
        self.tool_rows: list[dict[str, Any]] = []
        self.cassette_misses: list[str] = []
        self.refused = 0
        """Requests answered 400 and sent nowhere (not origin-form, or malformed): no exchanges."""
        self.refused_examples: list[str] = []
        self.upstream: Upstream | None = None
        self.sim: Any = None
        self.port = config.port
        self._writer: RunWriter | None = None
        self._store: CassetteStore | None = None
        self._client: httpx2.AsyncClient | None = None
        self._server: asyncio.Server | None = None
        self._idle: dict[asyncio.Task[Any], ClientConnection] = {}
        self._busy: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._drop_headers = frozenset({SESSION_HEADER})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the simulator (for `sim`), bind the port, create the run directory, serve."""
        try:
            await self._start()
        except BaseException:
            await self._close_resources()
            raise

    async def _start(self) -> None:
        config = self.config
        if config.upstream == "sim":
            from harness.sim import SimServer

            self.sim = SimServer().start()
            self.upstream = dataclasses.replace(resolve(self.sim.url), label=f"sim ({self.sim.url})")
        elif config.upstream:
            self.upstream = resolve(config.upstream, config.env)
        # retries=0 (httpx2's default) matters: the proxy must never add attempts of its own.
        live = (
            None
            if config.cassettes == "replay"
            else httpx2.AsyncHTTPTransport(
                limits=httpx2.Limits(max_connections=None, max_keepalive_connections=64)
            )
        )
        transport: httpx2.AsyncBaseTransport
        if config.cassettes == "off":
            assert live is not None
            transport = live
        else:
            self._store = CassetteStore(
                root=Path(config.cassette_dir), suite=SUITE, mode=config.cassettes, scrubber=self.scrub
            )
            transport = CassetteTransport(self._store, live)
        timeout = httpx2.Timeout(connect=30.0, read=config.timeout_s, write=config.timeout_s, pool=None)
        self._client = httpx2.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
        try:
            self._server = await asyncio.start_server(
                self._on_connection, "127.0.0.1", config.port, start_serving=False
            )
        except OSError as exc:
            raise UserError(
                f"cannot listen on 127.0.0.1:{config.port} ({exc.strerror or exc}); "
                "pick another --port, or --port 0 for a free one"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        own = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        if (
            self.upstream is not None
            and {
                f"{r.host}:{httpx2.URL(r.base).port}" for r in (self.upstream.anthropic, self.upstream.openai)
            }
            & own
        ):
            raise UserError(
                f"the upstream {self.upstream.label} is this proxy itself; point --upstream elsewhere"
            )
        manifest = {
            "run_id": self.run_id,
            "kind": config.kind,
            "suite": SUITE,
            "versions": versions(),
            "git_sha": git_sha(),
            "upstream": self.upstream.label if self.upstream else "none (replay)",
            "listen": self.url,
            "cassette_mode": config.cassettes,
            "cassette_dir": str(config.cassette_dir) if config.cassettes != "off" else None,
            "session_headers": list(config.session_headers),
            "command": config.command,
            "limits": LIMITS,
        }
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.run_dir.exists():
            self.run_dir.rmdir()  # validated empty: RunWriter creates it afresh
        self._writer = RunWriter(
            self.run_dir, manifest, extra_task_columns=EXTRA_TASK_COLUMNS, scrubber=self.scrub
        )
        await self._server.start_serving()

    async def stop(self, grace_s: float = 10.0) -> Path:
        """Stop accepting, let exchanges in flight finish (up to `grace_s`), then write tasks.csv."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._idle.values()):
            conn.writer.close()
        if self._busy:
            _, pending = await asyncio.wait(set(self._busy), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        sim_stats = self.sim.stats() if self.sim is not None else None
        await self._close_resources()
        self._finish(sim_stats)
        return self.run_dir

    async def _close_resources(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.sim is not None:
            self.sim.stop()

    def _finish(self, sim_stats: dict[str, Any] | None) -> None:
        writer = self._writer
        if writer is None:
            return
        self._writer = None
        # Rows were written live with each request's own model; a session is one request of its main
        # model, and header-less requests without a conversation join the run's only session.
        changed = fold_unattributed(self.rows, self.tool_rows)
        models = session_models(self.rows)
        for row in (*self.rows, *self.tool_rows):
            model = models.get((row["task_id"], row["repeat"]), row["model"])
            changed = changed or model != row["model"]
            row["model"] = model
        for row in task_rows(self.rows, self.tool_rows, run_id=self.run_id, labels=self.attributor.labels):
            writer.task(row)
        writer.close()
        if changed:
            _rewrite(self.run_dir / EXCHANGES, self.rows)
            _rewrite(self.run_dir / TOOL_CALLS, self.tool_rows)
        if self._store is not None:
            self._store.save_all()
        writer.manifest.update(
            exchanges=sum(1 for r in self.rows if is_sent(r)),
            unsent_attempts=sum(1 for r in self.rows if not is_sent(r)),
            sessions=len(models),
            cassette_misses=len(self.cassette_misses),
            cassette_miss_examples=self.cassette_misses[:5],
            refused_requests=self.refused,
            refused_examples=self.refused_examples,
            sim_stats=sim_stats,
        )
        from harness.report import summary_markdown

        writer.finish("complete", summarize=lambda d: summary_markdown(read_run(d)))

    # --- connections ---------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = ClientConnection(reader, writer)
        linger = False
        try:
            while not self._stopping:
                self._idle[task] = conn
                try:
                    request = await conn.read_head()
                    if request is None:
                        break
                    try:
                        request.path, request.query = origin_form(request.target)
                        if request.method == "CONNECT":
                            raise Refused(
                                "request: this proxy opens no tunnels; only /path?query is forwarded"
                            )
                    except Refused as exc:
                        # Before its body: a refused request is read no further, and reaches nothing.
                        linger = await self._refuse(conn, 400, f"{request.method} {exc}", request)
                        break
                    request.body = await conn.read_body()
                except BadRequest as exc:
                    linger = await self._refuse(conn, exc.status, str(exc))
                    break
                except ClientGone:
                    break
                finally:
                    self._idle.pop(task, None)
                self._busy.add(task)
                try:
                    keep = await self._handle(request, conn)
                finally:
                    self._busy.discard(task)
                if not keep or not conn.next_cycle():
                    break
        except Exception as exc:
            # A bug, not a client's fault: say so in one line rather than drop the connection silently.
            message = f"ampbench proxy: internal error ({type(exc).__name__}: {one_line(str(exc))})"
            _log.exception(self.scrub(message))
            if conn.can_answer:
                body = error_body(False, "proxy_error", self.scrub(message))
                with contextlib.suppress(Exception):
                    await conn.answer(500, [("Content-Type", "application/json")], body, close=True)
        finally:
            if linger:
                self._idle[task] = conn  # stop() ends the wait for the client to read the answer
            try:
                await conn.close(linger=linger)
            finally:
                self._idle.pop(task, None)

    async def _refuse(
        self, conn: ClientConnection, status: int, reason: str, request: Request | None = None
    ) -> bool:
        """Answer a request the proxy will not forward; count it. Never an exchange, never sent upstream."""
        if request is not None:
            self.scrub.add(api_key(request.lower))
        reason = self.scrub(one_line(reason))
        self.refused += 1
        if len(self.refused_examples) < REFUSED_EXAMPLES:
            self.refused_examples.append(reason)
        if self.config.on_refused is not None:
            self.config.on_refused(reason)
        anthropic_shape = request is not None and is_anthropic(request.target, request.lower)
        body = error_body(
            anthropic_shape, "request_refused", f"ampbench proxy: refused: {reason}", client_error=True
        )
        return await conn.answer(status, [("Content-Type", "application/json")], body, close=True)

    # --- one exchange --------------------------------------------------------------------------

    async def _handle(self, request: Request, conn: ClientConnection) -> bool:
        """Forward one request and stream its response back; False when the connection must close."""
        if request.path.startswith(CONTROL_PREFIX):
            return await self._control(request, conn)
        assert self._client is not None
        lower = request.lower
        counted = not request.path.startswith(SIM_CONTROL_PREFIX)
        started_wall = time.time()
        started = time.perf_counter()
        attribution = (
            self.attributor.begin(request.method, request.path, lower, request.body) if counted else None
        )
        key = api_key(lower)
        self.scrub.add(key)
        route = self.upstream.route(request.path, lower) if self.upstream is not None else None
        # From the upstream's scheme, host and port and the origin-form target: never another host.
        url = (route or REPLAY_ROUTE).url_for(request.target)
        has_content = "content-length" in lower or "transfer-encoding" in lower
        upstream_request = httpx2.Request(
            request.method,
            url,
            headers=request.forwardable_headers(self._drop_headers),
            content=request.body if has_content else None,
        )
        anthropic_shape = is_anthropic(request.path, lower)
        host = route.host if route else "cassette"
        record = self._recorder(request, attribution, host, started, started_wall)

        bind = (
            context.bind(
                model=attribution.request_model or "",
                task_id=attribution.conversation,
                repeat=attribution.repeat,
            )
            if attribution is not None
            else contextlib.nullcontext()
        )
        try:
            with bind:
                response = await self._client.send(upstream_request, stream=True)
        except CassetteMiss as exc:
            # Nothing reached any provider: no exchange. The client learns why, and does not retry.
            message = f"ampbench proxy: {exc}"
            self.cassette_misses.append(message)
            if attribution is not None:
                self.attributor.finish(attribution, ok=False)
            return await self._answer(conn, 502, error_body(anthropic_shape, "cassette_miss", message), False)
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            text = f"upstream {display(str(url))} unreachable ({type(exc).__name__}: {exc})".strip()
            record(status=None, error=text, proxy_status=502, sent=reached_provider(exc))
            return await self._answer(
                conn, 502, error_body(anthropic_shape, "upstream_unreachable", text), True
            )
        except httpx2.TimeoutException as exc:
            text = f"upstream {display(str(url))} timed out ({type(exc).__name__})"
            record(status=None, error=text, proxy_status=504, sent=reached_provider(exc))
            return await self._answer(conn, 504, error_body(anthropic_shape, "upstream_timeout", text), True)
        except httpx2.TransportError as exc:
            # The upstream closed without a response: so does the proxy, and the client sees what it would.
            record(status=None, error=f"{type(exc).__name__}: {exc}".strip(), sent=reached_provider(exc))
            return False
        except asyncio.CancelledError:
            record(status=None, error="cancelled: the proxy stopped")
            raise
        return await self._relay(response, conn, record)

    def _recorder(
        self,
        request: Request,
        attribution: Attribution | None,
        host: str,
        started: float,
        started_wall: float,
    ) -> Callable[..., None]:
        """A function that writes this exchange's row once the outcome is known."""

        def record(
            *,
            status: int | None,
            error: str | None,
            raw: bytes = b"",
            headers: httpx2.Headers | None = None,
            ttfb: float | None = None,
            proxy_status: int | None = None,
            sent: bool = True,
        ) -> None:
            if attribution is None:
                return
            latency = (time.perf_counter() - started) * 1000
            content_type = headers.get("content-type", "") if headers is not None else ""
            decoded = b""
            if raw and headers is not None:
                with contextlib.suppress(Exception):
                    decoded = decode_body(raw, headers)
            turn = (
                parse_exchange(request.path, decoded, content_type=content_type, status=status)
                if decoded and status is not None
                else None
            )
            ctx = ExchangeContext(
                run_id=self.run_id,
                task_id=attribution.session_id,
                model=attribution.request_model or "",
                repeat=attribution.repeat,
                step=attribution.step,
                user_turn=attribution.user_turn,
                attempt=attribution.attempt,
            )
            row = exchange_from_turn(
                ctx,
                endpoint=request.path,
                method=request.method,
                host=host,
                status=status,
                streamed="text/event-stream" in content_type,
                latency_ms=latency,
                request_bytes=len(request.body),
                response_bytes=len(raw),
                turn=turn,
                error=error,
                headers={k: headers[k] for k in _KEPT_HEADERS if k in headers} if headers is not None else {},
                simulated=headers is not None and headers.get(SIMULATED_HEADER) == "1",
            ).to_dict()
            # An attempt that provably never reached the upstream (connection refused, DNS, connect
            # timeout) is kept as a row but is no exchange, as in the live ledger.
            row["sent"] = sent
            succeeded = sent and status is not None and 200 <= status < 300 and not row["error"]
            row.update(
                request_model=attribution.request_model,
                generation=attribution.generation,
                offered_tools=attribution.offered_tools,
                model_call=attribution.generation and succeeded,
                user_turn=attribution.user_turn,
                conversation=attribution.conversation,
                attribution=attribution.attribution,
                key_hash=attribution.key_hash,
                query=request.query or None,
                ttfb_ms=round((ttfb - started) * 1000, 3) if ttfb is not None else None,
                ts=round(started_wall, 3),
                proxy_status=proxy_status,
                source=SOURCE,
            )
            self.attributor.finish(attribution, ok=succeeded, response_body=decoded)
            # One tool row per tool call of a model call: `tool_calls` of tasks.csv counts these rows,
            # so it equals the sum of the model-call rows' `tool_calls`.
            tools = []
            if row["model_call"] and turn is not None:
                origin = Origin(self.run_id, row["task_id"], row["model"], row["repeat"])
                tools = [
                    tool_row(
                        origin,
                        SOURCE,
                        step=row["step"],
                        tool=call.name,
                        tool_call_id=call.id or None,
                        user_turn=row["user_turn"],
                    )
                    for call in turn.tool_calls
                ]
            self.rows.append(row)
            self.tool_rows.extend(tools)
            if self._writer is not None:
                self._writer.write_exchange_row(row)
                for tool in tools:
                    self._writer.tool_call(tool)
            if self.config.on_exchange is not None:
                # The log line is output too: what it shows is scrubbed like the files.
                self.config.on_exchange(
                    {k: self.scrub(v) if isinstance(v, str) else v for k, v in row.items()}
                )

        return record

    async def _relay(
        self, response: httpx2.Response, conn: ClientConnection, record: Callable[..., None]
    ) -> bool:
        """Stream the upstream response to the client chunk by chunk, then record it."""
        status = response.status_code
        connection_named = {
            t.strip().lower() for t in response.headers.get("connection", "").split(",") if t.strip()
        }
        # Framing is h11's: the upstream's Content-Length when it sent one, else chunks as they come.
        headers = [
            (k, v)
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP | connection_named
        ]
        chunks: list[bytes] = []
        ttfb: float | None = None
        upstream_error: str | None = None
        client_error: str | None = None
        try:
            if conn.client_gone:
                raise ClientGone("before the response")
            await conn.send_head(status, response.reason_phrase, headers)
            stream = response.aiter_raw().__aiter__()
            while True:
                try:
                    data = await stream.__anext__()
                except StopAsyncIteration:
                    break
                except httpx2.HTTPError as exc:
                    upstream_error = f"{type(exc).__name__}: {exc}".strip()
                    break
                if not data:
                    continue
                if ttfb is None:
                    ttfb = time.perf_counter()
                chunks.append(data)
                await conn.send_data(data)
            if upstream_error is None:
                await conn.end()
            if conn.client_gone:
                raise ClientGone("during the response")
        except ClientGone as exc:
            client_error = f"client disconnected ({exc})" if str(exc) else "client disconnected"
        except h11.LocalProtocolError as exc:
            # A response HTTP/1.1 cannot carry as sent (a 1xx, a body longer than its Content-Length).
            upstream_error = f"unrelayable upstream response: {one_line(str(exc))}"
        except asyncio.CancelledError:
            client_error = "cancelled: the proxy stopped"
            raise
        finally:
            with contextlib.suppress(Exception):
                await response.aclose()
            record(
                status=status,
                error=upstream_error or client_error,
                raw=b"".join(chunks),
                headers=response.headers,
                ttfb=ttfb,
            )
        # A broken upstream body is broken at the client too: close without finishing it.
        return upstream_error is None and client_error is None

    async def _answer(self, conn: ClientConnection, status: int, body: bytes, retry: bool) -> bool:
        headers = [("Content-Type", "application/json"), ("x-should-retry", "true" if retry else "false")]
        return await conn.answer(status, headers, body)

    async def _control(self, request: Request, conn: ClientConnection) -> bool:
        if request.path.rstrip("/") == CONTROL_PREFIX + "stats":
            payload = {
                "run_id": self.run_id,
                "run_dir": str(self.run_dir),
                "exchanges": sum(1 for r in self.rows if is_sent(r)),
                "sessions": len({(r["task_id"], r["repeat"]) for r in self.rows}),
                "in_flight": len(self._busy) - 1,
                "cassette_misses": len(self.cassette_misses),
                "refused": self.refused,
            }
            status = 200
        else:
            payload = {"error": f"unknown control path {request.path} (available: GET /_ampbench/stats)"}
            status = 404
        await conn.answer(status, [("Content-Type", "application/json")], json.dumps(payload).encode())
        return True


def _rewrite(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace a finished JSONL file with its rows as amended at the end of the run."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, path)


class ProxyThread:
    """A `CountingProxy` on its own event loop in a background thread (for `wrap`, tests, benchmarks)."""

    def __init__(self, config: ProxyConfig) -> None:
        self.proxy = CountingProxy(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.run_dir: Path | None = None

    @property
    def url(self) -> str:
        return self.proxy.url

    def start(self) -> ProxyThread:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.proxy.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="ampbench-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._loop = self._thread = None
            raise failure[0]
        return self

    def stop(self) -> Path:
        """Stop and finish the run; returns its directory. Safe to call twice."""
        if self._loop is None or self._thread is None:
            assert self.run_dir is not None, "the proxy was never started"
            return self.run_dir
        loop, self._loop = self._loop, None
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.stop(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=30)
        self.run_dir = self.proxy.run_dir
        return self.run_dir

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
