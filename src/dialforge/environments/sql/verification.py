"""Execution-grounded verification: a task's SQL checks and the state diff, after the dialogue ends.

This complements the model judge with facts: whether the database really ended in the state the
task asked for, and exactly which rows the dialogue changed. The result is stored with the dialogue.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from dialforge.environments.base import StateDiff
from dialforge.environments.sql.environment import SQLEnvironment
from dialforge.model.tasks import SQLCheck


class CheckOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    sql: str
    passed: bool
    detail: str


class Verification(BaseModel):
    """What a dialogue did to its database: digests before and after, the row diff, the checks."""

    model_config = ConfigDict(extra="forbid")

    initial_digest: str
    final_digest: str
    diff: StateDiff
    checks: list[CheckOutcome] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def verify(initial: SQLEnvironment, final: SQLEnvironment, checks: Sequence[SQLCheck]) -> Verification:
    """Evaluate ``checks`` on ``final`` (read-only) and describe how it differs from ``initial``."""
    outcomes = []
    for check in checks:
        passed, detail = final.check(check.sql)
        outcomes.append(CheckOutcome(description=check.description, sql=check.sql, passed=passed, detail=detail))
    return Verification(
        initial_digest=initial.digest(), final_digest=final.digest(), diff=final.diff(initial), checks=outcomes
    )
