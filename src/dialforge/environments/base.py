"""What the dialogue engine needs from any tool backend: real SQL, Python functions, or a model.

A tool call never raises into the dialogue: problems come back as a ``ToolResult`` carrying a
structured ``ToolError`` that the agent can read and recover from, as it would from a real API.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, Self, runtime_checkable

import orjson
from pydantic import BaseModel, ConfigDict, Field

from dialforge.model.dialogue import ToolFaultKind
from dialforge.model.tools import ToolSpec

ToolErrorKind = Literal[
    "unknown_tool",
    "invalid_arguments",
    "not_found",
    "constraint_violation",
    "refused",
    "too_large",
    "execution_error",
    ToolFaultKind,  # timeout, unavailable, rate_limited: the service, not the call, failed
]


class ToolError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ToolErrorKind
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ToolResult(BaseModel):
    """A tool's answer: JSON content, or an error; ``truncated`` when caps cut the content short."""

    model_config = ConfigDict(extra="forbid")

    content: Any = None
    error: ToolError | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failure(cls, kind: ToolErrorKind, message: str, **details: Any) -> ToolResult:
        return cls(error=ToolError(kind=kind, message=message, details=details))

    def to_text(self) -> str:
        """The ``content`` of the tool message the agent sees."""
        if self.error is not None:
            return orjson.dumps({"error": self.error.model_dump(exclude_defaults=True)}).decode()
        if self.truncated:
            return orjson.dumps({"result": self.content, "truncated": True}).decode()
        return orjson.dumps(self.content).decode()


def is_error_text(content: str) -> bool:
    """Whether a tool message's content is an error as ``ToolResult.to_text`` writes it."""
    if not content.startswith('{"error"'):
        return False
    try:
        return "error" in orjson.loads(content)
    except orjson.JSONDecodeError:
        return False


class TableDiff(BaseModel):
    """Rows of one table that differ between two states, keyed by primary key (or rowid)."""

    model_config = ConfigDict(extra="forbid")

    inserted: list[dict[str, Any]] = Field(default_factory=list)
    updated: list[dict[str, Any]] = Field(default_factory=list, description="{key, before, after} per row")
    deleted: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.inserted or self.updated or self.deleted)


class StateDiff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: dict[str, TableDiff] = Field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return all(diff.empty for diff in self.tables.values())

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {"inserted": len(d.inserted), "updated": len(d.updated), "deleted": len(d.deleted)}
            for name, d in self.tables.items()
            if not d.empty
        }


@runtime_checkable
class Environment(Protocol):
    """Tools plus the state they act on; ``fork`` gives each dialogue its own isolated state.

    A state is compared only with a state of its own kind (a SQL fork's rows mean nothing next to a call log),
    hence ``Self`` in ``fork`` and ``diff``.
    """

    def tools(self) -> list[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult: ...

    def fork(self) -> Self: ...

    def digest(self) -> str:
        """A stable hash of the state: equal states have equal digests, whatever led to them."""
        ...

    def diff(self, other: Self) -> StateDiff:
        """What changed from ``other`` (usually the parent state) to this one."""
        ...
