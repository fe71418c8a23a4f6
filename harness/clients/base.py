"""What every model client shares: the HTTP stack, retries and error mapping.

A provider client declares data, not code: its SDK client class, how a
request is posted through it (`SdkPost`) and its request builder. `_send`
makes exactly one HTTP attempt through the SDK; `generate` builds the body
once and wraps `_send` in the harness's own retry policy (the SDKs run with `max_retries=0`), so every attempt passes
through the ledger and is counted.
"""

from __future__ import annotations

import importlib
import json
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx2
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from harness import context, ledger
from harness.conversation import GenerateOptions, Message, ModelTurn, ToolSpec
from harness.errors import CassetteMiss, ProviderError
from harness.imports import (
    SDK_AIOHTTP_TRANSPORTS,
    SDK_TYPE_PACKAGES,
    collector_paused,
    lazy_packages,
    skipping,
)
from harness.pacing import Pacer

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass(frozen=True)
class ModelSpec:
    """A parsed `provider:model` string."""

    spec: str
    """What the user typed, e.g. `anthropic:claude-sonnet-4-5`; also the model's label in results."""
    provider: str
    """Provider name from the registry (`anthropic`, `openai`, `deepseek`, `sim`, ...)."""
    model: str
    """The model name sent to the provider."""
    wire: str
    """Wire format: `anthropic`, `openai-chat` or `openai-responses`."""
    base_url: str | None = None
    """Base URL of the API; None lets the SDK use its default (or its *_BASE_URL variable)."""
    api_key: str | None = field(default=None, repr=False, compare=False)
    """The key itself. Never written anywhere; `repr` hides it."""
    simulated: bool = False
    """True for the built-in simulator: every output labels such a model as simulated."""
    empty_content_for_tool_calls: bool = False
    """Send `content: ""` instead of null beside tool calls (llama.cpp and some other servers reject null)."""


@dataclass
class ClientSettings:
    """How clients talk HTTP; the runner builds one per run."""

    sink: ledger.LedgerSink
    """Receives one ledger row per HTTP attempt."""
    max_attempts: int = 4
    """Attempts per model call, the first one included."""
    timeout_s: float = 120.0
    """Per-attempt HTTP timeout."""
    retry_wait_scale: float = 1.0
    """Multiplier on every retry wait; 0 in replay, where waiting proves nothing."""
    max_wait_s: float = 60.0
    """Longest single wait between attempts, retry-after included."""
    inner_transport: Callable[[], httpx2.AsyncBaseTransport] | None = None
    """Factory of the transport below the ledger (cassettes plug in here); default: the network."""
    pacer: Pacer | None = None
    """Shared request budget per provider (requests per minute, retry-after for every caller)."""


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds only; dates are ignored)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def _sdk_errors(sdks: list[Any], *names: str) -> list[type[BaseException]]:
    return [error for sdk in sdks for name in names if (error := getattr(sdk, name, None)) is not None]


def map_sdk_error(exc: BaseException) -> ProviderError | None:
    """Turn an anthropic/openai SDK exception into a ProviderError (None if it is not one)."""
    # Only the SDKs already loaded can have raised it: importing the other one here, inside the
    # event loop at the first error, stalled every exchange in flight for a second or more.
    # One that another thread is still importing lacks them (and cannot have raised it either).
    sdks = [sys.modules[name] for name in ("anthropic", "openai") if name in sys.modules]
    status_errors = tuple(_sdk_errors(sdks, "APIStatusError"))
    transport_errors = tuple(_sdk_errors(sdks, "APITimeoutError", "APIConnectionError"))
    if isinstance(exc, status_errors):
        status = exc.status_code
        return ProviderError(
            f"HTTP {status}: {_short(exc)}",
            status=status,
            retryable=status in RETRYABLE_STATUSES,
            retry_after=retry_after_seconds(exc.response.headers),
        )
    if isinstance(exc, transport_errors):
        # The SDKs say only "Connection error."; the transport's exception says which one.
        cause = exc.__cause__
        detail = f" ({type(cause).__name__}: {_short(cause)})" if cause is not None else ""
        return ProviderError(f"{type(exc).__name__}: {_short(exc)}{detail}", retryable=True)
    if isinstance(exc, httpx2.TransportError):
        return ProviderError(f"{type(exc).__name__}: {_short(exc)}", retryable=True)
    return None


@dataclass(frozen=True)
class SdkPost:
    """How a request goes through an SDK client's own `post`, as its resource's `create` sends it.

    `create` runs every argument through the SDK's typed request params (openai)
    or copies the whole body (anthropic) on every attempt: for an agent that is
    the whole conversation again each time, and it dominated a run's CPU. The
    body is built once by `build_request` and handed to `post` as JSON bytes; the
    SDK's client still adds its headers and auth, raises its errors and knows
    its response types.
    """

    path: str
    """Path under the client's base URL, e.g. `/chat/completions`."""
    response_type: str
    """`module:Class` of the response, e.g. `openai.types.chat:ChatCompletion`."""
    stream_event: str
    """`module:Class` of a streamed event, e.g. `openai.types.chat:ChatCompletionChunk`."""
    raw_marker: str
    """Value of `X-Stainless-Raw-Response` under which the SDK hands back the HTTP response unparsed."""
    options: dict[str, Any] = field(default_factory=dict)
    """Request options `create` passes beyond headers (openai: bearer auth only)."""

    def types(self, sdk: Any) -> tuple[Any, Any]:
        """(response type, stream class): what the SDK's own `create` would pass to `post`."""
        response_type, event = (_import(target) for target in (self.response_type, self.stream_event))
        sdk_module = importlib.import_module(type(sdk).__module__.partition(".")[0])
        return response_type, sdk_module.AsyncStream[event]


def _import(target: str) -> Any:
    module_name, _, name = target.partition(":")
    with skipping(SDK_AIOHTTP_TRANSPORTS), lazy_packages(SDK_TYPE_PACKAGES), collector_paused():
        return getattr(importlib.import_module(module_name), name)


def encode_body(request: dict[str, Any]) -> bytes:
    """JSON as the SDKs write it (compact, UTF-8 kept), so the bytes on the wire stay the same."""
    return json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


class BaseClient:
    """A model client: `generate` one turn, with the harness's retries around `_send`."""

    wire: ClassVar[str]

    def __init__(self, spec: ModelSpec, settings: ClientSettings) -> None:
        self.spec = spec
        self.settings = settings
        self._http: httpx2.AsyncClient | None = None
        self._sdk: Any = None
        self._types: tuple[Any, Any] | None = None

    @property
    def label(self) -> str:
        return self.spec.spec

    def http_client(self) -> httpx2.AsyncClient:
        """The SDK's HTTP client: the ledger transport over the network (or a cassette)."""
        if self._http is None:
            if self.settings.inner_transport:
                inner = self.settings.inner_transport()
            elif (self.spec.base_url or "").startswith("http://"):
                # Plain HTTP (the simulator, a local server) never does TLS: a context with no
                # trust anchors spares loading the CA bundle (~20 ms), and would fail, not
                # trust, if a redirect ever led to https.
                inner = httpx2.AsyncHTTPTransport(verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
            else:
                inner = httpx2.AsyncHTTPTransport()
            self._http = httpx2.AsyncClient(
                transport=ledger.CountingTransport(inner, self.settings.sink),
                timeout=httpx2.Timeout(self.settings.timeout_s, connect=min(10.0, self.settings.timeout_s)),
            )
        return self._http

    async def generate(
        self,
        system: str,
        messages: list[Message],
        tools: list[ToolSpec],
        options: GenerateOptions,
    ) -> ModelTurn:
        """One model call: as many HTTP attempts as the retry policy allows."""
        # Built and encoded once: every attempt of the call sends the same bytes.
        request = type(self).build_request(self.spec, system, messages, tools, options)
        content, stream = encode_body(request), bool(request.get("stream"))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt, context.bind(attempt=attempt.retry_state.attempt_number):
                # Tell the provider the true retry count (the SDK's own header, which
                # would say 0 since the SDK never retries), and which repeat this is:
                # the simulator varies its answers by repeat, as sampling would.
                headers = {
                    "x-stainless-retry-count": str(attempt.retry_state.attempt_number - 1),
                    "x-ampbench-repeat": str(context.current().repeat),
                }
                pacer = self.settings.pacer
                if pacer is None:
                    return await self._send(content, stream, headers)
                await pacer.admit(self.spec.provider)
                try:
                    return await self._send(content, stream, headers)
                except ProviderError as exc:
                    if exc.retry_after is not None:
                        pacer.hold(self.spec.provider, exc.retry_after * self.settings.retry_wait_scale)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        suggested = exc.retry_after if isinstance(exc, ProviderError) else None
        backoff = min(self.settings.max_wait_s, 0.5 * 2 ** (retry_state.attempt_number - 1))
        wait = min(self.settings.max_wait_s, suggested) if suggested is not None else backoff
        return wait * self.settings.retry_wait_scale

    # What a provider module declares instead of code: its SDK client class,
    # how one request is posted through it, and its request builder.
    sdk_class: ClassVar[str]
    """`module:Class` of the async SDK client, e.g. `anthropic:AsyncAnthropic`."""
    sdk_post: ClassVar[SdkPost]
    """How one request goes through the SDK client's `post`."""
    build_request: ClassVar[Callable[..., dict[str, Any]]]
    """`build_request(spec, system, messages, tools, options) -> dict`: the request body."""

    def load_sdk(self) -> None:
        """Import the SDK now: a run does it before its event loop starts (see `heap_frozen`)."""
        for target in (self.sdk_class, self.sdk_post.response_type, self.sdk_post.stream_event):
            _import(target)

    def _sdk_client(self) -> Any:
        if self._sdk is None:
            http = self.http_client()
            self._sdk = _import(self.sdk_class)(
                api_key=self.spec.api_key,
                base_url=self.spec.base_url,
                http_client=http,
                # The SDK sends its own per-request timeout otherwise; make it ours.
                timeout=http.timeout,
                max_retries=0,
            )
        return self._sdk

    async def _send(self, content: bytes, stream: bool, headers: dict[str, str]) -> ModelTurn:
        """Make exactly one HTTP attempt through the SDK and return the turn the ledger parsed."""
        sdk, post = self._sdk_client(), self.sdk_post
        if self._types is None:
            self._types = post.types(sdk)
        response_type, stream_cls = self._types
        request_options = {
            **post.options,
            "headers": {**headers, "X-Stainless-Raw-Response": post.raw_marker},
        }
        return await self._exchange(
            lambda: sdk.post(
                post.path,
                cast_to=response_type,
                content=content,
                options=request_options,
                stream=stream,
                stream_cls=stream_cls,
            )
        )

    async def _exchange(self, call: Callable[[], Awaitable[Any]]) -> ModelTurn:
        """Run one SDK call made `with_raw_response`; return the turn the ledger parsed.

        SDK errors are mapped to ProviderError here, in one place for all providers.
        """
        with ledger.capture() as slot:
            try:
                raw = await call()
                await raw.http_response.aread()
                await raw.http_response.aclose()
            except ProviderError:
                raise
            except Exception as exc:
                if isinstance(exc.__cause__, CassetteMiss):
                    # The SDK wraps transport exceptions; a miss must not be retried.
                    raise ProviderError(str(exc.__cause__)) from exc
                mapped = map_sdk_error(exc)
                if mapped is None:
                    raise
                raise mapped from exc
        turn = slot.turn
        if slot.exchange is not None and slot.exchange.error:
            # A 200 whose stream broke, or an error event inside the stream.
            raise ProviderError(
                slot.exchange.error,
                status=slot.exchange.status,
                retryable=_retryable_text(slot.exchange.error),
            )
        if turn is None:
            raise ProviderError(
                "empty response body", status=slot.exchange.status if slot.exchange else None, retryable=True
            )
        return turn

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _retryable_text(error: str) -> bool:
    lowered = error.lower()
    return any(
        word in lowered
        for word in (
            "overloaded",
            "rate_limit",
            "timeout",
            "incomplete",
            "protocol",
            "server_error",
            "api_error",
            "readerror",
            "remoteprotocol",
        )
    )
