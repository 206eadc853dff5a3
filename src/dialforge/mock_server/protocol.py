"""The OpenAI chat-completions wire format as the mock reads and writes it.

Reading is lenient, like real servers: extra fields are ignored, ``developer`` is a system
message, content may be a list of text parts, tool messages may omit ``name``. Everything
repeated across requests (each message, the tool list, the response format) is parsed once and
cached by its canonical bytes, because a growing conversation resends the same prefix every turn;
the cached objects are shared between requests, so nothing downstream may mutate them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import orjson
from pydantic import TypeAdapter, ValidationError

from dialforge.llm.completion import Completion, ResponseSchema, ToolChoice
from dialforge.model.messages import AssistantMessage, Message, ToolMessage, to_openai
from dialforge.model.tools import ToolSpec

ReasoningMode = Literal["none", "field", "think"]

_SORTED = orjson.OPT_SORT_KEYS
_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)
_ROLE_ALIASES = {"developer": "system"}
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_JSON_OBJECT = ResponseSchema(name="json_object", json_schema={"type": "object"}, strict=False)


class RequestError(Exception):
    """A request the server refuses with 400; ``param`` names the offending field, as OpenAI does."""

    def __init__(self, message: str, *, code: str = "invalid_request", param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What the mock needs from one request; ``prompt_pieces`` is the prompt in canonical bytes."""

    raw_messages: list[dict[str, Any]]
    messages: list[Message]
    tools: tuple[ToolSpec, ...] | None
    tool_choice: ToolChoice | None
    response_format: ResponseSchema | None
    json_schema_requested: bool
    max_tokens: int | None
    seed: int | None
    stream: bool
    prompt_pieces: tuple[bytes, ...]
    prompt_chars: int

    def without_tools(self) -> ChatRequest:
        """The request as a chat template without tool support renders it: the tools and the tool choice are
        gone, from the prompt too (the tools are the first prompt piece when present)."""
        pieces = self.prompt_pieces[1:] if self.tools else self.prompt_pieces
        return replace(self, tools=None, tool_choice=None, prompt_pieces=pieces, prompt_chars=sum(map(len, pieces)))


def parse_chat_request(body: bytes) -> ChatRequest:
    """The request body as a ``ChatRequest``; raises ``RequestError`` for anything a server would refuse."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise RequestError("messages must be a non-empty list", param="messages")

    pieces: list[bytes] = []
    raw_tools = data.get("tools")
    tools = None
    if raw_tools:
        if not isinstance(raw_tools, list):
            raise RequestError("tools must be a list", param="tools")
        tools_bytes = orjson.dumps(raw_tools, option=_SORTED)
        tools = _parse_tools(tools_bytes)
        pieces.append(tools_bytes)

    messages: list[Message] = []
    for index, raw in enumerate(raw_messages):
        if not isinstance(raw, dict) or raw.get("role") not in _ROLES:
            raise RequestError(
                f"messages[{index}] must be an object with a role among {sorted(_ROLES)}",
                param=f"messages[{index}]",
            )
        piece = orjson.dumps(raw, option=_SORTED)
        pieces.append(piece)
        try:
            messages.append(_parse_message(piece))
        except ValidationError as exc:
            raise RequestError(
                f"messages[{index}] is not a valid {raw['role']} message: {exc.errors()[0]['msg']}",
                param=f"messages[{index}]",
            ) from None
    messages = _name_tool_messages(messages)

    response_format, json_schema_requested = _parse_response_format(data.get("response_format"))
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    return ChatRequest(
        raw_messages=raw_messages,
        messages=messages,
        tools=tools,
        tool_choice=_parse_tool_choice(data.get("tool_choice")),
        response_format=response_format,
        json_schema_requested=json_schema_requested,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        seed=data.get("seed") if isinstance(data.get("seed"), int) else None,
        stream=bool(data.get("stream")),
        prompt_pieces=tuple(pieces),
        prompt_chars=sum(map(len, pieces)),
    )


def _text(content: Any) -> str | None:
    """Content as text: a list of parts keeps its text parts; other parts (images) are dropped."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


@lru_cache(maxsize=16384)
def _parse_message(piece: bytes) -> Message:
    """One message from its canonical bytes, keeping only the fields the data model knows."""
    raw = orjson.loads(piece)
    role = _ROLE_ALIASES.get(raw["role"], raw["role"])
    content = _text(raw.get("content"))
    clean: dict[str, Any] = {"role": role}
    if role == "assistant":
        clean["content"] = content
        reasoning = raw.get("reasoning_content") or raw.get("reasoning")
        if reasoning:
            clean["reasoning"] = reasoning
        if raw.get("tool_calls"):
            clean["tool_calls"] = [_clean_tool_call(call) for call in raw["tool_calls"]]
    else:
        clean["content"] = content or ""
    if role == "tool":
        clean["tool_call_id"] = raw.get("tool_call_id")
        clean["name"] = raw.get("name") or ""
    return _MESSAGE.validate_python(clean)


def _clean_tool_call(call: Any) -> Any:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = call["function"]
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return {"id": call.get("id"), "function": {"name": function.get("name"), "arguments": arguments}}


def _name_tool_messages(messages: list[Message]) -> list[Message]:
    """Give nameless tool messages the name of the call they answer (OpenAI does not require it)."""
    if not any(isinstance(m, ToolMessage) and not m.name for m in messages):
        return messages
    names = {call.id: call.name for m in messages if m.role == "assistant" for call in m.tool_calls or ()}
    return [
        m.model_copy(update={"name": names.get(m.tool_call_id, "")}) if isinstance(m, ToolMessage) and not m.name else m
        for m in messages
    ]


@lru_cache(maxsize=1024)
def _parse_tools(tools_bytes: bytes) -> tuple[ToolSpec, ...]:
    tools = []
    for index, raw in enumerate(orjson.loads(tools_bytes)):
        try:
            tools.append(ToolSpec.from_openai(raw))
        except (ValidationError, KeyError, TypeError, AttributeError) as exc:
            raise RequestError(f"tools[{index}] is not a valid function tool: {exc}", param=f"tools[{index}]") from None
    return tuple(tools)


def _parse_tool_choice(choice: object) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        return choice
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(name := function.get("name"), str) and name:
        return name
    raise RequestError(
        'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}',
        param="tool_choice",
    )


def _parse_response_format(response_format: Any) -> tuple[ResponseSchema | None, bool]:
    """The schema asked for, and whether it was asked as ``json_schema`` (what some servers refuse)."""
    if response_format is None:
        return None, False
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None, False
    if kind == "json_object":
        return _JSON_OBJECT, False
    if kind == "json_schema":
        return _response_schema(orjson.dumps(response_format.get("json_schema"), option=_SORTED)), True
    raise RequestError('response_format.type must be "text", "json_object" or "json_schema"', param="response_format")


@lru_cache(maxsize=1024)
def _response_schema(spec_bytes: bytes) -> ResponseSchema:
    spec = orjson.loads(spec_bytes)
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise RequestError(
            "response_format.json_schema must be an object with a schema", param="response_format.json_schema"
        )
    return ResponseSchema(
        name=spec.get("name") or "response", json_schema=spec["schema"], strict=bool(spec.get("strict", False))
    )


def estimate_tokens(chars: int) -> int:
    """A rough token count (four characters per token): the mock has no tokenizer."""
    return (chars + 3) // 4


def chat_completion_body(
    completion: Completion,
    *,
    request_id: str,
    created: int,
    model: str,
    prompt_chars: int,
    reasoning: ReasoningMode,
) -> dict[str, Any]:
    """The ``chat.completion`` object for a reply, with reasoning placed as the server mode says."""
    message = to_openai(AssistantMessage(content=completion.content, tool_calls=completion.tool_calls or None))
    thought = completion.reasoning if reasoning != "none" else None
    if thought and reasoning == "field":
        message["reasoning_content"] = thought
    elif thought:
        message["content"] = f"<think>\n{thought}\n</think>\n\n{completion.content or ''}"
    completion_chars = len(message["content"] or "") + len(message.get("reasoning_content") or "")
    completion_chars += sum(len(c.function.name) + len(c.function.arguments) for c in completion.tool_calls)
    finish_reason = completion.finish_reason or ("tool_calls" if completion.tool_calls else "stop")
    prompt_tokens = estimate_tokens(prompt_chars)
    completion_tokens = estimate_tokens(completion_chars)
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": estimate_tokens(len(thought or ""))},
        },
    }


def error_body(message: str, *, type: str, code: str, param: str | None = None) -> dict[str, Any]:
    """An error in the OpenAI shape, which clients (and the openai package) know how to read."""
    return {"error": {"message": message, "type": type, "code": code, "param": param}}
