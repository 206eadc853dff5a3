"""Return schemas are predicted over the whole tool set, checked for shape and for one type per field name."""

from __future__ import annotations

from typing import Any

import orjson

from dialforge.actors.generators.return_schemas import field_type_conflicts, predict_return_schemas
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.model.domain import Domain
from dialforge.model.tools import ToolSpec
from dialforge.prompts import load_prompt
from prompt_checks import assert_mentions, filled_in, prompt_of

LIBRARY = Domain(name="public library", description="Members borrow books.")


def tool(name: str, **parameters: str) -> ToolSpec:
    properties = {key: {"type": kind, "description": f"the {key}"} for key, kind in parameters.items()}
    return ToolSpec(
        name=name,
        description=f"The {name} tool of the library.",
        parameters={"type": "object", "properties": properties, "required": list(properties)},
    )


def record(**fields: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": kind} for key, kind in fields.items()}}


def array_of(**fields: str) -> dict[str, Any]:
    return {"type": "array", "items": record(**fields)}


SEARCH = tool("search_members", query="string")
GET = tool("get_member", member_id="integer")
LOAN = tool("create_loan", member_id="integer", book_id="integer")
TOOLS = [SEARCH, GET, LOAN]
MEMBERS = array_of(member_id="integer", full_name="string")
MEMBER = record(member_id="integer", full_name="string", joined="string")
NEW_LOAN = record(loan_id="integer", member_id="integer", book_id="integer")


def reply(**schemas: dict[str, Any] | None) -> str:
    return orjson.dumps({"returns": [{"name": name, "schema": schema} for name, schema in schemas.items()]}).decode()


async def test_one_request_gives_every_tool_its_schema_in_input_order() -> None:
    model = ScriptedModel([reply(create_loan=NEW_LOAN, search_members=MEMBERS, get_member=MEMBER)])

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert [tool.name for tool in result.items] == ["search_members", "get_member", "create_loan"]
    assert [tool.returns for tool in result.items] == [MEMBERS, MEMBER, NEW_LOAN]
    assert result.rejected == [] and result.errors == [] and len(model.requests) == 1
    asked = filled_in(prompt_of(model), "return_schemas")
    assert_mentions(asked["tools"], *(f'"name":"{tool.name}"' for tool in TOOLS))
    assert asked["names"] == "search_members, get_member, create_loan"
    assert model.requests[0].options.response_format is not None
    assert model.requests[0].options.response_format.name == "return_schemas"


async def test_a_tool_with_a_schema_keeps_it_and_is_not_asked_for() -> None:
    given = GET.model_copy(update={"returns": MEMBER})
    model = ScriptedModel([reply(search_members=MEMBERS, get_member=record(member_id="string"))])

    result = await predict_return_schemas(model, LIBRARY, [SEARCH, given])

    assert result.items == [SEARCH.model_copy(update={"returns": MEMBERS}), given]
    assert filled_in(prompt_of(model), "return_schemas")["names"] == "search_members"
    assert await predict_return_schemas(ScriptedModel([]), LIBRARY, [given]) == type(result)(items=[given])


async def test_a_malformed_reply_is_asked_again_by_the_client() -> None:
    model = ScriptedModel(['{"returns": [', reply(search_members=MEMBERS, get_member=MEMBER, create_loan=NEW_LOAN)])

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert all(tool.returns is not None for tool in result.items)
    assert len(model.requests) == 2


async def test_bad_schemas_are_kept_out_and_their_tools_returned_without_one() -> None:
    model = ScriptedModel(
        [reply(search_members=record(member_id="integer"), get_member={"type": "obj"}), reply()],
    )

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert result.items == TOOLS
    unanswered = "the repair round sent no corrected schema for this tool"
    assert [(r.label, r.reasons) for r in result.rejected] == [
        (
            "search_members",
            ['search_members searches or lists, so it returns "type": "array" of records, not object', unanswered],
        ),
        (
            "get_member",
            ["the schema is not a valid JSON schema: 'obj' is not valid under any of the given schemas", unanswered],
        ),
        ("create_loan", ["no return schema was given for this tool", unanswered]),
    ]
    assert result.rejected[1].submitted == {"name": "get_member", "schema": {"type": "obj"}}


async def test_a_get_tool_returns_an_object() -> None:
    model = ScriptedModel([reply(search_members=MEMBERS, get_member=MEMBERS, create_loan=NEW_LOAN), reply()])

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert result.rejected[0].reasons[0] == 'get_member gets one record, so it returns "type": "object", not array'


async def test_a_type_conflict_is_reported_and_repaired() -> None:
    wrong = record(member_id="string", full_name="string")
    model = ScriptedModel(
        [
            reply(search_members=MEMBERS, get_member=wrong, create_loan=NEW_LOAN),
            reply(get_member=MEMBER),
        ]
    )

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert [tool.returns for tool in result.items] == [MEMBERS, MEMBER, NEW_LOAN]
    assert result.repaired == 1 and result.rejected == []
    reason = (
        "field 'member_id' is string here but integer in get_member parameters, create_loan parameters; "
        "give it one type across the domain"
    )
    repair = filled_in(prompt_of(model, 1), "return_schemas_repair")
    assert repair["names"] == "get_member"
    assert reason in repair["failures"]


async def test_new_schemas_that_disagree_follow_the_majority_or_all_fail_on_a_tie() -> None:
    tools = [tool("search_books", query="string"), tool("get_book", isbn="string"), tool("search_loans")]
    majority = ScriptedModel(
        [
            reply(
                search_books=array_of(year="integer"),
                get_book=record(year="integer"),
                search_loans=array_of(year="string"),
            ),
            reply(),
        ]
    )
    tie = ScriptedModel([reply(search_books=array_of(year="integer"), get_book=record(year="string")), reply()])

    by_majority = await predict_return_schemas(majority, LIBRARY, tools)
    by_tie = await predict_return_schemas(tie, LIBRARY, tools[:2])

    assert [r.label for r in by_majority.rejected] == ["search_loans"]
    assert by_majority.rejected[0].reasons[0] == (
        "field 'year' is string here but integer in search_books returns, get_book returns; "
        "give it one type across the domain"
    )
    assert [r.label for r in by_tie.rejected] == ["search_books", "get_book"]


async def test_the_repair_reply_is_matched_by_name() -> None:
    model = ScriptedModel(
        [
            reply(search_members=MEMBER, get_member=MEMBERS, create_loan=NEW_LOAN),
            reply(no_such_tool=MEMBER, get_member=MEMBER, search_members=MEMBERS),
        ]
    )

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert [tool.returns for tool in result.items] == [MEMBERS, MEMBER, NEW_LOAN]
    assert result.repaired == 2 and result.rejected == []


async def test_the_repair_round_saves_some_and_the_rest_are_reported() -> None:
    model = ScriptedModel(
        [
            reply(search_members=MEMBER, get_member=MEMBERS, create_loan=NEW_LOAN),
            reply(search_members=MEMBERS, get_member=record(member_id="boolean")),
        ]
    )

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert [tool.returns for tool in result.items] == [MEMBERS, None, NEW_LOAN]
    assert result.repaired == 1
    assert [(r.label, r.reasons[0][:39]) for r in result.rejected] == [
        ("get_member", "field 'member_id' is boolean here but i")
    ]


async def test_a_model_error_keeps_every_tool_and_reports_each_missing_schema() -> None:
    model = ScriptedModel([ModelUnavailable("the server is down")])

    result = await predict_return_schemas(model, LIBRARY, TOOLS)

    assert result.items == TOOLS
    assert result.errors == ["the request failed: the server is down"]
    assert [(r.label, r.reasons) for r in result.rejected] == [
        (tool.name, ["no return schema was predicted", "the request failed: the server is down"]) for tool in TOOLS
    ]


def test_field_type_conflicts_walk_parameters_nested_records_and_array_items() -> None:
    lines = {"type": "array", "items": record(book_id="string", due="string")}
    loan = LOAN.model_copy(update={"returns": {"type": "object", "properties": {"lines": lines}}})
    nullable = GET.model_copy(
        update={"returns": {"type": "object", "properties": {"member_id": {"type": ["integer", "null"]}}}}
    )

    assert field_type_conflicts([loan, nullable]) == [
        "field 'book_id' is integer in create_loan parameters but string in create_loan returns"
    ]
    assert field_type_conflicts(TOOLS) == []


async def test_the_dry_run_model_does_not_crash_the_stage() -> None:
    result = await predict_return_schemas(DryRunModel(seed=1), LIBRARY, TOOLS)

    assert [tool.name for tool in result.items] == [tool.name for tool in TOOLS]
    assert all(rejection.reasons for rejection in result.rejected)
    assert {r.label for r in result.rejected} == {tool.name for tool in result.items if tool.returns is None}


def test_the_prompts_are_packaged() -> None:
    for name in ("return_schemas", "return_schemas_repair"):
        assert load_prompt(name).strip()
