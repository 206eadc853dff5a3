"""Tasks: the latent goals that dialogues are generated to accomplish (docs/method.md, "Tasks")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Difficulty = Literal["easy", "medium", "hard"]


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


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str = Field(
        description="a rubric task's request, which the user sends word for word (first person); a descriptive "
        "task's goal, which the user simulator is briefed with (second person)"
    )
    difficulty: Difficulty = "medium"
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
    checks: list[SQLCheck] = Field(default_factory=list, description="execution-grounded verification (SQL domains)")

    @property
    def is_followup(self) -> bool:
        """Whether the task comes after another one in a dialogue, by the same person, rather than opening it."""
        return self.follows is not None or bool(self.asked_by)
