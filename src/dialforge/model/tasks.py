"""Tasks: the latent goals that dialogues are generated to accomplish (PAPER.md, "Tasks")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Difficulty = Literal["easy", "medium", "hard"]


class Rubric(BaseModel):
    """What the task-oriented baseline is judged against; guidance for the judge, not a script."""

    model_config = ConfigDict(extra="forbid")

    success_criteria: list[str] = Field(default_factory=list)
    expected_tool_pattern: list[str] = Field(default_factory=list)
    checkpoints: list[str] = Field(default_factory=list)


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    difficulty: Difficulty = "medium"
    rubric: Rubric = Field(default_factory=Rubric)
    subtasks: list[str] = Field(default_factory=list)
    follows: str | None = Field(default=None, description="id of the task whose results this one extends")
