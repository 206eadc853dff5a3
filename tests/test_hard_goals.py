"""Goals that cannot be done as asked: which kinds a domain supports, how many the task stage asks for, and how
each is checked against the real data (what the judge makes of them: tests/test_judge.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dialforge.actors.generators.tasks import generate_tasks, hard_goal_counts, hard_goal_kinds
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.llm import ScriptedModel
from dialforge.model.domain import Domain
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_section
from prompt_checks import filled_in, fragment_text, prompt_of
from samples import UPDATE_BILLING_CITY

CHINOOK = Domain(name="Chinook music store", description="A digital music store")
POLICY = "Customers may change only their own invoices, and only after they are identified by email."
LOOK_UP = ToolSpec(
    name="search_customers_by_email",
    description="The customer with this email.",
    parameters={"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
    sql='SELECT "CustomerId", "FirstName", "LastName" FROM "Customer" WHERE "Email" = :email',
)
TOOLS = [LOOK_UP, UPDATE_BILLING_CITY]
ALL_KINDS = ["forbidden", "constraint", "missing_entity", "ambiguous_entity"]
STILL_STUTTGART = {
    "description": "invoice 1 still bills Stuttgart",
    "sql": 'SELECT "BillingCity" = \'Stuttgart\' FROM "Invoice" WHERE "InvoiceId" = 1',
}
NOW_HAMBURG = {
    "description": "invoice 1 bills Hamburg",
    "sql": 'SELECT "BillingCity" = \'Hamburg\' FROM "Invoice" WHERE "InvoiceId" = 1',
}
FORBIDDEN = {
    "description": (
        "You are Frank Harris (fharris@google.com). You want the billing city of invoice 1, which belongs to your "
        "colleague Leonie, changed to Hamburg. If that is not possible, you want to know why."
    ),
    "difficulty": "easy",
    "kind": "forbidden",
    "subtasks": ["Ask for the billing city of invoice 1 to be changed to Hamburg"],
    "success_criteria": [
        "The user is told that only the invoice's own customer may change it",
        "Invoice 1 is unchanged",
    ],
    "tools": ["search_customers_by_email", "update_invoice_billing_city"],
    "asks_to_see": [],
    "entities": [{"table": "Invoice", "column": "InvoiceId", "value": 1}],
    "checks": [STILL_STUTTGART],
    "lookup": None,
}
MISSING = {
    "description": (
        "You are Leonie Köhler and believe your account's email is leonie.kohler@surfeu.de. You want to know "
        "which name the account is under; if it cannot be found, you want to be told so."
    ),
    "difficulty": "easy",
    "kind": "missing_entity",
    "subtasks": ["Ask which name the account with your email is under"],
    "success_criteria": ["The user is told no account has that email"],
    "tools": ["search_customers_by_email"],
    "asks_to_see": [],
    "entities": [],
    "checks": [],
    "lookup": {"table": "Customer", "column": "Email", "value": "leonie.kohler@surfeu.de"},
}
AMBIGUOUS = {
    **MISSING,
    "description": (
        "You are Frank Ralston (fralston@gmail.com) and ask for the account of Frank, giving only your first name. "
        "When asked, you give your email. You want to know the last name the account is under."
    ),
    "kind": "ambiguous_entity",
    "success_criteria": ["The user is asked which Frank is meant", "The user is told the account's last name"],
    "lookup": {"table": "Customer", "column": "FirstName", "value": "Frank"},
}


def reply(*tasks: dict[str, Any]) -> str:
    return orjson.dumps({"tasks": list(tasks)}).decode()


async def generated(
    chinook: SQLDatabase, *tasks: dict[str, Any], kinds: list[Any], count: int = 2, share: float = 1.0
) -> tuple[Any, ScriptedModel]:
    model = ScriptedModel([reply(*tasks)])
    batch = await generate_tasks(
        model,
        CHINOOK,
        TOOLS,
        style="descriptive",
        count=count,
        difficulty_mix={"easy": 1, "medium": 1},
        hard_goals=share,
        hard_kinds=kinds,
        policy=POLICY,
        database=chinook,
    )
    return batch, model


def reasons(batch: Any) -> str:
    return " | ".join(reason for rejection in batch.rejected for reason in rejection.reasons)


# Which kinds, and how many


def test_a_domain_supports_the_kinds_its_policy_tools_and_executed_data_can_ground(chinook: SQLDatabase) -> None:
    with_writes = hard_goal_kinds(policy=POLICY, tools=TOOLS, database=chinook, executed=True)
    read_only = hard_goal_kinds(policy=POLICY, tools=[LOOK_UP], database=chinook, executed=True)
    simulated = hard_goal_kinds(policy=POLICY, tools=TOOLS, database=chinook, executed=False)

    assert with_writes == ALL_KINDS
    assert read_only == ["forbidden", "missing_entity", "ambiguous_entity"], "no constraint without a write"
    assert simulated == ["forbidden"], "a model playing the tools would invent the missing record"
    assert hard_goal_kinds(policy=POLICY, tools=TOOLS, database=None, executed=True) == ["forbidden"]
    assert hard_goal_kinds(policy=" ", tools=TOOLS, database=None, executed=True) == []


@pytest.mark.parametrize(
    ("count", "share", "kinds", "expected"),
    [
        (20, 0.25, ALL_KINDS, {"forbidden": 2, "constraint": 1, "missing_entity": 1, "ambiguous_entity": 1}),
        (10, 0.25, ["forbidden", "missing_entity"], {"forbidden": 2, "missing_entity": 1}),  # 2.5 rounds up
        (8, 0.0, ["forbidden"], {"forbidden": 0}),
        (8, 0.5, [], {}),
    ],
)
def test_the_share_of_goals_is_rounded_and_spread_evenly_over_the_kinds(
    count: int, share: float, kinds: list[Any], expected: dict[str, int]
) -> None:
    assert hard_goal_counts(count, share, kinds) == expected


def test_a_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        hard_goal_counts(4, 1.5, ["forbidden"])


async def test_the_task_stage_asks_for_its_share_of_each_kind_and_labels_the_goals(chinook: SQLDatabase) -> None:
    batch, model = await generated(chinook, FORBIDDEN, MISSING, kinds=ALL_KINDS, count=8, share=0.5)

    assert batch.rejected == []
    assert [task.kind for task in batch.items] == ["forbidden", "missing_entity"]
    asked = filled_in(prompt_of(model), "tasks_descriptive")
    assert asked["policy"] == POLICY
    section = filled_in(asked["hard_goals"].strip(), "tasks_parts", "hard_goals")
    assert (section["count"], section["hard"]) == ("8", "4")
    assert section["mix"] == "1 forbidden, 1 constraint, 1 missing_entity, 1 ambiguous_entity"
    assert section["kinds"] == "\n".join(render_section("tasks_parts", kind) for kind in ALL_KINDS)
    assert render_section("tasks_parts", "lookup") in section["data"]
    assert render_section("tasks_parts", "unchanged_checks") in section["data"]
    assert fragment_text("unhappy_paths") in asked["hard_goals"], "the writers read the judge's rule"
    schema = model.requests[0].options.response_format
    assert schema is not None
    fields = schema.json_schema["properties"]["tasks"]["items"]["properties"]
    assert fields["kind"]["enum"] == ["ordinary", *ALL_KINDS]


async def test_without_a_share_nothing_is_asked_and_every_goal_is_ordinary(chinook: SQLDatabase) -> None:
    ordinary = {**FORBIDDEN, "kind": "ordinary", "checks": [NOW_HAMBURG]}
    ordinary.pop("lookup")
    ordinary.pop("kind")
    batch, model = await generated(chinook, ordinary, kinds=ALL_KINDS, count=1, share=0.0)

    assert [task.kind for task in batch.items] == ["ordinary"]
    assert filled_in(prompt_of(model), "tasks_descriptive")["hard_goals"] == ""
    schema = model.requests[0].options.response_format
    assert schema is not None
    assert "kind" not in schema.json_schema["properties"]["tasks"]["items"]["properties"]


# Each kind checked against the data


async def test_a_forbidden_goal_whose_checks_pass_only_if_the_change_happened_is_rejected(
    chinook: SQLDatabase,
) -> None:
    batch, _ = await generated(chinook, {**FORBIDDEN, "checks": [NOW_HAMBURG]}, kinds=["forbidden"], count=1)

    assert batch.items == []
    assert "check 1 is false on the data now" in reasons(batch)


async def test_a_forbidden_goal_asking_for_a_change_needs_a_check_that_the_record_is_left_alone(
    chinook: SQLDatabase,
) -> None:
    batch, _ = await generated(chinook, {**FORBIDDEN, "checks": []}, kinds=["forbidden"], count=1)

    assert batch.items == []
    assert "refuses" in reasons(batch) and "no check" in reasons(batch)


async def test_a_forbidden_goal_keeps_its_checks_that_the_record_is_unchanged(chinook: SQLDatabase) -> None:
    batch, _ = await generated(chinook, FORBIDDEN, kinds=["forbidden"], count=1)

    (task,) = batch.items
    assert task.kind == "forbidden" and task.checks_unchanged
    assert [check.sql for check in task.checks] == [STILL_STUTTGART["sql"]]


async def test_a_missing_entity_that_exists_is_rejected(chinook: SQLDatabase) -> None:
    exists = {**MISSING, "lookup": {"table": "Customer", "column": "Email", "value": "leonekohler@surfeu.de"}}
    batch, _ = await generated(chinook, exists, kinds=["missing_entity"], count=1)

    assert batch.items == []
    assert "is in the data, so the record is not missing" in reasons(batch)


async def test_an_ambiguous_entity_needs_two_matching_records(chinook: SQLDatabase) -> None:
    unique = {**AMBIGUOUS, "lookup": {"table": "Customer", "column": "FirstName", "value": "Leonie"}}
    kept, _ = await generated(chinook, AMBIGUOUS, kinds=["ambiguous_entity"], count=1)
    rejected, _ = await generated(chinook, unique, kinds=["ambiguous_entity"], count=1)

    assert [task.kind for task in kept.items] == ["ambiguous_entity"]
    assert rejected.items == [] and "matches 1 row" in reasons(rejected)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({**MISSING, "lookup": None}, "gives the detail at issue in lookup"),
        ({**MISSING, "lookup": {"table": "Client", "column": "Email", "value": "x@y.z"}}, "lookup table 'Client'"),
        ({**MISSING, "kind": "ambiguous_entity", "lookup": None}, "gives the detail at issue in lookup"),
    ],
)
async def test_a_goal_without_the_detail_its_kind_is_about_is_rejected(
    chinook: SQLDatabase, entry: dict[str, Any], reason: str
) -> None:
    batch, _ = await generated(chinook, entry, kinds=["missing_entity", "ambiguous_entity"], count=2)

    assert batch.items == []
    assert reason in reasons(batch)


async def test_a_goal_of_a_kind_not_asked_for_is_rejected(chinook: SQLDatabase) -> None:
    batch, _ = await generated(chinook, MISSING, kinds=["missing_entity"], count=1, share=0.0)

    assert batch.items == []
    assert "kind 'missing_entity' is not one asked for" in reasons(batch)
