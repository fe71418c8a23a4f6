"""Model clients, chosen by a model spec string such as `anthropic:claude-sonnet-4-5`.

Providers are configuration, not code: an OpenAI-compatible provider is a
base URL and the name of its key variable. The three wire formats each have
one client class, imported lazily so that a missing SDK is one clear line.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from harness.clients.base import BaseClient, ClientSettings, ModelSpec
from harness.errors import UserError
from harness.redact import mask_url

__all__ = ["PROVIDERS", "BaseClient", "ClientSettings", "ModelSpec", "make_client", "parse_spec"]


@dataclass(frozen=True)
class Provider:
    """How to reach one provider."""

    wire: str
    """Wire format: `anthropic`, `openai-chat` or `openai-responses`."""
    key_env: str | None
    """Environment variable holding the API key; None when no key is needed."""
    base_url: str | None = None
    """Default base URL; None lets the SDK choose (and honour its *_BASE_URL variable)."""
    base_url_env: str | None = None
    """Environment variable that overrides the base URL."""
    key_required: bool = True
    """False for local servers that accept any key."""
    empty_content_for_tool_calls: bool = False
    """Send `content: ""` beside tool calls instead of null."""
    simulated: bool = False
    """The built-in simulator."""


PROVIDERS: dict[str, Provider] = {
    "anthropic": Provider("anthropic", "ANTHROPIC_API_KEY", base_url_env="ANTHROPIC_BASE_URL"),
    "openai": Provider("openai-chat", "OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL"),
    "openai-responses": Provider("openai-responses", "OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL"),
    "openrouter": Provider("openai-chat", "OPENROUTER_API_KEY", base_url="https://openrouter.ai/api/v1"),
    "deepseek": Provider("openai-chat", "DEEPSEEK_API_KEY", base_url="https://api.deepseek.com/v1"),
    "moonshot": Provider("openai-chat", "MOONSHOT_API_KEY", base_url="https://api.moonshot.ai/v1"),
    "together": Provider("openai-chat", "TOGETHER_API_KEY", base_url="https://api.together.xyz/v1"),
    "groq": Provider("openai-chat", "GROQ_API_KEY", base_url="https://api.groq.com/openai/v1"),
    # compat:<model>@<base_url>: vLLM, llama.cpp server, Ollama and the like.
    "compat": Provider(
        "openai-chat", "COMPAT_API_KEY", key_required=False, empty_content_for_tool_calls=True
    ),
    # The simulator, started in-process on a free loopback port.
    "sim": Provider("openai-chat", None, key_required=False, simulated=True),
    "sim-anthropic": Provider("anthropic", None, key_required=False, simulated=True),
    "sim-responses": Provider("openai-responses", None, key_required=False, simulated=True),
}

_CLIENT_CLASSES = {
    "anthropic": "harness.clients.anthropic:AnthropicClient",
    "openai-chat": "harness.clients.openai_chat:OpenAIChatClient",
    "openai-responses": "harness.clients.openai_responses:OpenAIResponsesClient",
}

SIM_KEY = "sim-not-a-secret"


def parse_spec(spec: str, *, sim_url: str | None = None, require_key: bool = True) -> ModelSpec:
    """Parse and validate a model spec; raise UserError naming what is wrong or missing.

    `require_key=False` is for replaying cassettes, where no request leaves the machine.
    """
    provider_name, sep, model = spec.partition(":")
    if not sep or not provider_name or not model:
        raise UserError(
            f"malformed model spec {spec!r}: expected PROVIDER:MODEL, e.g. anthropic:claude-sonnet-4-5"
        )
    provider = PROVIDERS.get(provider_name)
    if provider is None:
        raise UserError(f"unknown provider {provider_name!r} in {spec!r} (available: {', '.join(PROVIDERS)})")

    base_url = provider.base_url
    if provider.base_url_env and os.environ.get(provider.base_url_env):
        base_url = os.environ[provider.base_url_env]
    if provider_name == "compat":
        model, at, base_url = model.partition("@")
        if not at or not model or not base_url.startswith(("http://", "https://")):
            raise UserError(f"malformed model spec {spec!r}: expected compat:MODEL@http://HOST:PORT/v1")

    if provider.simulated:
        from harness.sim.profiles import PROFILES

        if model not in PROFILES:
            raise UserError(f"unknown simulator profile {model!r} (available: {', '.join(sorted(PROFILES))})")
        return ModelSpec(
            spec, provider_name, model, provider.wire, base_url=sim_url, api_key=SIM_KEY, simulated=True
        )

    key = os.environ.get(provider.key_env) if provider.key_env else None
    if not key:
        if provider.key_required and require_key:
            raise UserError(f"missing API key for {spec}: set {provider.key_env}")
        key = "no-key"
    return ModelSpec(
        # The label goes into every result file and cassette path; the password stays in base_url only.
        mask_url(spec),
        provider_name,
        model,
        provider.wire,
        base_url=base_url,
        api_key=key,
        empty_content_for_tool_calls=provider.empty_content_for_tool_calls,
    )


def make_client(spec: ModelSpec, settings: ClientSettings) -> BaseClient:
    """Instantiate the client class of the spec's wire format."""
    module_name, _, class_name = _CLIENT_CLASSES[spec.wire].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UserError(f"{spec.spec} needs a missing package ({exc.name}): pip install ampbench") from exc
    cls: type[BaseClient] = getattr(module, class_name)
    return cls(spec, settings)
