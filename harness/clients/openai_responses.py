"""OpenAI Responses API client: one stateless request (`store=False`) through the official `openai` SDK.

The request builder and the one parser of its responses are the wire format's,
in `harness.wire.openai_responses`.
"""

from __future__ import annotations

from typing import ClassVar

from harness.clients.base import BaseClient, SdkPost
from harness.wire.openai_responses import build_request


class OpenAIResponsesClient(BaseClient):
    """The Responses API through the official `openai` SDK, stateless (`store=False`)."""

    wire: ClassVar[str] = "openai-responses"
    sdk_class: ClassVar[str] = "openai:AsyncOpenAI"
    sdk_post: ClassVar[SdkPost] = SdkPost(
        "/responses",
        "openai.types.responses:Response",
        "openai.types.responses:ResponseStreamEvent",
        "true",
        {"security": {"bearer_auth": True}},
    )
    build_request = staticmethod(build_request)
