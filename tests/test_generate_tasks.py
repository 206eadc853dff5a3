"""Rubric, descriptive and follow-up tasks: every task is checked, bad ones repaired once or dropped with reasons."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import pytest

from dialforge.actors.agent import agent_system_prompt
from dialforge.actors.generators.tasks import (
    difficulty_counts,
    generate_continuation,
    generate_followups,
    generate_tasks,
    task_id,
)
from dialforge.actors.judge import Judge
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.model.dialogue import DialogueState
from dialforge.model.domain import Domain
from dialforge.model.messages import AssistantMessage, UserMessage
from dialforge.model.tasks import Rubric, Task
from dialforge.model.tools import ToolSpec
from prompt_checks import assert_in_order, assert_mentions, data_shown, filled_in, fragment_text, prompt_of
from samples import UPDATE_BILLING_CITY, verdict, whole_goal

MIX = {"easy": 0.3, "medium": 0.4, "hard": 0.3}

# A domain without a database: tools whose results a model simulates.

BOOKSHOP = Domain(name="Online bookshop", description="An online shop selling new and used books")
BOOKSHOP_TOOLS = [
    ToolSpec(name="search_orders", description="Find a customer's orders by email."),
    ToolSpec(name="get_order", description="One order with its lines."),
    ToolSpec(name="cancel_order", description="Cancel an order that has not shipped."),
]
GOAL = {
    "description": (
        "You are Maya Okafor (maya.okafor@example.com). You ordered two used novels last week and want to know "
        "whether they have shipped; if not, you want the order for 'Beloved' cancelled."
    ),
    "difficulty": "medium",
    "subtasks": ["Ask whether your order from last week has shipped", "Cancel the order for 'Beloved' if not"],
    "success_criteria": [
        "The user is told whether the order from last week has shipped",
        "The order for 'Beloved' is cancelled if it has not shipped",
    ],
    "tools": ["search_orders", "get_order", "cancel_order"],
    "asks_to_see": ["status"],
}
OTHER_GOAL = {
    "description": (
        "You are Tomás Rivera (t.rivera@example.com) and want the list of books in your most recent order, "
        "with the price you paid for each one."
    ),
    "difficulty": "easy",
    "subtasks": ["Ask for the books and prices of your latest order"],
    "success_criteria": ["The user is told each book of the latest order with the price paid"],
    "tools": ["search_orders", "get_order"],
    "asks_to_see": ["title", "price"],
}
RUBRIC = {
    "description": "Hi, this is Maya Okafor (maya.okafor@example.com). Please cancel my order for 'Beloved'.",
    "difficulty": "hard",
    "success_criteria": ["The order for 'Beloved' is cancelled"],
    "expected_tool_pattern": [
        'search_orders(email="maya.okafor@example.com")',
        "get_order(order_id=<order_id from search_orders>)",
        "cancel_order(order_id=<order_id of the 'Beloved' order from search_orders>)",
    ],
    "checkpoints": ["The order is shown to be unshipped before it is cancelled"],
    "tools": ["search_orders"],
    "asks_to_see": [],
}

# The real Chinook database, with SQL tools.

CHINOOK = Domain(name="Chinook music store", description="A digital music store")
CHINOOK_TOOLS = [
    ToolSpec(
        name="search_customers_by_email",
        description="The customer with this email.",
        parameters={"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
        sql='SELECT "CustomerId", "FirstName", "LastName" FROM "Customer" WHERE "Email" = :email',
    ),
    ToolSpec(
        name="list_invoices_for_customer",
        description="A customer's invoices, newest first.",
        parameters={"type": "object", "properties": {"customer_id": {"type": "integer"}}, "required": ["customer_id"]},
        sql='SELECT "InvoiceId", "Total" FROM "Invoice" WHERE "CustomerId" = :customer_id ORDER BY 1 DESC LIMIT 20',
    ),
    UPDATE_BILLING_CITY,
]
MOVE_INVOICE = {
    "description": (
        "You are Leonie Köhler (customer 2, leonekohler@surfeu.de). You moved from Stuttgart to Hamburg and want "
        "the billing city of your first invoice, number 1, changed to Hamburg."
    ),
    "difficulty": "medium",
    "subtasks": ["Ask for your invoices", "Have the billing city of invoice 1 changed to Hamburg"],
    "success_criteria": ["The billing city of invoice 1 is Hamburg"],
    "tools": ["search_customers_by_email", "list_invoices_for_customer", "update_invoice_billing_city"],
    "asks_to_see": ["InvoiceId"],
    "entities": [
        {"table": "customer", "column": "email", "value": "leonekohler@surfeu.de"},
        {"table": "Invoice", "column": "InvoiceId", "value": 1},
    ],
    "checks": [
        {
            "description": "invoice 1 is billed to Hamburg",
            "sql": 'SELECT "BillingCity" = \'Hamburg\' FROM "Invoice" WHERE "InvoiceId" = 1',
        }
    ],
}
LOOK_UP_INVOICES = {
    "description": (
        "You are François Tremblay (ftremblay@gmail.com) and want to know how many invoices you have and the "
        "total of the most recent one."
    ),
    "difficulty": "easy",
    "subtasks": ["Ask for your invoices and the total of the latest"],
    "success_criteria": ["The user is told the number of invoices and the total of the latest"],
    "tools": ["search_customers_by_email", "list_invoices_for_customer"],
    "asks_to_see": ["invoice_id", "total"],
    "entities": [{"table": "Customer", "column": "Email", "value": "ftremblay@gmail.com"}],
    "checks": [],
}


def reply(*tasks: dict[str, Any]) -> str:
    return orjson.dumps({"tasks": list(tasks)}).decode()


def ids_look_like(tasks: Sequence[Task], prefix: str) -> bool:
    """Ids are ``<domain>-<kind>-<hash of the goal>``: distinct, and the same goal always gets the same id."""
    ids = [task.id for task in tasks]
    return (
        len(set(ids)) == len(ids)
        and all(re.fullmatch(rf"{prefix}-[0-9a-f]{{8}}", i) for i in ids)
        and all(
            task.id == task_id(prefix.rsplit("-", 1)[0], prefix.rsplit("-", 1)[1], task.description) for task in tasks
        )
    )


def previous_task(task_id: str = "online-bookshop-descriptive-1") -> Task:
    return Task(id=task_id, description=str(GOAL["description"]), tools=["search_orders", "cancel_order"])


async def descriptive(model: ScriptedModel, count: int = 3) -> Any:
    return await generate_tasks(model, BOOKSHOP, BOOKSHOP_TOOLS, style="descriptive", count=count, difficulty_mix=MIX)


# Good replies


async def test_a_goal_may_mention_the_assistant_without_instructing_it() -> None:
    mentioned = dict(GOAL, description=GOAL["description"] + " You have gone through your invoices with the assistant.")
    batch = await descriptive(ScriptedModel([reply(mentioned)]), count=1)
    assert [task.description for task in batch.items] == [mentioned["description"]], batch.rejected


async def test_descriptive_tasks_are_kept_numbered_and_asked_for_in_the_mix() -> None:
    model = ScriptedModel([reply(GOAL, OTHER_GOAL)])

    batch = await generate_tasks(
        model, BOOKSHOP, BOOKSHOP_TOOLS, style="descriptive", count=10, difficulty_mix=MIX, seed=5
    )

    assert ids_look_like(batch.items, "online-bookshop-descriptive")
    first = batch.items[0]
    assert first.description == GOAL["description"] and first.difficulty == "medium"
    assert first.subtasks == GOAL["subtasks"] and first.tools == GOAL["tools"]
    assert first.rubric == Rubric(success_criteria=GOAL["success_criteria"]), "what the judge checks: no subtask"
    assert (first.follows, first.checks) == (None, [])
    assert (batch.rejected, batch.repaired, batch.errors) == ([], 0, [])
    options = model.requests[0].options
    assert options.seed == 5 and options.response_format is not None
    assert options.response_format.name == "descriptive_tasks"
    assert "entities" not in orjson.dumps(options.response_format.json_schema).decode()
    prompt = prompt_of(model)
    asked = filled_in(prompt, "tasks_descriptive")
    assert (asked["count"], asked["difficulty_mix"]) == ("10", "3 easy, 4 medium, 3 hard")
    assert (asked["domain"], asked["description"]) == (BOOKSHOP.name, BOOKSHOP.description)
    assert asked["writes"] == "cancel_order"
    assert "$" not in prompt
    assert re.search(r"\d{4}-\d{2}-\d{2}", asked["now"]) is None, "no date when the config fixes none"


async def test_a_fixed_date_is_the_goals_today_in_every_task_stage() -> None:
    today = datetime(2025, 11, 21, 10, 0)
    model = ScriptedModel([reply(), reply(), reply(), reply()])
    await generate_tasks(model, BOOKSHOP, BOOKSHOP_TOOLS, style="descriptive", count=1, difficulty_mix=MIX)
    await generate_tasks(model, BOOKSHOP, BOOKSHOP_TOOLS, style="descriptive", count=1, difficulty_mix=MIX, today=today)
    await generate_tasks(model, BOOKSHOP, BOOKSHOP_TOOLS, style="rubric", count=1, difficulty_mix=MIX, today=today)
    await generate_followups(model, BOOKSHOP, BOOKSHOP_TOOLS, [], count=1, extension_share=0.5, today=today)

    undated, *dated = (prompt_of(model, request) for request in range(4))
    date_not_fixed = filled_in(undated, "tasks_descriptive")["now"]
    for prompt, stage in zip(dated, ["tasks_descriptive", "tasks_rubric", "tasks_followup"], strict=True):
        assert_mentions(filled_in(prompt, stage)["now"], "Friday", "2025-11-21")
        assert date_not_fixed not in prompt


async def test_rubric_tasks_keep_their_rubric_and_add_the_tools_of_their_pattern() -> None:
    model = ScriptedModel([reply(RUBRIC)])

    batch = await generate_tasks(model, BOOKSHOP, BOOKSHOP_TOOLS, style="rubric", count=1, difficulty_mix={"hard": 1})

    (task,) = batch.items
    assert ids_look_like([task], "online-bookshop-rubric") and task.difficulty == "hard"
    assert task.rubric.expected_tool_pattern == RUBRIC["expected_tool_pattern"]
    assert task.rubric.success_criteria == RUBRIC["success_criteria"]
    assert task.rubric.checkpoints == RUBRIC["checkpoints"]
    assert task.tools == ["search_orders", "get_order", "cancel_order"]
    asked = filled_in(prompt_of(model), "tasks_rubric")
    assert (asked["count"], asked["difficulty_mix"]) == ("1", "1 hard")


async def test_sql_tasks_are_grounded_in_the_chinook_data(chinook: SQLDatabase) -> None:
    model = ScriptedModel([reply(MOVE_INVOICE, LOOK_UP_INVOICES)])

    mix = {"easy": 1, "medium": 1}
    batch = await generate_tasks(
        model, CHINOOK, CHINOOK_TOOLS, style="descriptive", count=2, difficulty_mix=mix, database=chinook
    )

    assert batch.rejected == []
    move, look_up = batch.items
    assert ids_look_like([move], "chinook-music-store-descriptive")
    assert [check.sql for check in move.checks] == [MOVE_INVOICE["checks"][0]["sql"]]
    assert look_up.checks == []
    asked = filled_in(prompt_of(model), "tasks_descriptive")
    shown = data_shown(prompt_of(model), "tasks_descriptive")
    assert "CREATE TABLE Customer" in shown["schema"]
    assert shown["data_view"] == chinook.data_view(seed=0).text  # a limited view of the data, drawn with the seed
    assert asked["writes"] == "update_invoice_billing_city"
    schema = model.requests[0].options.response_format
    assert schema is not None and "entities" in schema.json_schema["properties"]["tasks"]["items"]["properties"]


# Invalid tasks, each with its reason


def changed(task: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**task, **fields}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (changed(GOAL, tools=["search_order"]), "unknown tool 'search_order'; did you mean search_orders, get_order?"),
        (changed(GOAL, tools=["refund_everything"]), "unknown tool 'refund_everything'; no name is similar"),
        (changed(GOAL, tools=[]), "the task names no tools"),
        (
            changed(GOAL, description=GOAL["description"] + " This is for the training dataset."),
            "words that give away a generated setting (dataset, training)",
        ),
        (changed(GOAL, description="Cancel my order."), "the description is 16 characters long"),
        (changed(GOAL, difficulty="extreme"), "difficulty 'extreme' is not one of easy, medium, hard"),
        (
            changed(GOAL, description="You are <customer name> and want your latest order cancelled right away."),
            "the unfilled placeholder '<customer name>'",
        ),
        (
            changed(GOAL, description="You want the assistant to call cancel_order for your order from Tuesday."),
            "the task names the tools cancel_order",
        ),
        (
            changed(GOAL, description="You want the assistant to cancel your order from Tuesday, number 5521."),
            "the task tells the assistant what to do ('the assistant to')",
        ),
        (
            changed(GOAL, description=GOAL["description"] + " The assistant should confirm it in writing."),
            "the task tells the assistant what to do ('The assistant should')",
        ),
        (changed(GOAL, subtasks=["Cancel the order"]), "a medium task has 2 to 5 subtasks, this one has 1"),
        (changed(GOAL, subtasks=[]), "the task lists no subtasks"),
        (changed(GOAL, success_criteria=[]), "the task has no success criteria"),
    ],
)
async def test_an_invalid_descriptive_task_is_dropped_with_its_reason(bad: dict[str, Any], reason: str) -> None:
    model = ScriptedModel([reply(bad), reply()])

    batch = await descriptive(model)

    assert batch.items == []
    (rejection,) = batch.rejected
    assert any(reason in text for text in rejection.reasons), rejection.reasons
    assert reason in prompt_of(model, 1)  # the repair round was told


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            changed(RUBRIC, expected_tool_pattern=["get_ordr(order_id=<id from search_orders>)"]),
            "unknown tool 'get_ordr'; did you mean get_order, cancel_order?",
        ),
        (changed(RUBRIC, expected_tool_pattern=["look the order up"]), "step 1 ('look the order up') is not a tool"),
        (changed(RUBRIC, expected_tool_pattern=[]), "the rubric has no expected tool pattern"),
        (changed(RUBRIC, success_criteria=[" "]), "the task has no success criteria"),
        (
            changed(
                RUBRIC, description="Maya Okafor (maya.okafor@example.com) wants her order for 'Beloved' cancelled."
            ),
            "the description is written about the user, not by them",
        ),
    ],
)
async def test_an_invalid_rubric_task_is_dropped_with_its_reason(bad: dict[str, Any], reason: str) -> None:
    model = ScriptedModel([reply(bad), reply()])

    batch = await generate_tasks(model, BOOKSHOP, BOOKSHOP_TOOLS, style="rubric", count=1, difficulty_mix=MIX)

    assert batch.items == []
    assert any(reason in text for text in batch.rejected[0].reasons), batch.rejected[0].reasons


NOBODY = {"table": "Customer", "column": "Email", "value": "nobody@example.com"}
CHECK_SQL = 'SELECT "BillingCity" = \'Hamburg\' FROM "Invoice" WHERE "InvoiceId" = 1'


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            changed(MOVE_INVOICE, entities=[NOBODY]),
            "entity Customer.Email = 'nobody@example.com' is not in the data",
        ),
        (
            changed(MOVE_INVOICE, entities=[{"table": "Customers", "column": "Email", "value": "x"}]),
            "entity table 'Customers' is not in the schema; did you mean Customer?",
        ),
        (
            changed(MOVE_INVOICE, entities=[{"table": "Customer", "column": "Mail", "value": "x"}]),
            "entity column Customer.Mail is not in the schema; did you mean Email?",
        ),
        (
            changed(MOVE_INVOICE, checks=[{"description": "moved", "sql": "SELECT FROM WHERE"}]),
            "check 1 is not one read-only SELECT: the SQL does not parse",
        ),
        (
            changed(MOVE_INVOICE, checks=[{"description": "moved", "sql": CHECK_SQL + "; SELECT 1"}]),
            "check 1 is not one read-only SELECT",
        ),
        (
            changed(MOVE_INVOICE, checks=[{"description": "moved", "sql": 'UPDATE "Invoice" SET "Total" = 0'}]),
            "check 1 changes data (UPDATE); a check only reads",
        ),
        (
            changed(MOVE_INVOICE, checks=[{"description": "moved", "sql": 'SELECT "City" FROM "Invoice"'}]),
            "check 1 does not run on the database: ",
        ),
        (
            changed(
                MOVE_INVOICE,
                checks=[{"description": "moved", "sql": CHECK_SQL.replace("Hamburg", "Stuttgart")}],
            ),
            "check 1: the check already holds before the dialogue, so it cannot show the task was done",
        ),
        (changed(MOVE_INVOICE, checks=[]), "the task changes data (with update_invoice_billing_city) but has no check"),
        (
            changed(LOOK_UP_INVOICES, checks=MOVE_INVOICE["checks"]),
            "the task has checks, but none of its tools changes data",
        ),
    ],
)
async def test_an_sql_task_that_does_not_fit_the_data_is_dropped_with_its_reason(
    chinook: SQLDatabase, bad: dict[str, Any], reason: str
) -> None:
    model = ScriptedModel([reply(bad), reply()])

    batch = await generate_tasks(
        model, CHINOOK, CHINOOK_TOOLS, style="descriptive", count=1, difficulty_mix=MIX, database=chinook
    )

    assert batch.items == []
    assert any(reason in text for text in batch.rejected[0].reasons), batch.rejected[0].reasons


async def test_a_near_duplicate_of_a_kept_task_is_dropped() -> None:
    twin = changed(GOAL, description=str(GOAL["description"]).replace("two used novels", "two used books"))
    model = ScriptedModel([reply(GOAL, twin), reply(twin)])

    batch = await descriptive(model)

    assert [task.description for task in batch.items] == [GOAL["description"]]
    assert "the task is a near-duplicate of one already kept" in batch.rejected[0].reasons[0]


# The repair round and model failures


async def test_the_repair_round_fixes_some_tasks_and_drops_the_rest() -> None:
    unknown_tool = changed(OTHER_GOAL, tools=["get_ordr"])
    too_short = changed(GOAL, description="Cancel it.")
    still_short = changed(GOAL, description="Cancel it now.")
    model = ScriptedModel([reply(GOAL, unknown_tool, too_short), reply(OTHER_GOAL, still_short)])

    batch = await descriptive(model)

    assert [task.description for task in batch.items] == [GOAL["description"], OTHER_GOAL["description"]]
    assert ids_look_like(batch.items, "online-bookshop-descriptive")
    assert batch.repaired == 1
    (dropped,) = batch.rejected
    assert dropped.label == "Cancel it now."
    assert dropped.reasons == [
        "the description is 14 characters long; state the whole goal, with the concrete details it needs, "
        "in at least 40"
    ]
    repair = filled_in(prompt_of(model, 1), "tasks_repair")
    assert repair["count"] == "2"
    assert_in_order(repair["failures"], "get_ordr", "unknown tool 'get_ordr'; did you mean get_order, cancel_order?")
    assert_in_order(repair["failures"], "get_ordr", "Cancel it.", "the description is 10 characters long")
    assert GOAL["description"] in repair["accepted"], "the kept task, not to be repeated"


async def test_a_malformed_reply_is_asked_again_by_the_client() -> None:
    model = ScriptedModel(['{"tasks": [{"description": ', reply(GOAL)])

    batch = await descriptive(model)

    assert [task.description for task in batch.items] == [GOAL["description"]]
    assert batch.repaired == 0 and len(model.requests) == 2


async def test_a_model_error_gives_an_empty_batch_with_the_error() -> None:
    model = ScriptedModel([ModelUnavailable("the server is down")])

    batch = await descriptive(model)

    assert (batch.items, batch.rejected) == ([], [])
    assert batch.errors == ["the request failed: the server is down"]


async def test_at_most_count_tasks_are_kept() -> None:
    batch = await descriptive(ScriptedModel([reply(GOAL, OTHER_GOAL)]), count=1)

    assert [task.description for task in batch.items] == [GOAL["description"]]


# Follow-ups


async def test_follow_ups_extend_earlier_tasks_or_stand_alone() -> None:
    extension = changed(
        OTHER_GOAL,
        description="You are Maya Okafor (maya.okafor@example.com) and, with 'Beloved' cancelled, you want to "
        "know what is left in your order from last week.",
        follows="online-bookshop-descriptive-1",
        asked_by=["online-bookshop-descriptive-1"],
    )
    independent = changed(
        OTHER_GOAL,
        description="You want to know which used copies of Toni Morrison's novels are in stock and what each costs.",
        follows="",
        asked_by=["online-bookshop-descriptive-1"],
    )
    model = ScriptedModel([reply(extension, independent)])

    batch = await generate_followups(
        model, BOOKSHOP, BOOKSHOP_TOOLS, [previous_task()], count=3, extension_share=0.6, seed=2
    )

    assert [task.follows for task in batch.items] == ["online-bookshop-descriptive-1", None]
    assert [task.asked_by for task in batch.items] == [[], ["online-bookshop-descriptive-1"]], "whose person asks it"
    assert ids_look_like(batch.items, "online-bookshop-followup")
    asked = filled_in(prompt_of(model), "tasks_followup")
    assert (asked["count"], asked["extensions"], asked["independent"]) == ("3", "2", "1")
    assert_mentions(asked["previous"], "online-bookshop-descriptive-1", "medium", "search_orders, cancel_order")
    assert_mentions(asked["previous"], GOAL["description"])
    assert model.requests[0].options.seed == 2
    assert model.requests[0].options.response_format is not None
    assert model.requests[0].options.response_format.name == "followup_tasks"


async def test_a_follow_up_repeating_an_earlier_task_is_dropped() -> None:
    model = ScriptedModel([reply(changed(GOAL, follows=None, asked_by=["online-bookshop-descriptive-1"])), reply()])

    batch = await generate_followups(model, BOOKSHOP, BOOKSHOP_TOOLS, [previous_task()], count=1, extension_share=0)

    assert batch.items == []
    assert "the task is a near-duplicate of one already kept" in batch.rejected[0].reasons[0]


async def test_a_follow_up_must_follow_an_earlier_task() -> None:
    model = ScriptedModel([reply(changed(OTHER_GOAL, follows="task-7", asked_by=[])), reply()])

    batch = await generate_followups(model, BOOKSHOP, BOOKSHOP_TOOLS, [previous_task()], count=1, extension_share=1)

    assert batch.items == []
    assert batch.rejected[0].reasons[0] == (
        "follows names 'task-7', which is not one of the earlier tasks (online-bookshop-descriptive-1); "
        "give one of their ids, or null for an independent task"
    )


@pytest.mark.parametrize(
    ("asked_by", "reason"),
    [
        (
            [],
            "the independent task names no earlier task in asked_by; list the ids of the earlier tasks whose "
            "person, in the role they have there, would plausibly ask for it next",
        ),
        (
            ["task-7"],
            "asked_by names 'task-7', which is not one of the earlier tasks (online-bookshop-descriptive-1); "
            "list only their ids",
        ),
    ],
)
async def test_an_independent_follow_up_names_the_earlier_tasks_whose_person_would_ask_it(
    asked_by: list[str], reason: str
) -> None:
    independent = changed(OTHER_GOAL, follows=None, asked_by=asked_by)
    model = ScriptedModel([reply(independent), reply()])

    batch = await generate_followups(model, BOOKSHOP, BOOKSHOP_TOOLS, [previous_task()], count=1, extension_share=0)

    assert batch.items == [] and batch.rejected[0].reasons[0] == reason


async def test_without_earlier_tasks_every_follow_up_is_asked_to_be_independent() -> None:
    model = ScriptedModel([reply(changed(OTHER_GOAL, follows=None, asked_by=[]))])

    batch = await generate_followups(model, BOOKSHOP, BOOKSHOP_TOOLS, [], count=2, extension_share=0.5)

    assert [task.follows for task in batch.items] == [None]
    asked = filled_in(prompt_of(model), "tasks_followup")
    assert (asked["extensions"], asked["independent"]) == ("0", "2")


async def test_an_extension_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="extension_share"):
        await generate_followups(ScriptedModel([]), BOOKSHOP, BOOKSHOP_TOOLS, [], count=2, extension_share=1.5)


# The dry-run model


async def test_the_dry_run_model_does_not_crash_any_task_stage(chinook: SQLDatabase) -> None:
    model = DryRunModel(seed=1)
    batches = [
        await generate_tasks(model, BOOKSHOP, BOOKSHOP_TOOLS, style="rubric", count=3, difficulty_mix=MIX),
        await generate_tasks(
            model, CHINOOK, CHINOOK_TOOLS, style="descriptive", count=3, difficulty_mix=MIX, database=chinook
        ),
        await generate_followups(
            model, CHINOOK, CHINOOK_TOOLS, [previous_task()], count=2, extension_share=0.5, database=chinook
        ),
    ]

    for batch in batches:
        assert batch.errors == []
        assert all(rejection.reasons for rejection in batch.rejected)


# The difficulty mix


@pytest.mark.parametrize(
    ("count", "mix", "expected"),
    [
        (10, MIX, {"easy": 3, "medium": 4, "hard": 3}),
        (7, MIX, {"easy": 2, "medium": 3, "hard": 2}),
        (3, {"easy": 1, "hard": 1}, {"easy": 2, "medium": 0, "hard": 1}),
        (5, {"medium": 2}, {"easy": 0, "medium": 5, "hard": 0}),
        (0, MIX, {"easy": 0, "medium": 0, "hard": 0}),
    ],
)
def test_difficulty_counts_follow_the_mix_by_largest_remainder(
    count: int, mix: dict[str, float], expected: dict[str, int]
) -> None:
    assert difficulty_counts(count, mix) == expected


@pytest.mark.parametrize("mix", [{"extreme": 1.0}, {"easy": 0.0}, {"easy": -1.0, "hard": 2.0}])
def test_a_difficulty_mix_that_cannot_be_followed_is_refused(mix: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="difficulty mix"):
        difficulty_counts(10, mix)


# One rule on changes to data per mode, for whoever writes, carries out and judges the tasks


async def test_each_mode_gives_its_task_writers_its_agent_and_its_judge_one_and_the_same_rule_on_changes() -> None:
    writers = ScriptedModel([reply(), reply(), reply(), reply()])
    await generate_tasks(writers, BOOKSHOP, BOOKSHOP_TOOLS, style="rubric", count=1, difficulty_mix=MIX)
    await generate_tasks(writers, BOOKSHOP, BOOKSHOP_TOOLS, style="descriptive", count=1, difficulty_mix=MIX)
    await generate_followups(writers, BOOKSHOP, BOOKSHOP_TOOLS, [previous_task()], count=1, extension_share=0.5)
    await generate_continuation(writers, BOOKSHOP, BOOKSHOP_TOOLS, [UserMessage(content="Hi, I have a question.")])
    rubric, *goal_writers = (prompt_of(writers, request) for request in range(4))
    judge = ScriptedModel([verdict(whole_goal(1))] * 2)
    for mode in ("task", "user"):
        messages = [UserMessage(content="Hi, please cancel my order 5521."), AssistantMessage(content="Cancelled.")]
        task = Task(id="t", description="Hi, please cancel my order 5521.")
        await Judge(judge).judge(
            DialogueState(id="d", mode=mode, domain="shop", tools=[], tasks=[task], messages=messages)
        )
    direct_judge, conversation_judge = prompt_of(judge, 0), prompt_of(judge, 1)
    direct_agent = agent_system_prompt(BOOKSHOP.name, "Confirm changes first.", direct_requests=True)
    conversation_agent = agent_system_prompt(BOOKSHOP.name, "Confirm changes first.")

    direct, conversation = fragment_text("changes_direct_request"), fragment_text("changes_conversation")
    for prompt in (rubric, direct_agent, direct_judge):
        assert direct in prompt and conversation not in prompt
    for prompt in (*goal_writers, conversation_agent, conversation_judge):
        assert conversation in prompt and direct not in prompt
