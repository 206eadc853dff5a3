"""A dialogue in flight (``DialogueState``) and the finished record (``Dialogue``).

The state is plain data: the runner persists it after every step, which is what makes resume
after a crash, start-from-any-state and distribution across workers possible.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dialforge.model.conversation import conversation_problems
from dialforge.model.messages import Message
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec
from dialforge.model.usage import UsageByRole

Mode = Literal["task", "user", "user+exec"]
Actor = Literal["user", "agent", "tool", "judge", "done"]


class Judgment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judgment: Literal["valid", "invalid"]
    reasoning: str
    checks: dict[str, bool] = Field(default_factory=dict)


class DialogueStats(BaseModel):
    """The paper's Table 1 quantities for one dialogue."""

    model_config = ConfigDict(extra="forbid")

    turns: int = 0
    steps: int = 0
    tasks: int = 0
    tool_calls: int = 0
    tool_errors: int = 0


class DialogueState(BaseModel):
    """Everything needed to take the next step of one dialogue."""

    model_config = ConfigDict(extra="forbid")

    id: str
    mode: Mode
    domain: str
    tools: list[ToolSpec]
    tasks: list[Task] = Field(default_factory=list)
    tasks_done: int = 0
    messages: list[Message] = Field(default_factory=list)
    next_actor: Actor = "user"
    seed: int = 0
    persona: str | None = None
    env: dict[str, Any] = Field(default_factory=dict)
    stats: DialogueStats = Field(default_factory=DialogueStats)
    usage: UsageByRole = Field(default_factory=dict)
    judgment: Judgment | None = None

    def problems(self) -> list[str]:
        return conversation_problems(self.messages, (t.name for t in self.tools), allow_pending=True)


class Dialogue(BaseModel):
    """The canonical record written to ``dialogues.jsonl``; refuses malformed conversations."""

    model_config = ConfigDict(extra="forbid")

    id: str
    mode: Mode
    domain: str
    tools: list[dict[str, Any]]
    messages: list[Message]
    tasks: list[Task] = Field(default_factory=list)
    judgment: Judgment | None = None
    stats: DialogueStats = Field(default_factory=DialogueStats)
    usage: UsageByRole = Field(default_factory=dict)
    env: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    persona: str | None = None
    generator: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _well_formed_for_training(self) -> Dialogue:
        names = [tool.get("function", tool).get("name") for tool in self.tools]
        problems = conversation_problems(self.messages, names)
        if problems:
            raise ValueError(f"dialogue {self.id!r} is not well formed: " + "; ".join(problems))
        return self
