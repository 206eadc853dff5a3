"""SQL tools: ``{name, description, parameters, sql}`` with ``:named`` bind parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dialforge.model.tools import ToolSpec

SQLToolKind = Literal["read", "write"]


class SQLTool(BaseModel):
    """One SQL statement exposed to the agent as a function.

    Parameters missing from a call bind as NULL, so optional filters read
    ``(:status IS NULL OR status = :status)``.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    sql: str
    kind: SQLToolKind = "read"
    returns: dict[str, Any] | None = None

    def to_spec(self) -> ToolSpec:
        """The OpenAI-format spec (validated: name, parameter schema) that the agent is shown."""
        return ToolSpec(
            name=self.name, description=self.description, parameters=self.parameters, returns=self.returns, sql=self.sql
        )
