"""Read vcrpy cassette files (YAML or JSON) into plain recorded interactions.

Used by `ampbench ingest` and by tests that feed real recorded provider
responses to the parsers. Cassettes written by other projects differ in
details, all handled here:

- response bodies gzip-compressed as `!!binary` (Content-Encoding kept): decoded;
- pydantic-ai's serializer, which stores JSON bodies decoded as `parsed_body`
  YAML mappings: re-serialised to JSON bytes;
- header values as lists (vcrpy) or as plain strings (some custom serializers);
- no headers at all (recorders that strip them): `streamed` then comes from the body.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import yaml

from harness.imports import VCR_PATCH_TARGETS, skipping

with skipping(VCR_PATCH_TARGETS):  # vcrpy's serializers only; it patches no library here
    from vcr.serializers import yamlserializer

from harness.wire import looks_like_sse

Headers = dict[str, list[str] | str]


@dataclass
class RecordedInteraction:
    """One recorded HTTP request/response pair, response body decoded."""

    method: str
    uri: str
    path: str
    """URL path without the query string, e.g. `/v1/messages`."""
    request_headers: Headers
    request_body: bytes
    status: int
    response_headers: Headers
    body: bytes
    """The response body with Content-Encoding undone (what a client reads)."""
    streamed: bool
    """A server-sent-event stream (by content type, or by the body when headers are gone)."""

    def header(self, name: str) -> str | None:
        """First value of a response header, case-insensitively; None if absent."""
        return _first(self.response_headers, name)


def read_cassette(path: str | Path) -> list[RecordedInteraction]:
    """All interactions of a vcrpy cassette; ValueError with a one-line reason if it is malformed."""
    path = Path(path)
    data = _load(path)
    if isinstance(data, list):
        raise ValueError(f"{path}: pre-1.0 vcrpy cassette format (a bare list); re-record it")
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise ValueError(f"{path}: not a vcrpy cassette (no 'interactions' list)")
    return [_interaction(path, number, raw) for number, raw in enumerate(data["interactions"], 1)]


def _load(path: Path) -> Any:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                pass  # a YAML flow mapping, not JSON
        # vcrpy's own loader: safe, plus the few Python tags old cassettes contain.
        return yamlserializer.deserialize(text)
    except (ValueError, yaml.YAMLError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: unreadable cassette: {reason}") from None


def _interaction(path: Path, number: int, raw: Any) -> RecordedInteraction:
    where = f"{path}: interaction {number}"
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("request"), dict)
        or not isinstance(raw.get("response"), dict)
    ):
        raise ValueError(f"{where} lacks a request or a response mapping")
    request, response = raw["request"], raw["response"]
    uri = request.get("uri")
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"{where} has no request uri")
    response_headers = _headers(response.get("headers"), where)
    if "parsed_body" in response:
        # Stored already decoded: no Content-Encoding to undo.
        body = _json_bytes(response["parsed_body"], where)
    else:
        body = _decode(_bytes(_body_value(response.get("body")), where), response_headers, where)
    content_type = _first(response_headers, "content-type") or ""
    return RecordedInteraction(
        method=str(request.get("method") or "").upper(),
        uri=uri,
        path=urlsplit(uri).path,
        request_headers=_headers(request.get("headers"), where),
        request_body=(
            _json_bytes(request["parsed_body"], where)
            if "parsed_body" in request
            else _bytes(_body_value(request.get("body")), where)
        ),
        status=_status(response.get("status"), where),
        response_headers=response_headers,
        body=body,
        streamed="text/event-stream" in content_type.lower() or looks_like_sse(body),
    )


def _headers(raw: Any, where: str) -> Headers:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: headers are not a mapping")
    headers: Headers = {}
    for name, value in raw.items():
        if isinstance(value, list | tuple):
            headers[str(name)] = [str(v) for v in value]
        else:
            headers[str(name)] = str(value)
    return headers


def _first(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            if isinstance(value, list):
                return value[0] if value else None
            return value
    return None


def _status(raw: Any, where: str) -> int:
    code = raw.get("code") if isinstance(raw, Mapping) else raw
    if isinstance(code, bool) or not isinstance(code, int | str):
        raise ValueError(f"{where} has no response status code")
    try:
        return int(code)
    except ValueError:
        raise ValueError(f"{where} has a non-numeric status code {code!r}") from None


def _body_value(raw: Any) -> Any:
    # vcrpy stores response bodies as {"string": ...}; request bodies are bare.
    if isinstance(raw, Mapping) and "string" in raw:
        return raw["string"]
    return raw


def _bytes(value: Any, where: str) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, io.BytesIO):
        return value.getvalue()
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        # Old cassettes kept iterator request bodies as a list of chunks.
        return b"".join(_bytes(chunk, where) for chunk in value)
    raise ValueError(f"{where}: unsupported body type {type(value).__name__}")


def _json_bytes(value: Any, where: str) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: parsed_body is not JSON-serialisable ({exc})") from None


def _decode(body: bytes, headers: Headers, where: str) -> bytes:
    encoding = (_first(headers, "content-encoding") or "").strip().lower()
    if not body or encoding in ("", "identity"):
        return body
    try:
        return httpx2.Response(200, headers={"content-encoding": encoding}, content=body).read()
    except httpx2.DecodingError:
        # Some recorders store the body decoded but keep the header.
        if body.lstrip().startswith((b"{", b"[")) or looks_like_sse(body):
            return body
        raise ValueError(f"{where}: body does not decode as {encoding}") from None
