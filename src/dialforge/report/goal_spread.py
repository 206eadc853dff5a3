"""How a run's goals spread over its databases, as each goal stage reported it.

Goals written from the same few rows make dialogues about the same few customers. Each goal stage over a
database reports, per table, the rows its writers were shown over all its requests and the shown rows its goals
name (``environments/sql/mentions.py``); this reads those reports from ``artifacts/stage_reports.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter

from dialforge.environments.sql.mentions import TableSpread
from dialforge.report.run_usage import read_stage_reports

_SPREAD: TypeAdapter[list[TableSpread]] = TypeAdapter(list[TableSpread])


class GoalSpread(TableSpread):
    """One table's row of one goal stage of one domain."""

    domain: str
    stage: str
    goals: int


def read_goal_spread(run_dir: Path) -> list[GoalSpread]:
    """Every goal stage's spread over every table it reports (none for a run without a database)."""
    return [
        GoalSpread(domain=report["domain"], stage=report["stage"], goals=report.get("produced", 0), **row.model_dump())
        for report, spread in read_stage_reports(run_dir, "spread", _SPREAD, [])
        for row in spread
    ]
