"""Goals the tools can reach: every fact a person asks to see is returned by some tool, a goal that changes data in
any branch carries checks that hold in every branch, and independent follow-ups are asked for only when some
tool works without an account."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dialforge.actors.generators.item_repair import StageReport
from dialforge.actors.generators.readable_fields import ReadableFields
from dialforge.actors.generators.tasks import followup_split, generate_followups, generate_tasks
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.generation_checks.tools import needs_account
from dialforge.llm import ScriptedModel
from dialforge.model.domain import Domain
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec
from prompt_checks import assert_mentions, filled_in, prompt_of

CHINOOK = Domain(name="Chinook music store", description="A digital music store")


def sql_tool(name: str, sql: str, **parameters: str) -> ToolSpec:
    """A SQL tool whose every parameter is required."""
    return ToolSpec(
        name=name,
        description=f"{name.replace('_', ' ')}.",
        parameters={
            "type": "object",
            "properties": {key: {"type": kind} for key, kind in parameters.items()},
            "required": list(parameters),
        },
        sql=sql,
    )


FIND_CUSTOMER = sql_tool(
    "find_customer_by_email",
    'SELECT "CustomerId", "FirstName", "LastName", "Phone" FROM "Customer" WHERE "Email" = :email',
    email="string",
)
LIST_INVOICES = sql_tool(
    "list_invoices_for_customer",
    'SELECT "InvoiceId", "InvoiceDate", "BillingCity", "Total" FROM "Invoice" WHERE "CustomerId" = :customer_id',
    customer_id="integer",
)
MOVE_INVOICE = sql_tool(
    "update_invoice_billing_city",
    'UPDATE "Invoice" SET "BillingCity" = :city WHERE "InvoiceId" = :invoice_id AND "CustomerId" = :customer_id',
    customer_id="integer",
    invoice_id="integer",
    city="string",
)
SEARCH_TRACKS = sql_tool(
    "search_tracks",
    'SELECT t."TrackId", t."Name" AS track, a."Title" AS album FROM "Track" t JOIN "Album" a USING ("AlbumId") '
    'WHERE t."Name" LIKE :query',
    query="string",
)
ACCOUNT_TOOLS = [FIND_CUSTOMER, LIST_INVOICES, MOVE_INVOICE]
LEONIE = {"table": "Customer", "column": "Email", "value": "leonekohler@surfeu.de"}


def goal(description: str, tools: list[str], asks_to_see: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "description": description,
        "difficulty": "medium",
        "subtasks": ["Ask for the first thing", "Ask for the second thing"],
        "success_criteria": ["The user is told what they asked for"],
        "tools": tools,
        "asks_to_see": asks_to_see,
        "entities": [LEONIE],
        "checks": [],
        **fields,
    }


def reply(*tasks: dict[str, Any]) -> str:
    return orjson.dumps({"tasks": list(tasks)}).decode()


async def descriptive(model: ScriptedModel, chinook: SQLDatabase, tools: list[ToolSpec] = ACCOUNT_TOOLS) -> Any:
    return await generate_tasks(
        model, CHINOOK, tools, style="descriptive", count=1, difficulty_mix={"medium": 1}, database=chinook
    )


# Every fact the person asks to see is one some tool returns


ADDRESS_AND_PHONE = goal(
    "You are Leonie Köhler (leonekohler@surfeu.de). Before your next order you want the assistant to read back "
    "the postal address and the phone number on your account, to be sure both are current.",
    ["find_customer_by_email"],
    ["Address", "phone"],
)
PHONE_ONLY = goal(
    "You are Leonie Köhler (leonekohler@surfeu.de). Before your next order you want to hear the phone number on "
    "your account read back, and the name it is under, to be sure both are current.",
    ["find_customer_by_email"],
    ["phone", "first_name", "last_name"],
)


async def test_a_goal_asking_for_a_fact_no_tool_returns_is_sent_back_naming_it_and_repaired(
    chinook: SQLDatabase,
) -> None:
    model = ScriptedModel([reply(ADDRESS_AND_PHONE), reply(PHONE_ONLY)])

    batch = await descriptive(model, chinook)

    (task,) = batch.items
    assert task.asks_to_see == ["phone", "first_name", "last_name"] and batch.repaired == 1
    failures = filled_in(prompt_of(model, 1), "tasks_repair")["failures"]
    assert "'Address'" in failures and "'phone'" not in failures, "only the missing fact is named"
    assert_mentions(failures, "Phone", "InvoiceDate", "BillingCity"), "and the fields that do exist"
    shown = filled_in(prompt_of(model), "tasks_descriptive")["result_fields"]
    assert_mentions(shown, "Phone", "InvoiceDate", "rows_affected")
    assert "Address" not in shown, "the writer is shown what the tools return, read off their SQL"


async def test_a_fact_still_out_of_reach_after_the_repair_drops_the_goal(chinook: SQLDatabase) -> None:
    model = ScriptedModel([reply(ADDRESS_AND_PHONE), reply(ADDRESS_AND_PHONE)])

    batch = await descriptive(model, chinook)

    assert batch.items == []
    assert any("'Address'" in reason and "no tool returns" in reason for reason in batch.rejected[0].reasons)


def test_fields_of_return_schemas_match_nested_and_whatever_their_spelling() -> None:
    orders = ToolSpec(
        name="list_orders",
        description="A customer's orders.",
        returns={
            "type": "object",
            "properties": {
                "orders": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"OrderId": {}, "shipped_at": {}}},
                }
            },
        },
    )
    undescribed = ToolSpec(name="get_invoice", description="One invoice.")

    readable = ReadableFields.of([orders])

    assert readable.unreachable(["order_id", "Shipped At", "tracking-number"]) == ["tracking-number"]
    assert ReadableFields.of([orders, undescribed]).unreachable(["tracking_number"]) == [], (
        "a tool whose result is not described might return anything"
    )


# One rule on checks: a goal that changes data in some branch has checks that hold in every branch


CONDITIONAL = goal(
    "You are Leonie Köhler (leonekohler@surfeu.de) and you moved to Hamburg. You want your invoice number 1 billed "
    "to Hamburg; if that one can no longer be changed, you want invoice 67 billed to Hamburg instead. You are done "
    "once one of them shows Hamburg.",
    ["find_customer_by_email", "list_invoices_for_customer", "update_invoice_billing_city"],
    ["InvoiceId", "BillingCity"],
    entities=[LEONIE, {"table": "Invoice", "column": "InvoiceId", "value": 1}],
)
EVERY_BRANCH = {
    "description": "invoice 1, or failing that invoice 67, is billed to Hamburg",
    "sql": 'SELECT COUNT(*) >= 1 FROM "Invoice" WHERE "InvoiceId" IN (1, 67) AND "BillingCity" = \'Hamburg\'',
}


async def test_a_conditional_goal_with_a_check_that_holds_in_every_branch_is_kept(chinook: SQLDatabase) -> None:
    batch = await descriptive(ScriptedModel([reply({**CONDITIONAL, "checks": [EVERY_BRANCH]})]), chinook)

    (task,) = batch.items
    assert [check.sql for check in task.checks] == [EVERY_BRANCH["sql"]] and batch.rejected == []


async def test_a_conditional_goal_that_can_change_data_without_a_check_is_sent_back(chinook: SQLDatabase) -> None:
    model = ScriptedModel([reply(CONDITIONAL), reply()])

    batch = await descriptive(model, chinook)

    assert batch.items == []
    reason = batch.rejected[0].reasons[0]
    assert "update_invoice_billing_city" in reason and "no check" in reason


async def test_a_goal_that_changes_nothing_in_any_branch_needs_no_check(chinook: SQLDatabase) -> None:
    look_up = goal(
        "You are Leonie Köhler (leonekohler@surfeu.de). If your first invoice, number 1, is billed to Stuttgart, "
        "you want to know its total; otherwise you want to know which city it is billed to.",
        ["find_customer_by_email", "list_invoices_for_customer"],
        ["Total", "BillingCity"],
    )

    batch = await descriptive(ScriptedModel([reply(look_up)]), chinook)

    assert [task.checks for task in batch.items] == [[]]


# The follow-up split follows the tools


def test_a_tool_needs_an_account_when_a_required_parameter_names_one() -> None:
    assert [needs_account(tool) for tool in (*ACCOUNT_TOOLS, SEARCH_TRACKS)] == [True, True, True, False]


@pytest.mark.parametrize(
    ("tools", "previous", "expected"),
    [
        (ACCOUNT_TOOLS, True, (4, 0)),
        ([*ACCOUNT_TOOLS, SEARCH_TRACKS], True, (2, 2)),
        ([*ACCOUNT_TOOLS, SEARCH_TRACKS], False, (0, 4)),
        (ACCOUNT_TOOLS, False, (0, 0)),
    ],
    ids=["per-account tools: all extensions", "mixed: the configured share", "nothing to extend", "nothing at all"],
)
def test_the_split_of_follow_ups_follows_the_tools(
    tools: list[ToolSpec], previous: bool, expected: tuple[int, int]
) -> None:
    split = followup_split(tools, 4, 0.5, previous=previous)

    assert (split.extensions, split.independent) == expected
    assert split.note


EARLIER = Task(
    id="chinook-descriptive-1",
    description=str(CONDITIONAL["description"]),
    tools=["find_customer_by_email", "list_invoices_for_customer"],
)
INDEPENDENT = goal(
    "You want to know which tracks have 'Love' in their name, and the album each one is on. You are done once "
    "you have the tracks with their albums.",
    ["search_tracks"],
    ["track", "album"],
    entities=[],
    follows=None,
    asked_by=["chinook-descriptive-1"],
)


async def test_with_per_account_tools_only_every_follow_up_is_asked_to_extend_and_the_report_says_why(
    chinook: SQLDatabase,
) -> None:
    model = ScriptedModel([reply()])

    batch = await generate_followups(
        model, CHINOOK, ACCOUNT_TOOLS, [EARLIER], count=3, extension_share=0.5, database=chinook
    )

    asked = filled_in(prompt_of(model), "tasks_followup")
    assert (asked["extensions"], asked["independent"], asked["open_tools"]) == ("3", "0", "none")
    (note,) = batch.notes
    assert "every tool needs an account" in note
    assert StageReport.of("followups", CHINOOK.name, batch).notes == [note], "the stage report says why"


async def test_with_mixed_tools_the_configured_share_holds_and_independent_goals_use_open_tools(
    chinook: SQLDatabase,
) -> None:
    personal = {**INDEPENDENT, "tools": ["search_tracks", "list_invoices_for_customer"]}
    model = ScriptedModel([reply(INDEPENDENT, personal), reply()])

    batch = await generate_followups(
        model, CHINOOK, [*ACCOUNT_TOOLS, SEARCH_TRACKS], [EARLIER], count=2, extension_share=0.5, database=chinook
    )

    asked = filled_in(prompt_of(model), "tasks_followup")
    assert (asked["extensions"], asked["independent"], asked["open_tools"]) == ("1", "1", "search_tracks")
    assert [task.asked_by for task in batch.items] == [["chinook-descriptive-1"]]
    (dropped,) = batch.rejected
    assert any("list_invoices_for_customer" in reason and "account" in reason for reason in dropped.reasons)
