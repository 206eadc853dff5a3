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

    @classmethod
    def from_entry(cls, entry: Any) -> SQLTool:
        """One entry of a tools file: our own ``{name, description, parameters, sql, kind, returns}``, or an
        OpenAI function spec carrying ``sql`` (beside ``function`` or in it); checked as the agent will see it.
        ``ValueError`` (pydantic's ``ValidationError`` among them) names what is wrong."""
        if not isinstance(entry, dict):
            raise ValueError(f"expected a JSON object, found {type(entry).__name__}")
        fields = entry
        if isinstance(entry.get("function"), dict):
            function = entry["function"]
            fields = {key: function[key] for key in ("name", "description", "parameters") if key in function}
            fields.setdefault("description", "")
            for key in ("sql", "kind", "returns"):
                if key in entry or key in function:
                    fields[key] = entry.get(key, function.get(key))
        tool = cls.model_validate(fields)
        tool.to_spec()
        return tool

    def to_spec(self) -> ToolSpec:
        """The OpenAI-format spec (validated: name, parameter schema) that the agent is shown."""
        return ToolSpec(
            name=self.name, description=self.description, parameters=self.parameters, returns=self.returns, sql=self.sql
        )
