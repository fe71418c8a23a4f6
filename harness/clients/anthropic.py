"""Anthropic Messages API client: one request through the official `anthropic` SDK.

The request builder and the one parser of its responses are the wire format's,
in `harness.wire.anthropic`; the ledger parses what comes back.
"""

from __future__ import annotations

from typing import ClassVar

from harness.clients.base import BaseClient, SdkPost
from harness.wire.anthropic import build_request


class AnthropicClient(BaseClient):
    """The Messages API through the official `anthropic` SDK (its retries off, ours on)."""

    wire: ClassVar[str] = "anthropic"
    sdk_class: ClassVar[str] = "anthropic:AsyncAnthropic"
    sdk_post: ClassVar[SdkPost] = SdkPost(
        "/v1/messages", "anthropic.types:Message", "anthropic.types:RawMessageStreamEvent", "raw"
    )
    build_request = staticmethod(build_request)
