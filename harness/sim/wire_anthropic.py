"""The Anthropic Messages wire format (`POST /v1/messages`, `/v1/messages/count_tokens`)."""

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
    make_id,
    make_signature,
)
from harness.sim.wire import (
    ErrorKind,
    RenderContext,
    WireError,
    json_pieces,
    require_dict,
    sse,
    text_of_parts,
    text_pieces,
)

# Anthropic-defined client tools carry no `input_schema`; these are the
# schemas their documented inputs follow, so a simulated agent can call them.
_BUILTIN_CLIENT_TOOLS: dict[str, dict[str, Any]] = {
    "bash": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "restart": {"type": "boolean"}},
        "required": ["command"],
    },
    "text_editor": {
        "type": "object",
        "properties": {"command": {"type": "string", "enum": ["view"]}, "path": {"type": "string"}},
        "required": ["command", "path"],
    },
}

_ERRORS: dict[ErrorKind, tuple[int, str]] = {
    "invalid_request": (400, "invalid_request_error"),
    "not_found": (404, "not_found_error"),
    "rate_limit": (429, "rate_limit_error"),
    "server_error": (500, "api_error"),
    "overloaded": (529, "overloaded_error"),
}


class AnthropicWire:
    name = "anthropic"

    # --- requests ------------------------------------------------------------------------

    def parse(self, body: Any, *, count_only: bool = False) -> View:
        body = require_dict(body)
        for required in ("model", "messages") if count_only else ("model", "messages", "max_tokens"):
            if required not in body:
                raise WireError("invalid_request", f"{required}: Field required")
        model = body["model"]
        if not isinstance(model, str):
            raise WireError("invalid_request", "model: Input should be a valid string")
        if not isinstance(body["messages"], list):
            raise WireError("invalid_request", "messages: Input should be a valid list")
        max_tokens = body.get("max_tokens")
        if not count_only and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise WireError(
                "invalid_request", "max_tokens: Input should be a valid integer greater than or equal to 1"
            )

        system, system_marked = self._system(body.get("system"))
        tools, tools_marked = self._tools(body.get("tools"))
        messages: list[ViewMessage] = []
        for i, m in enumerate(body["messages"]):
            if isinstance(m, dict) and m.get("role") == "system":
                # Mid-conversation system messages (a beta Claude Code sends): extra system text.
                system = "\n\n".join(t for t in (system, text_of_parts(m.get("content"), ("text",))[0]) if t)
            else:
                messages.append(self._message(i, m))
        view = View(
            wire=self.name,
            model=model,
            system=system,
            messages=messages,
            tools=tools,
            tool_choice=self._tool_choice(body.get("tool_choice")),
            stream=body.get("stream") is True,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            tools_cache_marked=tools_marked,
            system_cache_marked=system_marked,
        )
        return view

    def _system(self, system: Any) -> tuple[str, bool]:
        if system is None:
            return "", False
        if isinstance(system, str):
            return system, False
        if not isinstance(system, list):
            raise WireError(
                "invalid_request", "system: Input should be a valid string or a list of text blocks"
            )
        marked = any(isinstance(b, dict) and b.get("cache_control") for b in system)
        return text_of_parts(system, ("text",))[0], marked

    def _tools(self, tools: Any) -> tuple[list[ToolDef], bool]:
        if tools is None:
            return [], False
        if not isinstance(tools, list):
            raise WireError("invalid_request", "tools: Input should be a valid list")
        out: list[ToolDef] = []
        marked = False
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise WireError("invalid_request", f"tools.{i}.name: Field required")
            marked = marked or bool(tool.get("cache_control"))
            schema = tool.get("input_schema")
            kind = str(tool.get("type") or "custom")
            if isinstance(schema, dict):
                out.append(ToolDef(tool["name"], str(tool.get("description") or ""), schema))
            elif kind.startswith(("bash_", "text_editor_")):
                base = "bash" if kind.startswith("bash_") else "text_editor"
                out.append(ToolDef(tool["name"], "", _BUILTIN_CLIENT_TOOLS[base]))
            elif kind == "custom":
                raise WireError("invalid_request", f"tools.{i}.custom.input_schema: Field required")
            # Other typed tools (web_search, code_execution, ...) run on Anthropic's side: not ours to call.
        return out, marked

    @staticmethod
    def _tool_choice(choice: Any) -> str:
        if not isinstance(choice, dict):
            return "auto"
        kind = choice.get("type")
        if kind == "none":
            return "none"
        if kind == "any":
            return "required"
        if kind == "tool" and isinstance(choice.get("name"), str):
            return choice["name"]
        return "auto"

    def _message(self, index: int, message: Any) -> ViewMessage:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise WireError(
                "invalid_request", f"messages.{index}.role: Input should be 'user' or 'assistant'"
            )
        role = message["role"]
        content = message.get("content")
        if isinstance(content, str):
            return ViewMessage(role=role, text=content)
        if not isinstance(content, list):
            raise WireError("invalid_request", f"messages.{index}.content: Field required")
        out = ViewMessage(role=role)
        texts: list[str] = []
        for block in content:
            if not isinstance(block, dict):
                raise WireError(
                    "invalid_request", f"messages.{index}.content: Input should be a valid list of blocks"
                )
            out.cache_marked = out.cache_marked or bool(block.get("cache_control"))
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind == "tool_use" and role == "assistant":
                out.tool_calls.append(
                    CallIn(str(block.get("id", "")), str(block.get("name", "")), block.get("input", {}))
                )
            elif kind == "tool_result" and role == "user":
                result_text, attachments = text_of_parts(block.get("content"), ("text",))
                out.attachments += attachments
                out.tool_results.append(
                    ResultIn(str(block.get("tool_use_id", "")), result_text, bool(block.get("is_error")))
                )
            elif kind == "thinking":
                out.reasoning += str(block.get("thinking", ""))
            elif kind == "redacted_thinking":
                out.reasoning += str(block.get("data", ""))
            elif kind in ("image", "document"):
                out.attachments += 1
            else:
                # Server-tool blocks and anything newer: count their size, nothing more.
                texts.append(compact_json(block))
        out.text = "\n".join(texts)
        if out.tool_results:
            out.role = "tool"  # a user message carrying tool results answers a tool round, not a new ask
        return out

    # --- responses -----------------------------------------------------------------------

    def _content(self, reply: Reply, ctx: RenderContext) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.reasoning:
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": reply.reasoning,
                    "signature": make_signature(ctx.key, "thinking"),
                }
            )
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for i, tool_call in enumerate(reply.tool_calls):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": "toolu_01" + make_id(ctx.key, f"toolu-{i}", 22),
                    "name": tool_call.name,
                    "input": tool_call.arguments,
                }
            )
        return blocks

    @staticmethod
    def _usage(ctx: RenderContext, output_tokens: int) -> dict[str, Any]:
        t = ctx.tokens
        return {
            "input_tokens": t.uncached_input,
            "cache_creation_input_tokens": t.cache_creation,
            "cache_read_input_tokens": t.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": t.cache_creation, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _envelope(self, view: View, ctx: RenderContext) -> dict[str, Any]:
        return {
            "id": "msg_01" + make_id(ctx.key, "msg", 22),
            "type": "message",
            "role": "assistant",
            "model": view.model,
        }

    def render(self, view: View, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        return {
            **self._envelope(view, ctx),
            "content": self._content(reply, ctx),
            "stop_reason": reply.stop,
            "stop_sequence": None,
            "usage": self._usage(ctx, ctx.tokens.output),
        }

    def render_stream(self, view: View, reply: Reply, ctx: RenderContext) -> list[bytes]:
        start = {**self._envelope(view, ctx), "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = self._usage(ctx, 1)
        frames = [sse({"type": "message_start", "message": start}, "message_start")]
        frames.append(sse({"type": "ping"}, "ping"))
        for index, block in enumerate(self._content(reply, ctx)):
            frames.extend(self._block_frames(index, block))
        usage = self._usage(ctx, ctx.tokens.output)
        for extra in ("cache_creation", "service_tier"):
            usage.pop(extra)
        frames.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop, "stop_sequence": None},
                    "usage": usage,
                },
                "message_delta",
            )
        )
        frames.append(sse({"type": "message_stop"}, "message_stop"))
        return frames

    @staticmethod
    def _block_frames(index: int, block: dict[str, Any]) -> list[bytes]:
        def delta(payload: dict[str, Any]) -> bytes:
            return sse(
                {"type": "content_block_delta", "index": index, "delta": payload}, "content_block_delta"
            )

        kind = block["type"]
        if kind == "thinking":
            opening: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                delta({"type": "thinking_delta", "thinking": p}) for p in text_pieces(block["thinking"])
            ]
            deltas.append(delta({"type": "signature_delta", "signature": block["signature"]}))
        elif kind == "text":
            opening = {"type": "text", "text": ""}
            deltas = [delta({"type": "text_delta", "text": p}) for p in text_pieces(block["text"])]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            # The API opens with an empty fragment, then streams the JSON in pieces.
            fragments = ["", *json_pieces(compact_json(block["input"]))]
            deltas = [delta({"type": "input_json_delta", "partial_json": p}) for p in fragments]
        return [
            sse(
                {"type": "content_block_start", "index": index, "content_block": opening},
                "content_block_start",
            ),
            *deltas,
            sse({"type": "content_block_stop", "index": index}, "content_block_stop"),
        ]

    def error(
        self, kind: ErrorKind, message: str, *, param: str | None, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        status, error_type = _ERRORS[kind]
        return status, {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request_id,
        }

    @staticmethod
    def not_found_message(model: str) -> str:
        return f"model: {model}"
