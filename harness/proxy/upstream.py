"""Where the proxy forwards a request: one upstream URL, the simulator, or the providers' own hosts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from harness.errors import UserError

ANTHROPIC_DEFAULT = "https://api.anthropic.com"
OPENAI_DEFAULT = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Route:
    """A base URL; `strip` is a path prefix of incoming requests that the base already ends with."""

    base: str
    strip: str = ""

    def url_for(self, path: str, query: str) -> str:
        if self.strip and (path == self.strip or path.startswith(self.strip + "/")):
            path = path[len(self.strip) :]
        return self.base + path + (f"?{query}" if query else "")

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname or ""


def route_for_base(url: str) -> Route:
    """A route for a base URL as an SDK takes it: a trailing `/v1` is the API's own prefix."""
    url = url.rstrip("/")
    if url.endswith("/v1"):
        return Route(url, "/v1")
    return Route(url)


def is_anthropic(path: str, headers: Mapping[str, str]) -> bool:
    """Anthropic's wire (and error shape): its paths, or any request an Anthropic SDK sent."""
    return path.startswith(("/v1/messages", "/v1/complete")) or "anthropic-version" in headers


@dataclass(frozen=True)
class Upstream:
    anthropic: Route
    openai: Route
    label: str
    """For the manifest and the banner: never with credentials or a query."""

    def route(self, path: str, headers: Mapping[str, str]) -> Route:
        return self.anthropic if is_anthropic(path, headers) else self.openai


def _check_url(url: str, flag: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"{flag} must be sim, auto or an http(s) URL such as https://api.anthropic.com, got {url!r}"
        )
    return url


def display(url: str) -> str:
    """A URL without user info or query, safe to print and store."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def resolve(spec: str, env: Mapping[str, str] | None = None) -> Upstream:
    """`URL` (both wire formats there), or `auto` (where the SDKs would go by themselves).

    `auto` follows ANTHROPIC_BASE_URL / OPENAI_BASE_URL of the environment when
    they are set, else the providers' public hosts. `sim` is handled by the
    proxy, which starts a simulator and passes its URL here.
    """
    env = os.environ if env is None else env
    if spec == "auto":
        anthropic = _check_url(env.get("ANTHROPIC_BASE_URL") or ANTHROPIC_DEFAULT, "ANTHROPIC_BASE_URL")
        openai = _check_url(env.get("OPENAI_BASE_URL") or OPENAI_DEFAULT, "OPENAI_BASE_URL")
        return Upstream(
            # The OpenAI SDK's base URL holds the /v1 its paths are relative to; ours already has it.
            anthropic=Route(anthropic.rstrip("/")),
            openai=Route(openai.rstrip("/"), "/v1"),
            label=f"auto (anthropic: {display(anthropic)}, openai: {display(openai)})",
        )
    _check_url(spec, "--upstream")
    route = route_for_base(spec)
    return Upstream(anthropic=route, openai=route, label=display(spec))
