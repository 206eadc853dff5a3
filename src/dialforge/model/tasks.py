"""Tasks: the latent goals that dialogues are generated to accomplish (docs/method.md, "Tasks")."""

from __future__ import annotations

import shlex
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

Difficulty = Literal["easy", "medium", "hard"]
GoalKind = Literal["ordinary", "forbidden", "constraint", "missing_entity", "ambiguous_entity"]
"""What a goal runs into. ``ordinary``: it can be done as asked. The others are unhappy paths, written on purpose
so that an agent learns to handle them: ``forbidden`` asks for what the policy does not allow, ``constraint`` for
what the data does not allow (more copies than are in stock), ``missing_entity`` names a record that does not
exist, ``ambiguous_entity`` one that several records match."""
HARD_GOAL_KINDS: tuple[GoalKind, ...] = ("forbidden", "constraint", "missing_entity", "ambiguous_entity")
UNCHANGED_KINDS: frozenset[GoalKind] = frozenset(("forbidden", "constraint"))
"""Kinds whose change the policy or the data refuses: their checks assert that the record was left as it was."""
ContinuationKind = Literal["continues", "new_need"]
"""How a goal written for an existing conversation relates to it (``Continuation``)."""


class Rubric(BaseModel):
    """What the judge checks a task's dialogue against; guidance, not a script. Every item is something the
    assistant must achieve: success criteria for any task, the expected tool pattern and checkpoints for the
    task-oriented baseline."""

    model_config = ConfigDict(extra="forbid")

    success_criteria: list[str] = Field(default_factory=list)
    expected_tool_pattern: list[str] = Field(default_factory=list)
    checkpoints: list[str] = Field(default_factory=list)


class SQLCheck(BaseModel):
    """A read-only assertion on a dialogue's final database state; passes when its first value is truthy.

    Example: ``SELECT status = 'refunded' FROM invoice WHERE id = 412``.
    """

    model_config = ConfigDict(extra="forbid")

    description: str
    sql: str

    @property
    def source(self) -> str:
        """The check as written, which the judge and the records name it by."""
        return self.sql


class PythonCheck(BaseModel):
    """An assertion on a Python environment's final state: ``python`` names a function (``package.module:name``,
    or ``path/to/file.py:name`` from the config file's folder), called as ``function(state, diff, **arguments)``
    with the final state and the ``StateDiff`` from the dialogue's start; passes when it returns a truthy value.

    Example: ``{"description": "loan 7 is returned", "python": "checks:loan_status",
    "arguments": {"loan_id": "L7", "status": "returned"}}``.
    """

    model_config = ConfigDict(extra="forbid")

    description: str
    python: str = Field(pattern=r"^[^:\s]+:[A-Za-z_][\w.]*$")
    arguments: dict[str, Any] = Field(default_factory=dict)

    @property
    def source(self) -> str:
        arguments = orjson.dumps(self.arguments, option=orjson.OPT_SORT_KEYS).decode() if self.arguments else ""
        return f"{self.python}({arguments})"


class CommandCheck(BaseModel):
    """An assertion on an MCP server's final state directory: ``command`` (argv; ``{state}`` is the directory,
    which is also the working directory) passes when it exits with 0.

    Example: ``{"description": "the fix is committed on a branch of its own",
    "command": ["git", "rev-parse", "--verify", "fix-typo"]}``.
    """

    model_config = ConfigDict(extra="forbid")

    description: str
    command: list[str] = Field(min_length=1)

    @property
    def source(self) -> str:
        return shlex.join(self.command)


Check = SQLCheck | PythonCheck | CommandCheck
"""A check on a dialogue's final state: SQL for a database, a Python predicate for Python tools, a command for an
MCP server's files."""


class Continuation(BaseModel):
    """How a goal written for an existing conversation (``dialforge extend``) relates to it."""

    model_config = ConfigDict(extra="forbid")

    how: ContinuationKind = Field(
        description="'continues' what the person was doing in the conversation, or is a 'new_need' the same person "
        "raises because nothing said there could be taken further with the tools"
    )
    why: str = Field(default="", description="the writer's one-sentence reason")


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str = Field(
        description="a rubric task's request, which the user sends word for word (first person); a descriptive "
        "task's goal, which the user simulator is briefed with (second person)"
    )
    difficulty: Difficulty = "medium"
    kind: GoalKind = Field(default="ordinary", description="what the goal runs into; see GoalKind")
    rubric: Rubric = Field(default_factory=Rubric)
    subtasks: list[str] = Field(
        default_factory=list, description="the requests the person makes, in order: the judge's context, not items"
    )
    follows: str | None = Field(default=None, description="id of the task whose results this one extends")
    asked_by: list[str] = Field(
        default_factory=list,
        description="for an independent follow-up: ids of the tasks whose person, in their role there, would "
        "plausibly raise it too; only their dialogues get it (empty: any dialogue)",
    )
    tools: list[str] = Field(default_factory=list, description="names of the tools the task is expected to need")
    asks_to_see: list[str] = Field(
        default_factory=list,
        description="the result fields whose values the person asks to be told, named as the tools' results name "
        "them: each must be one that some tool returns (empty: nothing, or not stated)",
    )
    continuation: Continuation | None = Field(
        default=None, description="for a goal written for an existing conversation: how it relates to it"
    )
    checks: list[Check] = Field(
        default_factory=list,
        description="execution-grounded verification (SQL checks for a database, Python checks for Python tools): "
        "that the change was made, or, when checks_unchanged, that the refused change was not",
    )

    @property
    def is_followup(self) -> bool:
        """Whether the task comes after another one in a dialogue, by the same person, rather than opening it."""
        return self.follows is not None or bool(self.asked_by)

    @property
    def checks_unchanged(self) -> bool:
        """Whether the checks assert that the change the person asks for did NOT happen: the policy or the data
        refuses it, so a passing check is the record left as it was."""
        return self.kind in UNCHANGED_KINDS
