"""Where the proxy forwards a request: one upstream URL, the simulator, or the providers' own hosts.

Only an origin-form request target (RFC 9112 3.2.1: `/path?query`) is ever
forwarded, and always to the configured upstream: the URL is built from the
base URL's scheme, host and port with the target as its path and query, never
by pasting strings together, so no target can name another host.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx2

from harness.errors import UserError

ANTHROPIC_DEFAULT = "https://api.anthropic.com"
OPENAI_DEFAULT = "https://api.openai.com/v1"


class Refused(ValueError):
    """A request target the proxy does not forward anywhere; the message is one line, for the 400."""


_AUTHORITY = re.compile(r"[A-Za-z0-9._~\-\[\]:]+:[0-9]+")
# A target needs no more than 80 characters to be recognised in a message; a query may hold secrets.
_SHOWN = 80


def shown_target(target: str) -> str:
    """A request target as messages show it: without its query, cut short, quoted."""
    head = target.split("?", 1)[0]
    return repr(head[:_SHOWN] + ("…" if len(head) > _SHOWN else ""))


def origin_form(target: str) -> tuple[str, str]:
    """(path, query) of an origin-form target `/path?query`; `Refused` for every other form.

    Refused: absolute-form (`http://host/x`, a forward-proxy request), authority-form
    (`host:port`, CONNECT), asterisk-form (`*`), anything else not starting with `/`
    (`@host/x`, `.evil.example/x`, empty), a path starting `//` or `/\\` (read as
    an authority by URL parsers), and backslashes, fragments, spaces or non-ASCII.
    """
    if not target.startswith("/"):
        if "://" in target:
            kind = "absolute-form (this is a reverse proxy, not a forward proxy)"
        elif target == "*":
            kind = "asterisk-form"
        elif _AUTHORITY.fullmatch(target):
            kind = "authority-form (CONNECT: this proxy opens no tunnels)"
        elif not target:
            kind = "empty"
        else:
            kind = "not origin-form"
        raise Refused(f"request target {shown_target(target)} is {kind}; only /path?query is forwarded")
    if target.startswith(("//", "/\\")):
        raise Refused(f"request target {shown_target(target)} starts with an authority; send /path?query")
    bad = next((c for c in target if c in "\\#" or not " " < c < "\x7f"), None)
    if bad is not None:
        raise Refused(
            f"request target {shown_target(target)} holds {bad!r}; send a percent-encoded /path?query"
        )
    path, _, query = target.partition("?")
    return path, query


@dataclass(frozen=True)
class Route:
    """A base URL; `strip` is a path prefix of incoming requests that the base already ends with."""

    base: str
    strip: str = ""

    @functools.cached_property
    def _base(self) -> httpx2.URL:
        return httpx2.URL(self.base)

    def url_for(self, target: str) -> httpx2.URL:
        """The upstream URL of an origin-form request target: the base's scheme, host and port, always."""
        path, query = origin_form(target)
        if self.strip and (path == self.strip or path.startswith(self.strip + "/")):
            path = path[len(self.strip) :]
        base_path = self._base.raw_path.split(b"?", 1)[0].rstrip(b"/")
        raw_path = (base_path + path.encode("ascii")) or b"/"
        if query:
            raw_path += b"?" + query.encode("ascii")
        # Components, never a string to re-parse: the target can only become a path and a query.
        return self._base.copy_with(raw_path=raw_path)

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
