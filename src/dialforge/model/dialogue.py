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
Status = Literal["running", "completed", "failed"]
RubricCategory = Literal["Critical", "Structural", "NonCritical", "InvalidRubric"]
ToolFaultKind = Literal["timeout", "unavailable", "rate_limited"]
"""A transient service fault injected into a tool call (``DialogueConfig.tool_faults``)."""


class ToolFault(BaseModel):
    """One injected fault: the call it answered instead of the tool, which did not run."""

    model_config = ConfigDict(extra="forbid")

    call_id: str
    tool: str
    kind: ToolFaultKind


class RubricVerdict(BaseModel):
    """The judge's reading of one rubric item (docs/method.md, "Validation").

    An ``InvalidRubric`` item is wrong in itself (an impossible step, a value the data contradicts), so the
    conversation neither met nor failed it: it has no ``passed``. Every other category needs one.
    """

    model_config = ConfigDict(extra="forbid")

    item: str
    category: RubricCategory
    passed: bool | None = Field(
        default=None, description="whether the conversation met the item; None for InvalidRubric"
    )

    @model_validator(mode="after")
    def _judged_unless_invalid(self) -> RubricVerdict:
        if self.category == "InvalidRubric":
            self.passed = None  # older records carry a value here that never meant anything
        elif self.passed is None:
            raise ValueError(f"rubric item {self.item!r} is {self.category}, so it needs passed: true or false")
        return self


class Judgment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judgment: Literal["valid", "invalid"]
    reasoning: str
    items: list[RubricVerdict] = Field(default_factory=list)
    checks: dict[str, bool] = Field(default_factory=dict, description="SQL check description -> passed")
    verification: dict[str, Any] | None = Field(default=None, description="digests, row diff, checks (SQL domains)")


class DialogueStats(BaseModel):
    """The paper's Table 1 quantities for one dialogue (counted in ``pipeline/dialogue_stats.py``)."""

    model_config = ConfigDict(extra="forbid")

    turns: int = 0
    steps: int = 0
    max_steps_per_request: int = 0
    tasks_assigned: int = Field(default=0, description="goals the dialogue was given, dropped ones included")
    tasks_completed: int = Field(default=0, description="goals the person said were done: Table 1's Task")
    tool_calls: int = 0
    tool_errors: int = 0


def upgrade_stats(data: Any) -> Any:
    """A record or state written before goals assigned and completed were counted apart: its ``stats.tasks`` (the
    goals completed) becomes ``tasks_completed``, and the goals it holds are those assigned, so older runs still
    resume, export and count."""
    if not isinstance(data, dict) or not isinstance(stats := data.get("stats"), dict) or "tasks" not in stats:
        return data
    upgraded = {key: value for key, value in stats.items() if key != "tasks"}
    upgraded.setdefault("tasks_completed", stats["tasks"])
    upgraded.setdefault("tasks_assigned", len(data.get("tasks") or ()) + len(data.get("tasks_dropped") or ()))
    return {**data, "stats": upgraded}


class DialogueState(BaseModel):
    """Everything needed to take the next step of one dialogue.

    ``messages[0]`` is the agent's system prompt (policy and domain) when there is one; the user
    simulator sees the conversation without it. ``env`` is the environment's persisted state (a
    SQL fork's own pages, a simulated environment's call log, a Python state), so a state read back
    from storage continues exactly where it stopped.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _upgraded(cls, data: Any) -> Any:
        return upgrade_stats(data)

    id: str
    mode: Mode
    domain: str
    tools: list[ToolSpec]
    policy: str = ""
    tasks: list[Task] = Field(default_factory=list)
    tasks_done: int = 0
    goals_unconfirmed: list[int] = Field(
        default_factory=list,
        description="indexes of the goals the person said were done while their checks failed on the state then",
    )
    tasks_dropped: list[Task] = Field(
        default_factory=list, description="goals a truncated dialogue gave up: not in the transcript, not judged"
    )
    truncated: bool = Field(default=False, description="cut back to the end of its last completed goal")
    goal_end: int | None = Field(
        default=None, description="len(messages) at the end of the last completed goal, while goals remain"
    )
    goal_end_env: dict[str, Any] | None = Field(
        default=None, description="the environment's snapshot at goal_end: the state a truncation returns to"
    )
    messages: list[Message] = Field(default_factory=list)
    next_actor: Actor = "user"
    status: Status = "running"
    failure: str | None = Field(
        default=None, description="why the dialogue stopped early: failed, or truncated (then why the goal was dropped)"
    )
    guards: dict[str, int] = Field(default_factory=dict, description="guard name -> times it fired")
    closing_message: str | None = Field(default=None, description="the user's last words, after the last task")
    history_length: int = Field(default=0, description="messages imported from an existing conversation")
    goal_started_at: int = Field(default=0, description="index in messages where the current task began")
    seed: int = 0
    persona: str | None = None
    today: str | None = Field(
        default=None, description="the dialogue's date and time (ISO): what the agent, tools and user take as now"
    )
    env: dict[str, Any] = Field(default_factory=dict)
    faults: list[ToolFault] = Field(
        default_factory=list, description="transient faults injected into tool calls, which therefore did not run"
    )
    stats: DialogueStats = Field(default_factory=DialogueStats)
    usage: UsageByRole = Field(default_factory=dict)
    judgment: Judgment | None = None

    @property
    def current_task(self) -> Task | None:
        return self.tasks[self.tasks_done] if self.tasks_done < len(self.tasks) else None

    @property
    def conversation(self) -> list[Message]:
        """The messages without the system prompt: what the two parties actually said."""
        return [m for m in self.messages if m.role != "system"]

    def problems(self) -> list[str]:
        return conversation_problems(self.messages, (t.name for t in self.tools), allow_pending=True)


class Dialogue(BaseModel):
    """The canonical record written to ``dialogues.jsonl``; refuses malformed conversations."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _upgraded(cls, data: Any) -> Any:
        return upgrade_stats(data)

    id: str
    mode: Mode
    domain: str
    status: Status = "completed"
    failure: str | None = None
    truncated: bool = False
    tools: list[dict[str, Any]]
    messages: list[Message]
    tasks: list[Task] = Field(default_factory=list)
    tasks_dropped: list[Task] = Field(default_factory=list)
    judgment: Judgment | None = None
    stats: DialogueStats = Field(default_factory=DialogueStats)
    usage: UsageByRole = Field(default_factory=dict)
    env: dict[str, Any] = Field(default_factory=dict)
    faults: list[ToolFault] = Field(default_factory=list, description="transient faults injected into its tool calls")
    seed: int = 0
    persona: str | None = None
    guards: dict[str, int] = Field(default_factory=dict)
    generator: dict[str, Any] = Field(default_factory=dict)
    prefix_messages: int = Field(
        default=0,
        ge=0,
        description="how many messages after the system prompt are an imported conversation (dialforge extend), "
        "kept byte for byte; the dialogue continues it",
    )

    @model_validator(mode="after")
    def _well_formed_for_training(self) -> Dialogue:
        names = [tool.get("function", tool).get("name") for tool in self.tools]
        problems = conversation_problems(self.messages, names)
        if problems:
            raise ValueError(f"dialogue {self.id!r} is not well formed: " + "; ".join(problems))
        return self
