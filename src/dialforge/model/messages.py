"""Chat messages in the OpenAI shape, the lingua franca of servers and trainers.

Assistant tool-call ``arguments`` stay a JSON *string*, exactly as the OpenAI API and
fine-tuning format carry them; ``ToolCall.parsed_arguments`` decodes them when needed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionCall(_Strict):
    name: str
    arguments: str = "{}"


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @property
    def name(self) -> str:
        return self.function.name

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError when they are not a JSON object."""
        try:
            value = orjson.loads(self.function.arguments)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"arguments of tool call {self.id!r} are not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError(f"arguments of tool call {self.id!r} are JSON but not an object")
        return value

    @classmethod
    def make(cls, id: str, name: str, arguments: dict[str, Any] | str) -> ToolCall:
        text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
        return cls(id=id, function=FunctionCall(name=name, arguments=text))


class SystemMessage(_Strict):
    role: Literal["system"] = "system"
    content: str


class UserMessage(_Strict):
    role: Literal["user"] = "user"
    content: str


class AssistantMessage(_Strict):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning: str | None = None
    finish_reason: str | None = Field(
        default=None,
        description="why the model stopped writing this reply (stop, tool_calls...), as its server said: kept in "
        "the record to show how a message ended, never sent to a model nor exported",
    )


class ToolMessage(_Strict):
    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str
    content: str


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]
MESSAGE_LIST: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


def parse_messages(raw: list[dict[str, Any]]) -> list[Message]:
    """Validate a list of OpenAI-shaped message dicts into typed messages."""
    return MESSAGE_LIST.validate_python(raw)


def to_openai(message: Message, *, keep_reasoning: bool = False) -> dict[str, Any]:
    """The message as an OpenAI chat-completions request dict.

    Written out by hand rather than with ``model_dump``: it runs for every message of every
    request, and is several times cheaper this way.
    """
    if isinstance(message, AssistantMessage):
        data: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            data["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in message.tool_calls
            ]
        if keep_reasoning and message.reasoning is not None:
            data["reasoning"] = message.reasoning
        return data
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "name": message.name, "content": message.content}
    return {"role": message.role, "content": message.content}
