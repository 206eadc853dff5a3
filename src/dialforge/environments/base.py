"""What the dialogue engine needs from any tool backend: real SQL, Python functions, or a model.

One lifecycle for every kind: a domain's ``EnvironmentFactory`` makes each dialogue its own ``Environment``
(``new``) or rebuilds one from what a stored state kept of it (``restore``); the environment answers tool
calls, says what its state is (``snapshot``, ``digest``), what changed (``diff``), whether a task's checks
hold (``verify``), and lets go of what it holds (``close``). The engine knows nothing else about it, so a new
kind of environment is one new module and a config key.

A tool call never raises into the dialogue: problems come back as a ``ToolResult`` carrying a
structured ``ToolError`` that the agent can read and recover from, as it would from a real API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, Self, runtime_checkable

import orjson
from pydantic import BaseModel, ConfigDict, Field

from dialforge.model.dialogue import ToolFaultKind
from dialforge.model.messages import Message
from dialforge.model.tasks import Check, CommandCheck, PythonCheck, SQLCheck
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


class CheckOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    sql: str = ""
    python: str | None = None
    """a Python check's function and arguments (``PythonCheck.source``); ``sql`` is empty then"""
    command: str | None = None
    """a command check's command line (``CommandCheck.source``); ``sql`` is empty then"""
    passed: bool
    detail: str

    @classmethod
    def of(cls, check: Check, *, passed: bool, detail: str) -> CheckOutcome:
        """The outcome of ``check``, naming it in the field of its kind."""
        field = "python" if isinstance(check, PythonCheck) else "command" if isinstance(check, CommandCheck) else "sql"
        return cls(description=check.description, passed=passed, detail=detail, **{field: check.source})

    @classmethod
    def cannot_run(cls, check: Check, where: str) -> CheckOutcome:
        """A check of another kind of state than ``where``: it fails, saying so."""
        kind = {PythonCheck: "a Python", CommandCheck: "a command", SQLCheck: "a SQL"}[type(check)]
        return cls.of(check, passed=False, detail=f"{kind} check cannot run on {where}")

    @property
    def source(self) -> str:
        """The check as written."""
        return self.python if self.python is not None else self.command if self.command is not None else self.sql


class Verification(BaseModel):
    """What a dialogue did to its environment, as facts beside the model judge: digests before and after,
    the diff, and whether each of its tasks' checks holds on the final state. Stored with the dialogue."""

    model_config = ConfigDict(extra="forbid")

    initial_digest: str
    final_digest: str
    diff: StateDiff
    checks: list[CheckOutcome] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


ExecutedCall = tuple[str, dict[str, Any]]
"""A tool call that reached the environment and ran: its name and arguments."""


@runtime_checkable
class Environment(Protocol):
    """One dialogue's tools and the state they act on, isolated from every other dialogue's."""

    def tools(self) -> list[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any], *, conversation: Sequence[Message] = ()) -> ToolResult:
        """Run one call; ``conversation`` (the dialogue so far) is there for backends that need to read it, such
        as a model playing the service."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready data, with a ``kind``, from which the factory's ``restore`` rebuilds this state."""
        ...

    def digest(self) -> str:
        """A stable hash of the state: equal states have equal digests, whatever led to them."""
        ...

    def diff(self, other: Self) -> StateDiff:
        """What changed from ``other`` (usually the dialogue's initial state) to this one."""
        ...

    def verify(self, checks: Sequence[Check]) -> Verification | None:
        """The checks on this (final) state and the diff from the dialogue's start; ``None`` where nothing real
        can be checked (a model played the tools)."""
        ...

    def close(self) -> None:
        """Let go of what the state holds (connections, processes); the environment is not used again."""
        ...


class EnvironmentFactory(Protocol):
    """A domain's source of environments: one per dialogue, new or rebuilt after a crash."""

    prompts: tuple[str, ...]
    """The packaged prompts its environments' requests are made of (a model playing the tools), for provenance."""

    def tools(self) -> list[ToolSpec]: ...

    def new(self, *, seed: int, clock: str) -> Environment:
        """A fresh state for one dialogue; ``clock`` (ISO time) is the dialogue's 'now'."""
        ...

    async def restore(self, snapshot: dict[str, Any], *, seed: int, calls: Sequence[ExecutedCall]) -> Environment:
        """The state ``snapshot`` describes; ``calls`` are the dialogue's calls that ran so far, in order, for
        kinds that rebuild a state by running them again. Raises ``RestoreError`` when it cannot be rebuilt."""
        ...

    async def close(self) -> None:
        """The run is over: end what is still running (servers of dialogues an interruption cut short)."""
        ...


@runtime_checkable
class StateViews(Protocol):
    """A factory whose initial state goal writers are shown a part of, so that goals name what is really there."""

    def view(self, *, seed: int, tokens: int) -> str:
        """About ``tokens`` of the initial state as text, drawn with ``seed`` (each batch of goals its own)."""
        ...


class RestoreError(Exception):
    """A stored state could not be rebuilt (e.g. replaying its calls gave another state)."""
