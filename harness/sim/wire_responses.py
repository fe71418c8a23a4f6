"""The OpenAI Responses wire format (`POST /v1/responses`).

The simulator keeps no state between requests, so a request must carry its
whole conversation in `input` (what `store=false` clients do);
`previous_response_id` is rejected with a message that says so.
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
from harness.sim.wire_openai import openai_error, openai_not_found_message, openai_tool_choice

_TEXT_PARTS = ("input_text", "output_text", "text", "refusal", "summary_text", "reasoning_text")
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
# Settings the API repeats in every response object.
_ECHOED = (
    "instructions",
    "parallel_tool_calls",
    "store",
    "temperature",
    "tool_choice",
    "tools",
    "top_p",
    "metadata",
)


class ResponsesWire:
    name = "openai-responses"

    # --- requests ------------------------------------------------------------------------

    def parse(self, body: Any) -> View:
        body = require_dict(body)
        if not isinstance(body.get("model"), str):
            raise WireError("invalid_request", "Missing required parameter: 'model'.", param="model")
        if body.get("previous_response_id"):
            raise WireError(
                "invalid_request",
                "previous_response_id is not supported by the ampbench simulator: send the whole conversation in input.",
                param="previous_response_id",
            )
        if "input" not in body:
            raise WireError("invalid_request", "Missing required parameter: 'input'.", param="input")
        system = [str(body["instructions"])] if isinstance(body.get("instructions"), str) else []
        messages: list[ViewMessage] = []
        raw_input = body["input"]
        if isinstance(raw_input, str):
            messages.append(ViewMessage(role="user", text=raw_input))
        elif isinstance(raw_input, list):
            for index, item in enumerate(raw_input):
                self._add_item(index, item, system, messages)
        else:
            raise WireError(
                "invalid_request", "Invalid type for 'input': expected a string or an array.", param="input"
            )
        max_tokens = body.get("max_output_tokens")
        return View(
            wire=self.name,
            model=body["model"],
            system="\n\n".join(system),
            messages=messages,
            tools=self._tools(body.get("tools")),
            tool_choice=openai_tool_choice(body.get("tool_choice")),
            stream=body.get("stream") is True,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            echo={k: body[k] for k in _ECHOED if k in body},
        )

    @staticmethod
    def _tools(tools: Any) -> list[ToolDef]:
        out: list[ToolDef] = []
        for i, tool in enumerate(tools or []):
            if not isinstance(tool, dict) or tool.get("type") != "function":
                continue  # hosted tools (web_search, file_search, ...) run on OpenAI's side
            if not isinstance(tool.get("name"), str):
                raise WireError(
                    "invalid_request",
                    f"Missing required parameter: 'tools[{i}].name'.",
                    param=f"tools[{i}].name",
                )
            out.append(
                ToolDef(
                    tool["name"],
                    str(tool.get("description") or ""),
                    tool.get("parameters") or _EMPTY_PARAMETERS,
                )
            )
        return out

    @staticmethod
    def _assistant(messages: list[ViewMessage]) -> ViewMessage:
        """The assistant message that output items belong to: consecutive items form one turn."""
        if messages and messages[-1].role == "assistant":
            return messages[-1]
        messages.append(ViewMessage(role="assistant"))
        return messages[-1]

    def _add_item(self, index: int, item: Any, system: list[str], messages: list[ViewMessage]) -> None:
        if not isinstance(item, dict):
            raise WireError(
                "invalid_request",
                f"Invalid type for 'input[{index}]': expected an object.",
                param=f"input[{index}]",
            )
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            text, attachments = text_of_parts(item.get("content"), _TEXT_PARTS)
            if role in ("system", "developer"):
                system.append(text)
            elif role == "user":
                messages.append(ViewMessage(role="user", text=text, attachments=attachments))
            elif role == "assistant":
                target = self._assistant(messages)
                target.text = f"{target.text}\n{text}" if target.text else text
            else:
                raise WireError(
                    "invalid_request",
                    f"Invalid value: '{role}' for 'input[{index}].role'.",
                    param=f"input[{index}].role",
                )
        elif kind == "function_call":
            call = CallIn(
                str(item.get("call_id", "")),
                str(item.get("name", "")),
                parse_arguments(item.get("arguments")),
            )
            self._assistant(messages).tool_calls.append(call)
        elif kind == "reasoning":
            summary, _ = text_of_parts(item.get("summary"), _TEXT_PARTS)
            target = self._assistant(messages)
            target.reasoning += summary + str(item.get("encrypted_content") or "")
        elif kind == "function_call_output":
            output, attachments = text_of_parts(item.get("output"), _TEXT_PARTS)
            result = ResultIn(str(item.get("call_id", "")), output)
            if messages and messages[-1].role == "tool":
                messages[-1].tool_results.append(result)
                messages[-1].attachments += attachments
            else:
                messages.append(ViewMessage(role="tool", tool_results=[result], attachments=attachments))
        else:
            # Item references and hosted-tool items: count their size as assistant context.
            self._assistant(messages).text += compact_json(item)

    # --- responses -----------------------------------------------------------------------

    @staticmethod
    def _ids(ctx: RenderContext) -> dict[str, str]:
        return {
            "resp": "resp_" + make_hex_id(ctx.key, "resp", 50),
            "msg": "msg_" + make_hex_id(ctx.key, "msg", 50),
            "rs": "rs_" + make_hex_id(ctx.key, "rs", 50),
        }

    def _items(self, reply: Reply, ctx: RenderContext) -> list[dict[str, Any]]:
        ids = self._ids(ctx)
        items: list[dict[str, Any]] = []
        if reply.reasoning:
            items.append(
                {
                    "id": ids["rs"],
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": reply.reasoning}],
                }
            )
        if reply.text:
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": reply.text}
            items.append(
                {
                    "id": ids["msg"],
                    "type": "message",
                    "status": "completed",
                    "content": [part],
                    "role": "assistant",
                }
            )
        for i, call in enumerate(reply.tool_calls):
            items.append(
                {
                    "id": "fc_" + make_hex_id(ctx.key, f"fc-{i}", 50),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": compact_json(call.arguments),
                    "call_id": "call_" + make_id(ctx.key, f"call-{i}", 24),
                    "name": call.name,
                }
            )
        return items

    @staticmethod
    def _usage(ctx: RenderContext) -> dict[str, Any]:
        t = ctx.tokens
        return {
            "input_tokens": t.input,
            "input_tokens_details": {"cached_tokens": t.cache_read},
            "output_tokens": t.output,
            "output_tokens_details": {"reasoning_tokens": t.reasoning},
            "total_tokens": t.input + t.output,
        }

    def _response(
        self,
        view: View,
        ctx: RenderContext,
        *,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
    ) -> dict[str, Any]:
        echo = view.echo
        return {
            "id": self._ids(ctx)["resp"],
            "object": "response",
            "created_at": created_at(ctx.key),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": echo.get("instructions"),
            "max_output_tokens": view.max_tokens,
            "max_tool_calls": None,
            "model": view.model,
            "output": output,
            "parallel_tool_calls": echo.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": echo.get("store", True),
            "temperature": echo.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": echo.get("tool_choice", "auto"),
            "tools": echo.get("tools", []),
            "top_logprobs": 0,
            "top_p": echo.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": echo.get("metadata") or {},
        }

    def render(self, view: View, reply: Reply, ctx: RenderContext) -> dict[str, Any]:
        return self._response(
            view, ctx, status="completed", output=self._items(reply, ctx), usage=self._usage(ctx)
        )

    def render_stream(self, view: View, reply: Reply, ctx: RenderContext) -> list[bytes]:
        frames: list[bytes] = []

        def emit(event: dict[str, Any]) -> None:
            # Every event carries its position; the SDK's stream state checks the order.
            typed = {"type": event.pop("type"), "sequence_number": len(frames), **event}
            frames.append(sse(typed, typed["type"]))

        pending = self._response(view, ctx, status="in_progress", output=[], usage=None)
        emit({"type": "response.created", "response": pending})
        emit({"type": "response.in_progress", "response": pending})
        items = self._items(reply, ctx)
        for index, item in enumerate(items):
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "reasoning":
                text = item["summary"][0]["text"]
                emit(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": {**item, "summary": []},
                    }
                )
                part = {"type": "summary_text", "text": ""}
                emit(
                    {
                        "type": "response.reasoning_summary_part.added",
                        **where,
                        "summary_index": 0,
                        "part": part,
                    }
                )
                for piece in text_pieces(text):
                    emit(
                        {
                            "type": "response.reasoning_summary_text.delta",
                            **where,
                            "summary_index": 0,
                            "delta": piece,
                        }
                    )
                emit(
                    {
                        "type": "response.reasoning_summary_text.done",
                        **where,
                        "summary_index": 0,
                        "text": text,
                    }
                )
                emit(
                    {
                        "type": "response.reasoning_summary_part.done",
                        **where,
                        "summary_index": 0,
                        "part": {**part, "text": text},
                    }
                )
            elif item["type"] == "message":
                text = item["content"][0]["text"]
                emit(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": {**item, "status": "in_progress", "content": []},
                    }
                )
                part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                emit({"type": "response.content_part.added", **where, "content_index": 0, "part": part})
                for piece in text_pieces(text):
                    emit(
                        {
                            "type": "response.output_text.delta",
                            **where,
                            "content_index": 0,
                            "delta": piece,
                            "logprobs": [],
                        }
                    )
                emit(
                    {
                        "type": "response.output_text.done",
                        **where,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    }
                )
                emit(
                    {
                        "type": "response.content_part.done",
                        **where,
                        "content_index": 0,
                        "part": {**part, "text": text},
                    }
                )
            else:
                arguments = item["arguments"]
                emit(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": {**item, "status": "in_progress", "arguments": ""},
                    }
                )
                for piece in json_pieces(arguments):
                    emit({"type": "response.function_call_arguments.delta", **where, "delta": piece})
                emit(
                    {
                        "type": "response.function_call_arguments.done",
                        **where,
                        "name": item["name"],
                        "arguments": arguments,
                    }
                )
            emit({"type": "response.output_item.done", "output_index": index, "item": item})
        final = self._response(view, ctx, status="completed", output=items, usage=self._usage(ctx))
        emit({"type": "response.completed", "response": final})
        return frames

    def error(
        self, kind: ErrorKind, message: str, *, param: str | None, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        return openai_error(kind, message, param=param)

    @staticmethod
    def not_found_message(model: str) -> str:
        return openai_not_found_message(model)
