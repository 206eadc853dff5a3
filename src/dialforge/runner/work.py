"""Which dialogues a run generates: ids, domains, tasks and seeds, all derived from the config.

Deterministic, so a resumed run plans exactly the same dialogues and skips the finished ones. Each
dialogue gets a primary task and, when ``tasks_per_dialogue`` allows more, follow-ups: extensions of
that task first, then independent ones that its person would raise (``Task.asked_by``). Another primary
task is never added: it belongs to another person, and one dialogue is one person.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from dialforge.model.domain import domain_slug
from dialforge.model.messages import Message
from dialforge.model.tasks import Task
from dialforge.pipeline.preparation import DomainPlan, stage_seed


@dataclass(frozen=True)
class DialogueWork:
    id: str
    domain: str
    tasks: tuple[Task, ...]
    seed: int
    history: tuple[Message, ...] = ()
    """An existing conversation the dialogue continues (``dialforge extend``)."""


def plan_dialogues(
    plans: Sequence[DomainPlan], *, per_domain: int, tasks_per_dialogue: tuple[int, int], run_seed: int
) -> list[DialogueWork]:
    work = []
    low, high = tasks_per_dialogue
    for plan in plans:
        if not plan.tasks:
            continue
        slug = domain_slug(plan.domain.name)
        for index in range(per_domain):
            seed = stage_seed(run_seed, plan.domain.name, "dialogue", str(index))
            rng = random.Random(seed)
            primary = plan.tasks[index % len(plan.tasks)]
            extra = rng.randint(low, high) - 1
            tasks = (primary, *_extra_tasks(plan, primary, extra, rng))
            work.append(DialogueWork(id=f"{slug}-{index:06d}", domain=plan.domain.name, tasks=tasks, seed=seed))
    return work


def _extra_tasks(plan: DomainPlan, primary: Task, count: int, rng: random.Random) -> list[Task]:
    if count <= 0:
        return []
    extensions = [t for t in plan.followups if t.follows == primary.id]
    independent = [t for t in plan.followups if t.follows is None and (not t.asked_by or primary.id in t.asked_by)]
    rng.shuffle(extensions)
    rng.shuffle(independent)
    return (extensions + independent)[:count]
