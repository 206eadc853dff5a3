"""Resource usage of model calls, summed per role so a run can say what each actor cost."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, TypeAdapter


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            seconds=self.seconds + other.seconds,
        )


UsageByRole = dict[str, Usage]
USAGE_BY_ROLE: TypeAdapter[UsageByRole] = TypeAdapter(UsageByRole)
"""Reads and writes a ``UsageByRole`` as JSON data (stored stage items, records read as dicts)."""


def usage_sum(first: UsageByRole, second: UsageByRole) -> UsageByRole:
    """Two usages per role added up, role by role."""
    total = dict(first)
    for role, usage in second.items():
        total[role] = total[role] + usage if role in total else usage
    return total
