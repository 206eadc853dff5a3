"""Goal reuse: how many dialogues each goal was given, against the even share.

A goal given to many more dialogues than the others makes near-copies of one conversation. The work plan spreads
goals evenly (``runner/work.py``); this says whether a run's dialogues are spread so, per domain and role (primary
goals, follow-ups): the dialogues per goal used (mean, max), the even share ``ceil(uses / goals available)``, and
the goals used more often than that. The goals available are those the run prepared (``artifacts/tasks.jsonl``);
without that file, those some dialogue used.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, Field

GoalRole = Literal["primary", "followup"]
AvailableGoals = Mapping[tuple[str, GoalRole], Sequence[str]]
"""(domain, role) -> the ids of the goals the run prepared."""


class GoalReuse(BaseModel):
    """The reuse of one domain's goals of one role."""

    domain: str
    role: GoalRole
    goals_available: int | None = Field(default=None, description="goals prepared; None when not known")
    goals_used: int = 0
    uses: int = Field(default=0, description="dialogues given a goal of this role, summed over the goals")
    mean: float = Field(default=0.0, description="dialogues per goal used")
    max: int = 0
    even_share: int = Field(default=0, description="ceil(uses / goals available, or used when not known)")
    over_share: dict[str, int] = Field(
        default_factory=dict, description="goal id -> dialogues, for goals given to more than the even share"
    )
    dialogues: dict[str, int] = Field(default_factory=dict, description="goal id -> dialogues given it, most first")


def goal_reuse(
    used: Iterable[tuple[str, Iterable[tuple[str, GoalRole]]]], available: AvailableGoals | None = None
) -> list[GoalReuse]:
    """Reuse per (domain, role), sorted, from each dialogue's domain and its goals (id, role); ``available`` gives
    the goals prepared, so that unused ones count towards the even share."""
    counts: dict[tuple[str, GoalRole], Counter[str]] = defaultdict(Counter)
    for domain, goals in used:
        for goal, role in set(goals):
            counts[(domain, role)][goal] += 1
    reuse = []
    for (domain, role), per_goal in sorted(counts.items()):
        prepared = available.get((domain, role)) if available is not None else None
        uses = sum(per_goal.values())
        share = math.ceil(uses / max(len(prepared) if prepared else len(per_goal), 1))
        ranked = sorted(per_goal.items(), key=lambda item: (-item[1], item[0]))
        reuse.append(
            GoalReuse(
                domain=domain,
                role=role,
                goals_available=len(prepared) if prepared else None,
                goals_used=len(per_goal),
                uses=uses,
                mean=uses / len(per_goal),
                max=ranked[0][1],
                even_share=share,
                over_share={goal: count for goal, count in ranked if count > share},
                dialogues=dict(ranked),
            )
        )
    return reuse


def read_available_goals(run_dir: Path) -> AvailableGoals | None:
    """The goals a run prepared, from ``artifacts/tasks.jsonl``; None without it. ValueError names a bad line."""
    path = run_dir / "artifacts" / "tasks.jsonl"
    if not path.is_file():
        return None
    goals: dict[tuple[str, GoalRole], list[str]] = defaultdict(list)
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if line.strip():
            try:
                row = orjson.loads(line)
                role: GoalRole = "followup" if row["role"] == "followup" else "primary"
                goals[(str(row["domain"]), role)].append(str(row["id"]))
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a task of the run ({exc!r})") from None
    return goals
