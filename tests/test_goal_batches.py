"""Goals written in batches, each over a view of the data of its own: the split adds up, every request sees other
records, resume is exact, and the spread of the goals over the data is reported down to ``dialforge stats``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from dialforge.actors.generators.goal_batches import goal_batches, merged
from dialforge.actors.generators.item_repair import ItemBatch, Rejection
from dialforge.actors.generators.tasks import hard_goal_counts
from dialforge.cli.main import app
from dialforge.config import DialforgeConfig
from dialforge.llm import ScriptedModel
from dialforge.llm.completion import Completion, RequestOptions
from dialforge.model.messages import Message, UserMessage
from dialforge.model.tasks import HARD_GOAL_KINDS, Task
from dialforge.model.usage import Usage
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.preparation import Preparation
from prompt_checks import data_shown, filled_in

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# Splitting a stage into batches


@pytest.mark.parametrize(("count", "per_batch"), [(20, 5), (22, 5), (3, 5), (7, 1)])
def test_batches_add_up_to_what_one_request_would_ask_for(count: int, per_batch: int) -> None:
    difficulties = {"easy": count // 3, "medium": count - count // 3 - count // 4, "hard": count // 4}
    kinds = list(HARD_GOAL_KINDS)
    hard = sum(hard_goal_counts(count, 0.25, kinds).values())

    batches = goal_batches(count, per_batch, difficulties, hard)

    assert sum(batch.size for batch in batches) == count
    assert all(0 < batch.size <= per_batch for batch in batches)
    assert max(b.size for b in batches) - min(b.size for b in batches) <= 1
    assert all(sum(batch.difficulties.values()) == batch.size for batch in batches)
    for difficulty, number in difficulties.items():
        assert sum(batch.difficulties[difficulty] for batch in batches) == number
    per_kind: dict[str, int] = {}
    for batch in batches:
        for kind, number in hard_goal_counts(batch.size, batch.hard_share, batch.hard_kinds(kinds)).items():
            per_kind[kind] = per_kind.get(kind, 0) + number
    assert {kind: n for kind, n in per_kind.items() if n} == {
        kind: n for kind, n in hard_goal_counts(count, 0.25, kinds).items() if n
    }


def test_each_batch_mixes_the_difficulties() -> None:
    batches = goal_batches(20, 5, {"easy": 6, "medium": 8, "hard": 6}, 0)

    assert all(all(batch.difficulties[d] >= 1 for d in ("easy", "medium", "hard")) for batch in batches)


def goal(description: str) -> Task:
    return Task(id=description[:8], description=description)


def test_a_goal_repeating_one_of_an_earlier_batch_is_dropped_with_its_reason() -> None:
    first = ItemBatch(items=[goal("You are Maya Okafor and want your order 1042 cancelled before it ships.")])
    first.usage = {"generator": Usage(calls=1, prompt_tokens=10)}
    second = ItemBatch(
        items=[
            goal("You are Maya Okafor and want your order 1043 cancelled before it ships."),
            goal("You are Liam Brennan and want to know which mystery novels are in stock in paperback."),
        ],
        rejected=[Rejection(label="x", reasons=["bad"])],
        repairs=[Rejection(label="y", reasons=["too short"])],
    )
    second.usage = {"generator": Usage(calls=2, prompt_tokens=5)}

    batch = merged([first, second])

    assert [task.description[:20] for task in batch.items] == ["You are Maya Okafor ", "You are Liam Brennan"]
    dropped = batch.rejected[0]
    assert "near-duplicate of one written in an earlier batch" in dropped.reasons[0]
    assert "order 1043" in dropped.submitted["description"]
    assert batch.rejected[1].label == "x" and [r.label for r in batch.repairs] == ["y"] and batch.repaired == 1
    assert batch.usage["generator"].calls == 3 and batch.usage["generator"].prompt_tokens == 15


# A stage in batches, over the bookstore


def customers_shown(view: str) -> list[dict[str, Any]]:
    """The customer rows of a rendered view, by column."""
    lines = view.split("\n\n")
    section = next(block for block in lines if block.startswith("customer: ")).splitlines()
    columns = section[1].split(" | ")
    values = [[None if value == "NULL" else orjson.loads(value) for value in line.split(" | ")] for line in section[2:]]
    return [dict(zip(columns, row, strict=True)) for row in values]


class ViewReader(ScriptedModel):
    """A goal writer that grounds every goal in the view it is shown: one goal per customer shown, in order."""

    def __init__(self) -> None:
        super().__init__((), role="generator")

    async def _send(self, messages: Sequence[Message], options: RequestOptions) -> Completion:
        assert isinstance(messages[0], UserMessage)
        asked = filled_in(messages[0].content, "tasks_descriptive")
        people = customers_shown(data_shown(messages[0].content, "tasks_descriptive")["data_view"])[
            : int(asked["count"])
        ]
        self._add(orjson.dumps({"tasks": [self._goal(person) for person in people]}).decode(), "view")
        return await super()._send(messages, options)

    @staticmethod
    def _goal(person: dict[str, Any]) -> dict[str, Any]:
        return {
            "description": (
                f"You are {person['first_name']} {person['last_name']} ({person['email']}, from {person['city']}, "
                f"with an account since {person['joined_on']}). You want your account details read back to you."
            ),
            "difficulty": "easy",
            "subtasks": ["Ask for your account details"],
            "success_criteria": [f"The user is told the details of the account of {person['email']}"],
            "tools": ["find_customer", "get_customer_summary"],
            "asks_to_see": [],
            "entities": [{"table": "customer", "column": "email", "value": person["email"]}],
            "checks": [],
        }


def bookstore_config() -> DialforgeConfig:
    return DialforgeConfig.model_validate(
        {
            "mode": "user+exec",
            "domains": [
                {
                    "name": "bookstore",
                    "database": str(EXAMPLES / "bookstore.sql"),
                    "tools": str(EXAMPLES / "bookstore_tools.json"),
                    "policy": "Identify customers by their email before anything else.",
                }
            ],
            "generation": {
                "tasks_per_domain": 6,
                "tasks_per_batch": 2,
                "hard_goals": 0,
                "tasks_per_dialogue": [1, 1],
                "data_view_tokens": 1200,
            },
        }
    )


async def test_each_batch_is_written_over_a_view_of_its_own_and_the_spread_is_reported(tmp_path: Path) -> None:
    writer = ViewReader()
    store = ArtifactStore(tmp_path)
    (plan,) = await Preparation(bookstore_config(), writer, store).run()
    store.close()

    views = [data_shown(request.messages[0].content, "tasks_descriptive")["data_view"] for request in writer.requests]
    assert len(views) == 3 and len(set(views)) == 3
    named = {person["email"] for view in views for person in customers_shown(view)[:2]}
    assert len(plan.tasks) == 6 and len(named) == 6
    (report,) = [r for r in plan.reports if r.stage == "tasks_descriptive"]
    spread = {row.table: row for row in report.spread}
    shown = {person["email"] for view in views for person in customers_shown(view)}
    assert (spread["customer"].rows, spread["customer"].shown, spread["customer"].named) == (40, len(shown), 6)

    again = ViewReader()
    store = ArtifactStore(tmp_path)
    (resumed,) = await Preparation(bookstore_config(), again, store).run()
    store.close()
    assert again.requests == [] and resumed.tasks == plan.tasks, "the same views: every batch comes from the store"

    (tmp_path / "dialogues.jsonl").write_text("")
    text = CliRunner().invoke(app, ["stats", str(tmp_path)], terminal_width=200).stdout
    table = text.split("Goals over the data")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:]]
    assert ["bookstore", "tasks_descriptive", "6", "customer", "40", str(len(shown)), "6"] in rows
