"""What a chat-model call is asked for and what it returns, independent of any backend."""

from __future__ import annotations

import random
from collections.abc import Callable
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


@dataclass(frozen=True)
class OutputProblem:
    """Why a reply cannot be used: its kind, for counting, and the reason the repair round tells the model."""

    kind: str
    detail: str


ReplyCheck = Callable[[Any], OutputProblem | None]
"""A caller's own check of a reply (a ``Completion`` that passed the format checks, ``parsed`` set): the
problem, which goes through the same repair round and counting as a format problem, or ``None``."""


OfflineAnswer = Callable[[random.Random], Any]
"""A caller's own schema-valid reply, drawn from the random source it is given: what the dry-run model answers
where a value sampled from the schema could never pass the caller's checks (a goal naming real tools and the
fields they return), so that offline runs reach the stages behind those checks."""


class SamplingOptions(BaseModel):
    """How replies are sampled: a role's settings give the defaults, a call may override them.

    Each option is a request-body parameter of the same name (only ``max_tokens`` may go out as
    ``max_completion_tokens``), sent only when set; a new sampling parameter is one more field here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1, description="nucleus sampling: the probability mass kept")
    max_tokens: int | None = Field(default=None, ge=0, description="0 asks for an empty reply; real servers refuse it")


class RequestOptions(SamplingOptions):
    """Everything one call asks for besides the messages, passed unchanged through every layer down to
    the request body; a reply and its repair share them."""

    tools: tuple[ToolSpec, ...] | None = None
    tool_choice: ToolChoice | None = None
    response_format: ResponseSchema | None = None
    seed: int | None = None
    check: ReplyCheck | None = Field(
        default=None, exclude=True, description="what the caller checks in a reply beyond its format; never sent"
    )
    offline_answer: OfflineAnswer | None = Field(
        default=None,
        exclude=True,
        description="what an offline model answers instead of a value sampled from the response format; never sent",
    )

    def over(self, defaults: SamplingOptions) -> RequestOptions:
        """These options, with ``defaults``' sampling options wherever this call leaves one unset."""
        unset = {name: getattr(defaults, name) for name in SamplingOptions.model_fields if getattr(self, name) is None}
        return self.model_copy(update=unset)

    def body_parameters(self) -> dict[str, Any]:
        """The options that go into the request body as they are (all but the tools and the response
        format, which have their own wire forms), each only when set."""
        return self.model_dump(exclude={"tools", "tool_choice", "response_format"}, exclude_none=True)


NO_OPTIONS = RequestOptions()
"""A plain request: no tools, no response format, the role's sampling defaults."""


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
        return AssistantMessage(
            content=self.content,
            tool_calls=self.tool_calls or None,
            reasoning=self.reasoning,
            finish_reason=self.finish_reason,
        )
