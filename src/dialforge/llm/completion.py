"""What a chat-model call is asked for and what it returns, independent of any backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialforge.model.messages import AssistantMessage, ToolCall
from dialforge.model.tools import ToolSpec
from dialforge.model.usage import Usage

Role = Literal["generator", "user", "agent", "tool", "judge"]
ROLES: tuple[Role, ...] = ("generator", "user", "agent", "tool", "judge")

ToolChoice = str
"""``"auto"``, ``"none"``, ``"required"`` or the name of one tool that must be called."""


class ResponseSchema(BaseModel):
    """A JSON schema the reply must satisfy (OpenAI ``response_format`` of type ``json_schema``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    json_schema: dict[str, Any]
    strict: bool = Field(
        default=False,
        description="OpenAI's strict mode; it refuses schemas with optional properties, so it is opt-in",
    )

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.json_schema, "strict": self.strict},
        }


@dataclass(frozen=True, slots=True)
class CompletionOptions:
    """Everything a caller asks for besides the messages; a reply and its repair share them."""

    tools: tuple[ToolSpec, ...] | None = None
    tool_choice: ToolChoice | None = None
    response_format: ResponseSchema | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None


class Completion(BaseModel):
    """One assistant reply: text, tool calls and reasoning kept apart, with its cost."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    reasoning: str | None = None
    finish_reason: str | None = None
    model: str = ""
    usage: Usage = Field(default_factory=lambda: Usage(calls=1))
    parsed: Any = Field(default=None, description="the JSON value, when a ResponseSchema was requested")

    def to_message(self) -> AssistantMessage:
        return AssistantMessage(content=self.content, tool_calls=self.tool_calls or None, reasoning=self.reasoning)
