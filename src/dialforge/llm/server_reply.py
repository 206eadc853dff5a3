"""Reading a ``chat.completion`` body, whichever OpenAI-compatible server wrote it.

Servers differ in small ways this module absorbs: reasoning as ``reasoning_content``,
``reasoning`` or inline ``<think>``; ``content`` as a list of parts; tool-call ``arguments`` as
an object or an empty string; missing or numeric call ids; the legacy ``function_call`` field;
and tool calls left as Hermes-style ``<tool_call>{...}</tool_call>`` text when the server runs
no tool parser (llama.cpp without ``--jinja``, vLLM without ``--tool-call-parser``). Anything
else unexpected raises ``BadResponse``, which the transport retries and counts.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson

from dialforge.llm.completion import Completion
from dialforge.llm.reasoning import split_reasoning
from dialforge.model.messages import FunctionCall, ToolCall
from dialforge.model.usage import Usage

_TEXT_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


class BadResponse(ValueError):
    """A 200 whose body is not a usable chat completion; retried like a server error."""


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments if arguments.strip() else "{}"
    return orjson.dumps(arguments if arguments is not None else {}).decode()


def _tool_call(raw: Any) -> ToolCall:
    function = raw.get("function") or {}
    call_id = raw.get("id")
    return ToolCall(
        id=str(call_id) if call_id not in (None, "") else new_call_id(),
        function=FunctionCall(
            name=str(function.get("name") or ""), arguments=_arguments_text(function.get("arguments"))
        ),
    )


def _text(content: Any) -> str | None:
    """Content as text: a list of parts keeps its text parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict)) or None
    raise BadResponse(f"message content is a {type(content).__name__}, not text")


def _calls_in_text(content: str | None) -> tuple[str | None, list[ToolCall]]:
    """Hermes-style tool calls written into the text, taken out of it."""
    if not content or "<tool_call>" not in content:
        return content, []
    calls = []
    for match in _TEXT_TOOL_CALL.finditer(content):
        try:
            raw = orjson.loads(match.group(1))
        except orjson.JSONDecodeError:
            continue  # left in the text: the output policy will see an unusable reply
        if isinstance(raw, dict) and "name" in raw:
            calls.append(_tool_call({"function": raw}))
    if not calls:
        return content, []
    rest = _TEXT_TOOL_CALL.sub("", content).strip()
    return rest or None, calls


def completion_from_response(data: Any, model: str, seconds: float) -> Completion:
    """Build a ``Completion`` from a chat.completion body; ``BadResponse`` when it is not one."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
        content, inline_reasoning = split_reasoning(_text(message.get("content")))
        reasoning = message.get("reasoning_content") or message.get("reasoning") or inline_reasoning
        raw_calls = list(message.get("tool_calls") or ())
        if message.get("function_call"):
            raw_calls.append({"function": message["function_call"]})
        calls = [_tool_call(raw) for raw in raw_calls]
        if not calls:
            content, calls = _calls_in_text(content)
        usage = data.get("usage") or {}
        details = usage.get("completion_tokens_details") or {}
        return Completion(
            content=content,
            tool_calls=calls,
            reasoning=reasoning if isinstance(reasoning, str) else None,
            finish_reason=choice.get("finish_reason"),
            model=str(data.get("model") or model),
            usage=Usage(
                calls=1,
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                reasoning_tokens=int(details.get("reasoning_tokens") or 0),
                seconds=seconds,
            ),
        )
    except BadResponse:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise BadResponse(f"not a chat completion ({type(exc).__name__}: {exc})"[:300]) from None
