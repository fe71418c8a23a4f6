"""The OpenAI Chat Completions wire format (`POST /v1/chat/completions`).

Visible reasoning goes out the way DeepSeek and other OpenAI-compatible
providers send it: `reasoning_content` on the message (and on stream deltas).
The error shapes here are shared with the Responses API.
"""

from __future__ import annotations

from typing import Any

from harness.sim.view import (
    CallIn,
    Reply,
    ResultIn,
    ToolDef,
    View,
    ViewMessage,
    compact_json,
    created_at,
    make_hex_id,
    make_id,
)
from harness.sim.wire import (
    ErrorKind,
    RenderContext,
    WireError,
    json_pieces,
    parse_arguments,
    require_dict,
    sse,
    text_of_parts,
    text_pieces,
)

_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

_ERRORS: dict[ErrorKind, tuple[int, str, str | None]] = {
    "invalid_request": (400, "invalid_request_error", None),
    "not_found": (404, "invalid_request_error", "model_not_found"),
    "rate_limit": (429, "requests", "rate_limit_exceeded"),
    "server_error": (500, "server_error", None),
    "overloaded": (503, "server_error", "service_unavailable"),
}


def openai_error(kind: ErrorKind, message: str, *, param: str | None) -> tuple[int, dict[str, Any]]:
    """Status and body of an OpenAI API error (Chat Completions and Responses alike)."""
    status, error_type, code = _ERRORS[kind]
    return status, {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def openai_not_found_message(model: str) -> str:
    return f"The model `{model}` does not exist or you do not have access to it."


def openai_tool_choice(choice: Any) -> str:
    if choice in ("none", "auto", "required"):
        return str(choice)
    if isinstance(choice, dict):
        named = choice.get("function") if isinstance(choice.get("function"), dict) else choice
        if isinstance(named.get("name"), str):
            return named["name"]
    return "auto"


def fingerprint(ctx: RenderContext) -> str:
    return "fp_" + make_hex_id(ctx.key, "fingerprint", 10)


class ChatWire:
    name = "openai-chat"

    # --- requests ------------------------------------------------------------------------

    def parse(self, body: Any) -> View:
        body = require_dict(body)
        if not isinstance(body.get("model"), str):
            raise WireError("invalid_request", "you must provide a model parameter", param="model")
        if not isinstance(body.get("messages"), list):
            raise WireError("invalid_request", "Missing required parameter: 'messages'.", param="messages")
        system: list[str] = []
        messages: list[ViewMessage] = []
        for index, message in enumerate(body["messages"]):
            self._add_message(index, message, system, messages)
        options = body.get("stream_options")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        return View(
            wire=self.name,
            model=body["model"],
            system="\n\n".join(system),
            messages=messages,
            tools=self._tools(body),
            tool_choice=openai_tool_choice(body.get("tool_choice", body.get("function_call"))),
            stream=body.get("stream") is True,
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )

    @staticmethod
    def _tools(body: dict[str, Any]) -> list[ToolDef]:
        out: list[ToolDef] = []
        for i, tool in enumerate(body.get("tools") or []):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                if isinstance(tool, dict) and tool.get("type") not in (None, "function"):
                    continue  # custom/built-in tool types: nothing a function-calling agent calls
                raise WireError(
                    "invalid_request",
                    f"Missing required parameter: 'tools[{i}].function'.",
                    param=f"tools[{i}].function",
                )
            out.append(
                ToolDef(
                    function["name"],
                    str(function.get("description") or ""),
                    function.get("parameters") or _EMPTY_PARAMETERS,
                )
            )
        for function in body.get("functions") or []:  # the deprecated pre-tools form
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                out.append(
                    ToolDef(
                        function["name"],
                        str(function.get("description") or ""),
                        function.get("parameters") or _EMPTY_PARAMETERS,
                    )
                )
        return out

    @staticmethod
    def _add_message(index: int, message: Any, system: list[str], messages: list[ViewMessage]) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise WireError(
                "invalid_request",
                f"Missing required parameter: 'messages[{index}].role'.",
                param=f"messages[{index}].role",
            )
        role = message["role"]
        text, attachments = text_of_parts(message.get("content"), ("text", "input_text", "refusal"))
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            messages.append(ViewMessage(role="user", text=text, attachments=attachments))
        elif role == "assistant":
            calls = []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                calls.append(
                    CallIn(
                        str(call.get("id", "")),
                        str(function.get("name", "")),
                        parse_arguments(function.get("arguments")),
                    )
                )
            legacy = message.get("function_call")
            if isinstance(legacy, dict):
                calls.append(
                    CallIn("", str(legacy.get("name", "")), parse_arguments(legacy.get("arguments")))
                )
            reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
            messages.append(
                ViewMessage(role="assistant", text=text, tool_calls=calls, reasoning=str(reasoning))
            )
        elif role in ("tool", "function"):
            result = ResultIn(str(message.get("tool_call_id") or message.get("name") or ""), text)
            if messages and messages[-1].role == "tool":
                messages[-1].tool_results.append(result)  # parallel results: one tool round
            else:
                messages.append(ViewMessage(role="tool", tool_results=[result]))
        else:
            raise WireError(
                "invalid_request",
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                param=f"messages[{index}].role",
            )

    # --- responses -----------------------------------------------------------------------

    @staticmethod
    def _calls(reply: Reply, ctx: RenderContext) -> list[dict[str, Any]]:
        return [
            {
                "id": "call_" + make_id(ctx.key, f"call-{i}", 24),
                "type": "function",
                "function": {"name": c.name, "arguments": compact_json(c.arguments)},
            }
            for i, c in enumerate(reply.tool_calls)
        ]

    @staticmethod
    def _usage(ctx: RenderContext) -> dict[str, Any]:
        t = ctx.tokens
        return {
            "prompt_tokens": t.input,
            "completion_tokens": t.output,
            "total_tokens": t.input + t.output,
            "prompt_tokens_details": {"cached_tokens": t.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": t.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish(reply: Reply) -> str:
        return "tool_calls" if reply.tool_calls else "stop"

    @staticmethod
    def _envelope(view: View, ctx: RenderContext, obj: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-" + make_id(ctx.key, "chatcmpl", 29),
            "object": obj,
            "created": created_at(ctx.key),
            "model": view.model,
        }

    def render(self, view: View, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text or None,
            "refusal": None,
            "annotations": [],
        }
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = self._calls(reply, ctx)
        return {
            **self._envelope(view, ctx, "chat.completion"),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish(reply)}
            ],
            "usage": self._usage(ctx),
            "service_tier": "default",
            "system_fingerprint": fingerprint(ctx),
        }

    def render_stream(self, view: View, reply: Reply, ctx: RenderContext) -> list[bytes]:
        head = {
            **self._envelope(view, ctx, "chat.completion.chunk"),
            "service_tier": "default",
            "system_fingerprint": fingerprint(ctx),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                **head,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if view.include_usage:
                payload["usage"] = None  # the API sends null usage on every chunk but the last
            return sse(payload)

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"reasoning_content": p}) for p in text_pieces(reply.reasoning)]
        frames += [chunk({"content": p}) for p in text_pieces(reply.text)]
        for index, call in enumerate(self._calls(reply, ctx)):
            function = call["function"]
            opening = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
            frames.append(chunk({"tool_calls": [opening]}))
            frames += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                for p in json_pieces(function["arguments"])
            ]
        frames.append(chunk({}, self._finish(reply)))
        if view.include_usage:
            frames.append(sse({**head, "choices": [], "usage": self._usage(ctx)}))
        frames.append(sse("[DONE]"))
        return frames

    def error(
        self, kind: ErrorKind, message: str, *, param: str | None, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        return openai_error(kind, message, param=param)

    @staticmethod
    def not_found_message(model: str) -> str:
        return openai_not_found_message(model)
