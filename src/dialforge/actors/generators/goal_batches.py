"""A domain's goals are asked for in batches, each written over a view of the data of its own.

One request for all of a domain's goals shows its writer one view of the data, so every goal names the same few
records. A batch of ``tasks_per_batch`` goals per request, each over a view drawn with the batch's own seed
(``environments/sql/data_view.py``), spreads them over the data and keeps each reply short. The batches split
the stage's difficulty mix and its goals that cannot be done as asked exactly: together they ask for what one
request for all the goals would have asked for. Batches are written concurrently, so a goal that nearly repeats
one of an earlier batch is dropped when they are merged, with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dialforge.actors.generators.item_repair import ItemBatch, Rejection
from dialforge.actors.generators.tasks import NEAR_DUPLICATE_SHINGLE, NEAR_DUPLICATE_THRESHOLD
from dialforge.generation_checks.near_duplicates import near_duplicate_of
from dialforge.model.tasks import Difficulty, GoalKind, Task
from dialforge.model.usage import usage_sum


@dataclass(frozen=True)
class GoalBatch:
    """One request's share of a goal stage: how many goals, of which difficulties, and how many that cannot be
    done as asked (``hard``), after ``hard_before`` such goals in the batches before it."""

    index: int
    size: int
    difficulties: dict[Difficulty, int]
    hard: int = 0
    hard_before: int = 0

    @property
    def hard_share(self) -> float:
        return self.hard / self.size

    def hard_kinds(self, kinds: Sequence[GoalKind]) -> list[GoalKind]:
        """``kinds`` turned to start where the batches before left off: ``hard_goal_counts`` spreads a batch's
        goals evenly over the kinds, the first ones taking the remainder, so the batches together spread the
        stage's goals over the kinds as one request would."""
        if not kinds:
            return []
        start = self.hard_before % len(kinds)
        return [*kinds[start:], *kinds[:start]]


def goal_batches(count: int, per_batch: int, difficulties: Mapping[Difficulty, int], hard: int) -> list[GoalBatch]:
    """``count`` goals in batches of at most ``per_batch``, as even as possible; each difficulty and the ``hard``
    goals spread over them in proportion."""
    if count <= 0:
        return []
    number = -(-count // per_batch)
    sizes = [count // number + (index < count % number) for index in range(number)]
    labels = _interleaved(difficulties)
    batches, start, hard_before = [], 0, 0
    for index, size in enumerate(sizes):
        chunk = labels[start : start + size]
        start += size
        share = hard * start // count - hard_before  # the hard goals due by the end of this batch, less those given
        batches.append(
            GoalBatch(
                index=index,
                size=size,
                difficulties={difficulty: chunk.count(difficulty) for difficulty in difficulties},
                hard=share,
                hard_before=hard_before,
            )
        )
        hard_before += share
    return batches


def merged(batches: Sequence[ItemBatch[Task]]) -> ItemBatch[Task]:
    """The batches as one, in order; a goal that nearly repeats one of an earlier batch is dropped."""
    result: ItemBatch[Task] = ItemBatch()
    for batch in batches:
        earlier = [task.description for task in result.items]
        for task in batch.items:
            twin = near_duplicate_of(task.description, earlier, NEAR_DUPLICATE_THRESHOLD, size=NEAR_DUPLICATE_SHINGLE)
            if twin is None:
                result.items.append(task)
            else:
                reason = f"the goal is a near-duplicate of one written in an earlier batch ({twin!r})"
                submitted = task.model_dump(mode="json", exclude_defaults=True)
                result.rejected.append(Rejection(label=task.description[:80], reasons=[reason], submitted=submitted))
        result.rejected += batch.rejected
        result.repairs += batch.repairs
        result.errors += batch.errors
        result.usage = usage_sum(result.usage, batch.usage)
        result.notes += [note for note in batch.notes if note not in result.notes]
    return result


def goal_text(task: Task) -> str:
    """Everything a goal's writer wrote about it, in which the records it names are looked for."""
    rubric = task.rubric
    return "\n".join([task.description, *task.subtasks, *rubric.success_criteria, *rubric.checkpoints])


def _interleaved(counts: Mapping[Difficulty, int]) -> list[Difficulty]:
    """Each difficulty's goals at even intervals over the whole sequence: any stretch of it holds them in about
    the proportions of the whole."""
    placed = [
        ((number + 0.5) / count, order, label)
        for order, (label, count) in enumerate(counts.items())
        for number in range(count)
    ]
    return [label for _, _, label in sorted(placed)]
