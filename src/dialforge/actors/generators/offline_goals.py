"""Goals the offline dry-run model answers a goal request with.

A value sampled from the reply's schema names no real tool, record or result field, so every goal check rejects
it and an offline run (``--dry-run``) would never reach a dialogue whose goals are written for it (``extend``,
a domain without supplied tasks). The goal writers therefore hand the dry-run model a builder of placeholder
goals made from the request's own inputs (``RequestOptions.offline_answer``): a tool that only reads, fields it
returns, an earlier goal a follow-up extends. These goals go through the same checks as any other, nothing is
relaxed for them, and no real model ever sees them.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from dialforge.actors.generators.readable_fields import ReadableFields
from dialforge.generation_checks.tools import changes_data, needs_account
from dialforge.json_schema.sampler import person_name
from dialforge.model.tools import ToolSpec

_OPENINGS = (
    "You are {person} and you have a question for {domain}.",
    "You are {person}, and you are getting in touch with {domain} today.",
    "You are {person}; something about {domain} is on your mind.",
)


@dataclass(frozen=True)
class OfflineGoals:
    """Builds ``count`` goals for one request; ``properties`` are the goal object's keys in the reply schema."""

    domain: str
    tools: Sequence[ToolSpec]
    readable: ReadableFields
    properties: Collection[str]
    count: int
    first_person: bool = False
    """the goal is the user's own message (the task-oriented baseline), not a brief in the second person"""
    previous: Sequence[str] = ()
    """ids of earlier goals a follow-up may extend"""
    continuation: dict[str, str] | None = None
    """what a continuation goal says of the conversation it continues"""

    @classmethod
    def for_request(cls, **fields: Any) -> OfflineGoals | None:
        """The builder, or ``None`` when no tool only reads and has known result fields (the dry-run model then
        samples the schema, and the checks say why its goals fail)."""
        goals = cls(**fields)
        return goals if goals._usable() else None

    def __call__(self, rng: random.Random) -> dict[str, Any]:
        usable = self._usable()
        rng.shuffle(usable)
        return {"tasks": [self._goal(rng, usable[number % len(usable)], number) for number in range(self.count)]}

    def _usable(self) -> list[ToolSpec]:
        """Tools a placeholder goal can be met with: they only read, their results are known, and, for a
        follow-up that extends nothing, they need no account."""
        independent = "follows" in self.properties and not self.previous
        return [
            tool
            for tool in self.tools
            if not changes_data(tool)
            and self.readable.by_tool.get(tool.name)
            and not (independent and needs_account(tool))
        ]

    def _goal(self, rng: random.Random, tool: ToolSpec, number: int) -> dict[str, Any]:
        fields = list(self.readable.by_tool[tool.name])
        shown = rng.sample(fields, k=min(2, len(fields)))
        wanted = " and ".join(name.replace("_", " ") for name in shown)
        person = person_name(rng)
        if self.first_person:
            description = f"Hi, I'm {person}. Could you tell me the {wanted}? That is all I need today."
        else:
            opening = _OPENINGS[number % len(_OPENINGS)].format(person=person, domain=self.domain)
            description = f"{opening} You want to be told the {wanted}. You are done once you know the {wanted}."
        required = [str(name) for name in tool.parameters.get("required", ())]
        goal: dict[str, Any] = {
            "description": description,
            "difficulty": "easy",
            "subtasks": [f"Ask for the {wanted}"],
            "success_criteria": [f"The user is told the {wanted}"],
            "expected_tool_pattern": [f"{tool.name}({', '.join(f'{name}=<{name}>' for name in required)})"],
            "checkpoints": [f"The {wanted} come from the records, not from memory"],
            "tools": [tool.name],
            "asks_to_see": shown,
            "follows": rng.choice(self.previous) if self.previous else None,
            "asked_by": [],
            "kind": "ordinary",
            "continuation": self.continuation,
            "entities": [],
            "checks": [],
            "lookup": None,
        }
        return {key: value for key, value in goal.items() if key in self.properties}
