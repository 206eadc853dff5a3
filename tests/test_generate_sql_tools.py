"""Model-written SQL tools are checked before use and repaired once; a bad reply never crashes synthesis."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dialforge.actors.generators.sql_tools import synthesize_sql_tools
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.model import Domain
from dialforge.prompts import load_prompt
from prompt_checks import assert_in_order, filled_in, prompt_of

SCRIPT = """
CREATE TABLE member (member_id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
CREATE TABLE loan (
    loan_id INTEGER PRIMARY KEY,
    member_id INTEGER NOT NULL REFERENCES member (member_id),
    title TEXT NOT NULL,
    returned TEXT
);
INSERT INTO member VALUES (1, 'Ines Silva', 'Lisbon'), (2, 'Hiro Tanaka', 'Osaka');
INSERT INTO loan VALUES (1, 1, 'Dune', NULL), (2, 1, 'Emma', '2024-02-01'), (3, 2, 'Ulysses', NULL);
"""
LIBRARY = Domain(
    name="public library", description="Harbour Street Library, a public lending library with two branches."
)
MEMBER_ID = {"type": "object", "properties": {"member_id": {"type": "integer"}}, "required": ["member_id"]}
OPEN_LOANS = {
    "name": "list_open_loans_for_member",
    "description": "Loans a member has not returned. Returns an array of {loan_id, title}.",
    "parameters": MEMBER_ID,
    "sql": "SELECT loan_id, title FROM loan WHERE member_id = :member_id AND returned IS NULL ORDER BY loan_id LIMIT 9",
    "kind": "read",
}
RETURN_LOAN = {
    "name": "update_loan_returned",
    "description": "Mark a loan returned today. Returns {rows_affected, last_row_id}.",
    "parameters": {"type": "object", "properties": {"loan_id": {"type": "integer"}}, "required": ["loan_id"]},
    "sql": "UPDATE loan SET returned = date('now') WHERE loan_id = :loan_id",
    "kind": "write",
}


@pytest.fixture(scope="module")
def library() -> SQLDatabase:
    return SQLDatabase.from_script(SCRIPT, source="library.sql")


def reply(*tools: dict[str, Any]) -> str:
    return orjson.dumps({"tools": list(tools)}).decode()


async def test_a_good_reply_gives_its_tools(library: SQLDatabase) -> None:
    model = ScriptedModel([reply(OPEN_LOANS, RETURN_LOAN)])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY, count=2, seed=7)

    # get_loan comes from the scaffold: no tool of the reply returns the returned date update_loan_returned sets
    assert [tool.name for tool in result.items] == ["list_open_loans_for_member", "update_loan_returned", "get_loan"]
    assert result.items[1].kind == "write"
    assert (result.rejected, result.repaired, result.errors) == ([], 0, [])
    request = model.requests[0]
    assert request.options.response_format is not None and request.options.response_format.name == "sql_tools"
    assert request.options.seed == 7
    prompt = prompt_of(model)
    asked = filled_in(prompt, "sql_tools")
    assert (asked["domain"], asked["count"]) == ("public library", "2")
    assert "CREATE TABLE loan" in asked["schema"]
    assert '"Ines Silva"' in asked["data_view"]  # a limited view of the data
    assert "$" not in prompt.replace("$name", "")  # every placeholder was filled


async def test_a_set_that_reads_back_what_it_writes_gets_nothing_added(library: SQLDatabase) -> None:
    loans = {
        **OPEN_LOANS,
        "name": "list_loans_for_member",
        "sql": OPEN_LOANS["sql"].replace("title", "title, returned"),
    }
    model = ScriptedModel([reply(loans, {**RETURN_LOAN, "name": "return_loan"})])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY, count=2)

    assert [tool.name for tool in result.items] == ["list_loans_for_member", "return_loan"]


async def test_one_invalid_tool_is_repaired_and_the_other_dropped_with_reasons(library: SQLDatabase) -> None:
    bad_table = {**OPEN_LOANS, "name": "list_loans", "sql": "SELECT title FROM loans LIMIT 5", "parameters": {}}
    bad_kind = {**RETURN_LOAN, "kind": "read"}
    still_bad = {**bad_table, "sql": "SELECT titel FROM loan LIMIT 5", "parameters": {"type": "object"}}
    model = ScriptedModel([reply(OPEN_LOANS, bad_table, bad_kind), reply(still_bad, RETURN_LOAN)])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY, count=3)

    assert [tool.name for tool in result.items] == ["list_open_loans_for_member", "update_loan_returned", "get_loan"]
    assert result.repaired == 1
    (saved,) = result.repairs  # what the repaired tool first got wrong, kept for the stage report
    assert saved.label == "update_loan_returned" and saved.submitted["kind"] == "read"
    assert any("declare kind 'write'" in reason for reason in saved.reasons)
    (dropped,) = result.rejected
    assert dropped.label == "list_loans"
    assert dropped.reasons == ['unknown column "titel": "loan" has no such column; did you mean "title"?']
    repair = filled_in(prompt_of(model, 1), "sql_tools_repair")
    assert repair["count"] == "2" and repair["accepted"] == "list_open_loans_for_member"  # names already taken
    assert_in_order(
        repair["failures"],
        "list_loans",
        'unknown table "loans"; did you mean "loan"?',
        "update_loan_returned",
        "the statement (UPDATE) changes rows: declare kind 'write', not 'read'",
    )


async def test_a_tool_the_repair_round_leaves_out_is_dropped_and_says_so(library: SQLDatabase) -> None:
    model = ScriptedModel([reply({**OPEN_LOANS, "name": "Open Loans"}), reply()])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY)

    assert result.items == []
    assert result.rejected[0].reasons[-1] == "the repair round sent no corrected version of this item"


async def test_a_malformed_reply_is_asked_again_once(library: SQLDatabase) -> None:
    model = ScriptedModel(["Here are the tools: {tools: [", reply(OPEN_LOANS)])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY)

    assert [tool.name for tool in result.items] == ["list_open_loans_for_member"]


async def test_a_reply_malformed_twice_gives_an_empty_result_with_the_error(library: SQLDatabase) -> None:
    model = ScriptedModel(["not json", '{"tools": "none"}'])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY)

    assert result.items == [] and result.rejected == []
    assert len(result.errors) == 1 and "unusable reply twice" in result.errors[0]


async def test_a_model_error_gives_an_empty_result_with_the_error(library: SQLDatabase) -> None:
    model = ScriptedModel([ModelUnavailable("the server is down")])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY)

    assert result.items == []
    assert result.errors == ["the request failed: the server is down"]


async def test_a_failed_repair_request_keeps_what_was_valid(library: SQLDatabase) -> None:
    model = ScriptedModel([reply(OPEN_LOANS, {**RETURN_LOAN, "kind": "read"}), ModelUnavailable("timeout")])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY)

    assert [tool.name for tool in result.items] == ["list_open_loans_for_member"]
    assert [rejection.label for rejection in result.rejected] == ["update_loan_returned"]
    assert result.errors == ["the repair request failed: timeout"]


async def test_at_most_count_tools_are_kept(library: SQLDatabase) -> None:
    model = ScriptedModel([reply(OPEN_LOANS, RETURN_LOAN)])

    result = await synthesize_sql_tools(model, library, domain=LIBRARY, count=1)

    assert [tool.name for tool in result.items] == ["list_open_loans_for_member"]


async def test_the_dry_run_model_does_not_crash_synthesis(library: SQLDatabase) -> None:
    result = await synthesize_sql_tools(DryRunModel(seed=3), library, domain=LIBRARY, count=4)

    assert result.errors == []
    assert all(verdict.reasons for verdict in result.rejected)
    assert len(result.items) + len(result.rejected) > 0


def test_the_prompts_are_packaged() -> None:
    for name in ("sql_tools", "sql_tools_repair"):
        assert load_prompt(name).strip()
    with pytest.raises(ValueError, match="sql_tools"):
        load_prompt("no_such_prompt")


async def test_the_writer_is_told_what_the_application_is(library: SQLDatabase) -> None:
    model = ScriptedModel([reply(OPEN_LOANS)])
    await synthesize_sql_tools(model, library, domain=LIBRARY, count=1)
    assert filled_in(prompt_of(model), "sql_tools")["description"] == LIBRARY.description
