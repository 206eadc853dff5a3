"""Tool specs and tool expansion: every proposed tool is checked, known tools are reused, duplicates merged."""

from __future__ import annotations

from typing import Any

import orjson

from dialforge.actors.generators.expansion import expand_tools
from dialforge.actors.generators.item_repair import ItemBatch
from dialforge.actors.generators.tool_specs import generate_tool_specs, merge_tool_specs
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.model.domain import Domain
from dialforge.model.tools import ToolSpec
from dialforge.prompts import load_prompt
from prompt_checks import assert_in_order, filled_in, prompt_of

CLINIC = Domain(name="dental clinic", description="Appointments, patients and treatments of a dental clinic.")
QUESTION = "Move my cleaning on March 14 to the following week."


def prop(kind: str, description: str = "What the value is and where it comes from", **more: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **more}


def params(required: tuple[str, ...] = (), **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


SEARCH = {
    "name": "search_appointments",
    "description": "Find a patient's appointments by name. Returns an array of {appointment_id, start}.",
    "parameters": params(("patient_name",), patient_name=prop("string"), date=prop("string")),
}
MOVE = {
    "name": "update_appointment_slot",
    "description": "Move an appointment to a free slot. Returns the updated appointment.",
    "parameters": params(("appointment_id", "slot_id"), appointment_id=prop("integer"), slot_id=prop("integer")),
}
SLOTS = {
    "name": "list_free_slots",
    "description": "A dentist's free slots between two days. Returns an array of {slot_id, start}.",
    "parameters": params(("dentist",), dentist=prop("string"), from_date=prop("string"), to_date=prop("string")),
}
KNOWN = ToolSpec(**SEARCH)


def reply(*tools: dict[str, Any]) -> str:
    return orjson.dumps({"tools": list(tools)}).decode()


def reasons_by_label(result: ItemBatch[ToolSpec]) -> dict[str, list[str]]:
    return {rejection.label: rejection.reasons for rejection in result.rejected}


# Tool specs for a question


async def test_a_good_reply_reuses_known_tools_and_adds_new_ones() -> None:
    model = ScriptedModel([reply(SEARCH, SLOTS, MOVE)])

    result = await generate_tool_specs(model, CLINIC, QUESTION, known=[KNOWN])

    assert [tool.name for tool in result.items] == ["search_appointments", "list_free_slots", "update_appointment_slot"]
    assert result.items[0] is KNOWN
    assert result.rejected == [] and result.errors == [] and len(model.requests) == 1
    asked = filled_in(prompt_of(model), "tool_specs")
    assert (asked["domain"], asked["question"]) == ("dental clinic", QUESTION)
    assert '"name":"search_appointments"' in asked["known_tools"]
    assert model.requests[0].options.response_format is not None
    assert model.requests[0].options.response_format.name == "tool_specs"


async def test_a_malformed_reply_is_asked_again_by_the_client() -> None:
    model = ScriptedModel(["Here are the tools: {tools: [", reply(SLOTS)])

    result = await generate_tool_specs(model, CLINIC, QUESTION, known=[])

    assert [tool.name for tool in result.items] == ["list_free_slots"]
    assert len(model.requests) == 2


async def rejection_reasons(*tools: dict[str, Any]) -> list[list[str]]:
    """The reasons each tool is rejected for, when the repair round sends nothing back."""
    result = await generate_tool_specs(ScriptedModel([reply(*tools), reply()]), CLINIC, QUESTION, known=[KNOWN])
    assert result.items == []
    unanswered = "the repair round sent no corrected version of this item"
    assert all(rejection.reasons[-1] == unanswered for rejection in result.rejected)
    return [rejection.reasons[:-1] for rejection in result.rejected]


async def test_names_and_descriptions_are_checked() -> None:
    reasons = await rejection_reasons(
        {**SLOTS, "name": "listFreeSlots"},
        {**SLOTS, "name": ""},
        {**SLOTS, "name": "list_slots", "description": "Free slots."},
        {**MOVE, "name": "search_appointments"},
    )

    assert reasons[0][0].startswith("name 'listFreeSlots' is not snake_case")
    assert reasons[1] == ["the tool has no name"]
    assert reasons[2][0].startswith("the description has 11 characters; write at least 20")
    assert reasons[3] == [
        "name search_appointments is taken by a tool with parameters [patient_name: string, date: string]"
    ]


async def test_parameters_are_checked() -> None:
    reasons = await rejection_reasons(
        {**SLOTS, "parameters": {"type": "objekt"}},
        {**SLOTS, "parameters": {"type": "array", "items": {"type": "string"}}},
        {**SLOTS, "parameters": params(("dentist", "clinic"), dentist=prop("string"))},
        {**SLOTS, "parameters": params(dentist={"type": "string"}, day={"description": "Day"})},
        {**SLOTS, "parameters": params(dentist_id=prop("string", enum=["d1", "d2"]))},
        {**SLOTS, "parameters": params(room=prop("string", enum=[f"r{n}" for n in range(30)]))},
    )

    assert reasons[0][0].startswith("parameters is not a valid JSON schema: 'objekt' is not valid")
    assert reasons[1] == ['parameters must be a JSON schema with "type": "object"']
    assert reasons[2] == ["required names parameters that are not in properties: ['clinic']"]
    assert reasons[3] == [
        "parameter 'dentist' has no description: say what the value is and where it comes from",
        "parameter 'day' has no type",
    ]
    assert reasons[4][0].startswith("parameter 'dentist_id' has an enum, but ids, names, emails, dates, times and")
    assert reasons[5][0].startswith("parameter 'room' has an enum of 30 values")


async def test_repeated_tools_in_a_reply_come_back_once() -> None:
    model = ScriptedModel([reply(SEARCH, SLOTS, {**SLOTS, "description": "Free slots of a dentist, any length."})])

    result = await generate_tool_specs(model, CLINIC, QUESTION, known=[KNOWN])

    assert [tool.name for tool in result.items] == ["search_appointments", "list_free_slots"]
    assert result.rejected == []


async def test_the_repair_round_saves_some_and_the_rest_are_dropped_with_reasons() -> None:
    model = ScriptedModel(
        [
            reply(
                SLOTS, {**MOVE, "name": "Move Appointment"}, {**SEARCH, "name": "search_patients", "description": ""}
            ),
            reply(MOVE, {**SEARCH, "name": "search_patients", "description": "Short."}),
        ]
    )

    result = await generate_tool_specs(model, CLINIC, QUESTION, known=[])

    assert [tool.name for tool in result.items] == ["list_free_slots", "update_appointment_slot"]
    assert result.repaired == 1
    assert list(reasons_by_label(result)) == ["search_patients"]
    assert reasons_by_label(result)["search_patients"][0].startswith("the description has 6 characters")
    repair = filled_in(prompt_of(model, 1), "tool_specs_repair")
    assert repair["count"] == "2" and repair["kept"] == "list_free_slots"
    assert_in_order(repair["failures"], "Move Appointment", "search_patients")


async def test_a_model_error_gives_an_empty_batch_with_the_error() -> None:
    model = ScriptedModel([ModelUnavailable("the server is down")])

    result = await generate_tool_specs(model, CLINIC, QUESTION, known=[KNOWN])

    assert result.items == [] and result.rejected == []
    assert result.errors == ["the request failed: the server is down"]


# Merging the tools of a domain


def test_merging_keeps_one_tool_per_name_and_signature_with_the_longer_description() -> None:
    short = ToolSpec(**SLOTS)
    longer = ToolSpec(**{**SLOTS, "description": SLOTS["description"] + " Use it before moving an appointment."})
    not_required = ToolSpec(**{**SLOTS, "parameters": {**SLOTS["parameters"], "required": []}})
    clash = ToolSpec(**{**MOVE, "name": "list_free_slots"})

    merged, rejected = merge_tool_specs([short, ToolSpec(**MOVE), longer, not_required, clash])

    assert merged == [longer, ToolSpec(**MOVE)]
    taken = (
        "name list_free_slots is taken by a tool with parameters [dentist: string, from_date: string, to_date: string]"
    )
    assert [(r.label, r.reasons) for r in rejected] == [("list_free_slots", [taken])]
    assert rejected[0].submitted["parameters"] == MOVE["parameters"]


# Tool expansion


async def test_expansion_adds_new_tools_and_shows_the_whole_set() -> None:
    model = ScriptedModel([reply({**SLOTS, "name": "search_free_slots"}, MOVE)])

    result = await expand_tools(model, CLINIC, [KNOWN], max_new=5)

    assert [tool.name for tool in result.items] == ["search_free_slots", "update_appointment_slot"]
    asked = filled_in(prompt_of(model), "tool_expansion")
    assert '"name":"search_appointments"' in asked["tools"] and asked["max_new"] == "5"


async def test_expansion_may_find_nothing_missing() -> None:
    model = ScriptedModel([reply()])

    result = await expand_tools(model, CLINIC, [KNOWN])

    assert result.items == [] and result.rejected == [] and result.errors == []
    assert await expand_tools(ScriptedModel([]), CLINIC, [KNOWN], max_new=0) == ItemBatch()


async def test_expansion_rejects_wrong_prefixes_trivial_helpers_and_repeats() -> None:
    def tool(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "description": description, "parameters": params()}

    proposals = [
        {**SLOTS, "name": "fetch_free_slots"},
        tool("search_add_numbers", "Adds two numbers and returns the sum of them."),
        tool("get_formatted_price", "Formats a price with its currency symbol for display."),
        tool("get_length_in_inches", "Converts a length from centimeters to inches for the patient."),
        tool("get_current_time", "Returns the current time in the clinic's timezone."),
        SEARCH,
        {**MOVE, "name": "search_appointments"},
    ]
    model = ScriptedModel([reply(*proposals), reply()])

    result = await expand_tools(model, CLINIC, [KNOWN])

    assert result.items == []
    first = [rejection.reasons[0] for rejection in result.rejected]
    assert first[0] == "name fetch_free_slots does not start with get_, list_, search_, create_, update_ or delete_"
    assert first[1].startswith("search_add_numbers is a trivial helper (arithmetic)")
    assert first[2].startswith("get_formatted_price is a trivial helper (formatting)")
    assert first[3].startswith("get_length_in_inches is a trivial helper (unit conversion)")
    assert first[4].startswith("get_current_time is a trivial helper (current date or time)")
    assert first[5] == "search_appointments repeats an existing tool; propose a new one"
    assert first[6].startswith("name search_appointments is taken by a tool with parameters")


async def test_expansion_keeps_domain_tools_that_only_look_like_helpers() -> None:
    tutoring = Domain(name="math tutoring", description="Online math lessons for school children.")
    proposals = [
        {"name": "get_math_exercises", "description": "Exercises for a math topic and grade.", "parameters": params()},
        {"name": "get_time_slots", "description": "Free lesson time slots of a tutor.", "parameters": params()},
        {"name": "update_lesson_time", "description": "Change the current time of a lesson.", "parameters": params()},
    ]
    model = ScriptedModel([reply(*proposals)])

    result = await expand_tools(model, tutoring, [])

    assert [tool.name for tool in result.items] == ["get_math_exercises", "get_time_slots", "update_lesson_time"]


async def test_expansion_keeps_at_most_max_new_tools() -> None:
    model = ScriptedModel([reply({**SLOTS, "name": "search_free_slots"}, {**MOVE, "name": "update_slot"})])

    result = await expand_tools(model, CLINIC, [KNOWN], max_new=1)

    assert [tool.name for tool in result.items] == ["search_free_slots"]


async def test_an_expansion_model_error_gives_an_empty_batch_with_the_error() -> None:
    result = await expand_tools(ScriptedModel([ModelUnavailable("timeout")]), CLINIC, [KNOWN])

    assert result.items == [] and result.errors == ["the request failed: timeout"]


# Dry runs


async def test_the_dry_run_model_does_not_crash_either_stage() -> None:
    specs = await generate_tool_specs(DryRunModel(seed=1), CLINIC, QUESTION, known=[KNOWN])
    expanded = await expand_tools(DryRunModel(seed=1), CLINIC, [KNOWN, *specs.items])

    for batch in (specs, expanded):
        assert all(rejection.reasons for rejection in batch.rejected)


def test_the_prompts_are_packaged() -> None:
    for name in ("tool_specs", "tool_specs_repair", "tool_expansion", "tool_expansion_repair"):
        assert load_prompt(name).strip()
