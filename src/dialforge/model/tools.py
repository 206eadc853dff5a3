"""Tool specifications in the OpenAI function-tool format, plus what we know beyond it.

``returns`` (a JSON schema of the result) and ``sql`` (an implementation) never reach the
model server or the trainer: ``to_openai`` emits only what the OpenAI format defines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialforge.json_schema.checks import json_schema_problem

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_schema(schema: dict[str, Any], what: str) -> dict[str, Any]:
    if problem := json_schema_problem(schema, what):
        raise ValueError(problem)
    return schema


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    returns: dict[str, Any] | None = None
    sql: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_openai_safe(cls, name: str) -> str:
        if not TOOL_NAME.match(name):
            raise ValueError(
                f"tool name {name!r} must be 1-64 characters of letters, digits, '_' or '-' "
                "(the OpenAI function-name rule)"
            )
        return name

    @field_validator("parameters")
    @classmethod
    def _parameters_are_an_object_schema(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        _check_schema(parameters, "parameters")
        if parameters.get("type") != "object":
            raise ValueError('parameters must be a JSON schema with "type": "object"')
        missing = set(parameters.get("required", [])) - set(parameters.get("properties", {}))
        if missing:
            raise ValueError(f"required names parameters that are not in properties: {sorted(missing)}")
        return parameters

    @field_validator("returns")
    @classmethod
    def _returns_is_a_schema(cls, returns: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if returns is None else _check_schema(returns, "returns")

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @classmethod
    def from_openai(cls, tool: dict[str, Any]) -> ToolSpec:
        """Accept both ``{"type": "function", "function": {...}}`` and a bare function dict."""
        function = tool.get("function", tool)
        return cls(
            name=function["name"],
            description=function.get("description", ""),
            parameters=function.get("parameters") or {"type": "object", "properties": {}},
            returns=tool.get("returns", function.get("returns")),
            sql=tool.get("sql", function.get("sql")),
        )


def with_brought_tools(own: Sequence[ToolSpec], brought: Sequence[ToolSpec]) -> list[ToolSpec]:
    """A continued conversation's tools: the domain's (``own``), then those the conversation brought that the domain
    lacks; where both have a tool of one name, the domain's is the one kept."""
    names = {tool.name for tool in own}
    return [*own, *(tool for tool in brought if tool.name not in names)]
