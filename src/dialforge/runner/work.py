"""Which dialogues a run generates: ids, domains, tasks and seeds, all derived from the config.

Deterministic, so a resumed run plans exactly the same dialogues and skips the finished ones. Each
dialogue gets a primary task and, when ``tasks_per_dialogue`` allows more, follow-ups: extensions of
that task first, then independent ones that its person would raise (``Task.asked_by``). Another primary
task is never added: it belongs to another person, and one dialogue is one person.

Goals are spread evenly, so that no goal is used more often than the plan needs: primary tasks in turn, and
follow-ups least used first, none more than ``ceil(needed / available)`` times, where ``needed`` is the
follow-ups the domain's dialogues ask for. Among the least used, one that fits fewer people goes first (the
others can still serve elsewhere), then a seeded order. A dialogue whose fitting follow-ups have all reached
that share gets fewer of them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from dialforge.model.domain import domain_slug
from dialforge.model.messages import Message
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec
from dialforge.pipeline.preparation import DomainPlan, stage_seed


@dataclass(frozen=True)
class DialogueWork:
    id: str
    domain: str
    tasks: tuple[Task, ...]
    seed: int
    history: tuple[Message, ...] = ()
    """An existing conversation the dialogue continues (``dialforge extend``), without its system prompt."""
    instructions: str | None = None
    """That conversation's system prompt."""
    tools: tuple[ToolSpec, ...] = ()
    """The tools that conversation declares or calls."""
    failure: str | None = None
    """Why the dialogue cannot even start (a conversation that cannot be continued, no goal for it): it is
    recorded as failed with this reason."""


def plan_dialogues(
    plans: Sequence[DomainPlan], *, per_domain: int, tasks_per_dialogue: tuple[int, int], run_seed: int
) -> list[DialogueWork]:
    work = []
    low, high = tasks_per_dialogue
    for plan in plans:
        if not plan.tasks:
            continue
        slug = domain_slug(plan.domain.name)
        seeds = [stage_seed(run_seed, plan.domain.name, "dialogue", str(index)) for index in range(per_domain)]
        extras = [random.Random(seed).randint(low, high) - 1 for seed in seeds]
        order = random.Random(stage_seed(run_seed, plan.domain.name, "followup order"))
        spread = _FollowupSpread(plan.followups, plan.tasks, sum(extras), order)
        for index, (seed, extra) in enumerate(zip(seeds, extras, strict=True)):
            primary = plan.tasks[index % len(plan.tasks)]
            tasks = (primary, *spread.take(primary, extra))
            work.append(DialogueWork(id=f"{slug}-{index:06d}", domain=plan.domain.name, tasks=tasks, seed=seed))
    return work


class _FollowupSpread:
    """Hands out a domain's follow-ups evenly: each at most ``share`` times, the least used first."""

    def __init__(self, followups: Sequence[Task], primaries: Sequence[Task], needed: int, rng: random.Random) -> None:
        self._followups = list(followups)
        self._rank = list(range(len(followups)))
        rng.shuffle(self._rank)
        self._fits = [sum(self._fit(task, primary) for primary in primaries) for task in followups]
        self._uses = [0] * len(followups)
        self.share = math.ceil(needed / len(followups)) if followups else 0

    def take(self, primary: Task, count: int) -> list[Task]:
        """Up to ``count`` follow-ups for a dialogue of ``primary``: its extensions, then independent ones its
        person would raise, each group least used first."""
        chosen: list[int] = []
        for extensions in (True, False):
            group = [
                i
                for i, task in enumerate(self._followups)
                if (task.follows is not None) == extensions and self._fit(task, primary) and self._uses[i] < self.share
            ]
            group.sort(key=lambda i: (self._uses[i], self._fits[i], self._rank[i]))
            chosen += group[: max(count - len(chosen), 0)]
        for i in chosen:
            self._uses[i] += 1
        return [self._followups[i] for i in chosen]

    @staticmethod
    def _fit(followup: Task, primary: Task) -> bool:
        """Whether the follow-up may join a dialogue of ``primary``: it extends it, or its person would raise it."""
        if followup.follows is not None:
            return followup.follows == primary.id
        return not followup.asked_by or primary.id in followup.asked_by
