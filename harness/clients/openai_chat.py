"""OpenAI Chat Completions client, for OpenAI and every OpenAI-compatible server.

The request builder (with the dialects of compatible servers) and the one
parser of its responses are the wire format's, in `harness.wire.openai_chat`;
this module sends one request through the official `openai` SDK.
"""

from __future__ import annotations

from typing import ClassVar

from harness.clients.base import BaseClient, SdkPost
from harness.wire.openai_chat import build_request


class OpenAIChatClient(BaseClient):
    """Chat Completions through the official `openai` SDK, for OpenAI and compatible servers."""

    wire: ClassVar[str] = "openai-chat"
    sdk_class: ClassVar[str] = "openai:AsyncOpenAI"
    sdk_post: ClassVar[SdkPost] = SdkPost(
        "/chat/completions",
        "openai.types.chat:ChatCompletion",
        "openai.types.chat:ChatCompletionChunk",
        "true",
        {"security": {"bearer_auth": True}},
    )
    build_request = staticmethod(build_request)
