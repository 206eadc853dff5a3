"""The data model refuses conversations that trainers and chat templates would choke on."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from dialforge.json_schema.checks import json_schema_problem
from dialforge.model import (
    AssistantMessage,
    Dialogue,
    DialogueState,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    Usage,
    UserMessage,
    conversation_problems,
    parse_messages,
    to_openai,
)

LOOKUP = ToolSpec(
    name="get_order",
    description="Look up one order by id; returns the order with its lines.",
    parameters={"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]},
)


def call(id: str, name: str = "get_order", arguments: dict | str = '{"order_id": 1}') -> ToolCall:
    return ToolCall.make(id, name, arguments)


def answered(*calls: ToolCall) -> list:
    return [
        UserMessage(content="Where is my order?"),
        AssistantMessage(tool_calls=list(calls)),
        *[ToolMessage(tool_call_id=c.id, name=c.name, content='{"status": "shipped"}') for c in calls],
        AssistantMessage(content="It has shipped."),
    ]


def dialogue(messages: list) -> Dialogue:
    return Dialogue(id="d1", mode="user", domain="shop", tools=[LOOKUP.to_openai()], messages=messages)


def test_well_formed_dialogue_with_parallel_calls_is_accepted() -> None:
    record = dialogue(answered(call("a"), call("b")))
    assert record.messages[1].tool_calls[1].id == "b"


def test_duplicate_tool_call_ids_are_rejected() -> None:
    messages = [
        *answered(call("a")),
        UserMessage(content="And again?"),
        AssistantMessage(tool_calls=[call("a")]),
        ToolMessage(tool_call_id="a", name="get_order", content="{}"),
    ]
    with pytest.raises(ValidationError, match="'a' is used twice"):
        dialogue(messages)


def test_unanswered_tool_call_is_rejected() -> None:
    messages = [UserMessage(content="hi"), AssistantMessage(tool_calls=[call("a")]), AssistantMessage(content="ok")]
    with pytest.raises(ValidationError, match="never answered"):
        dialogue(messages)


def test_tool_message_answering_nothing_is_rejected() -> None:
    messages = [UserMessage(content="hi"), ToolMessage(tool_call_id="zz", name="get_order", content="{}")]
    assert "not an open call" in conversation_problems(messages, ["get_order"])[0]


def test_tool_answered_twice_is_rejected() -> None:
    messages = answered(call("a"))
    messages.insert(3, ToolMessage(tool_call_id="a", name="get_order", content="{}"))
    assert any("not an open call" in p for p in conversation_problems(messages, ["get_order"]))


def test_unknown_tool_and_bad_arguments_are_named() -> None:
    problems = conversation_problems(
        answered(call("a", name="cancel_order"), call("b", arguments="{not json")), ["get_order"]
    )
    assert any("unknown tool 'cancel_order'" in p for p in problems)
    assert any("not valid JSON" in p for p in problems)


def test_arguments_that_are_json_but_not_an_object_are_rejected() -> None:
    problems = conversation_problems(answered(call("a", arguments="[1, 2]")), ["get_order"])
    assert problems == ["message 1: arguments of tool call 'a' are JSON but not an object"]


def test_tool_message_name_must_match_its_call() -> None:
    messages = answered(call("a"))
    messages[2] = ToolMessage(tool_call_id="a", name="other", content="{}")
    assert "named 'other' but the call was to 'get_order'" in conversation_problems(messages, ["get_order"])[0]


def test_state_in_flight_may_have_pending_calls_but_record_may_not() -> None:
    messages = [UserMessage(content="hi"), AssistantMessage(tool_calls=[call("a")])]
    state = DialogueState(id="d1", mode="user", domain="shop", tools=[LOOKUP], messages=messages)
    assert state.problems() == []
    assert conversation_problems(messages, ["get_order"]) != []


def test_state_round_trips_through_json() -> None:
    state = DialogueState(
        id="d1", mode="user+exec", domain="shop", tools=[LOOKUP], messages=answered(call("a")), seed=7
    )
    state.usage["agent"] = Usage(calls=2, prompt_tokens=10)
    again = DialogueState.model_validate_json(state.model_dump_json())
    assert again == state


def test_openai_dicts_parse_and_serialise_back_unchanged() -> None:
    raw = [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "a", "name": "f", "content": "[]"},
    ]
    assert [to_openai(m) for m in parse_messages(raw)] == raw


def test_reasoning_is_kept_apart_and_only_sent_when_asked() -> None:
    message = AssistantMessage(content="Done.", reasoning="The user wants X.")
    assert "reasoning" not in to_openai(message)
    assert to_openai(message, keep_reasoning=True)["reasoning"] == "The user wants X."


def test_unknown_role_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_messages([{"role": "developer", "content": "x"}])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "get order"}, "letters, digits"),
        ({"parameters": {"type": "array"}}, '"type": "object"'),
        ({"parameters": {"type": "object", "properties": {}, "required": ["x"]}}, "not in properties"),
        ({"parameters": {"type": "object", "properties": {"x": {"type": "decimal"}}}}, "not a valid JSON schema"),
    ],
)
def test_tool_spec_rejects_what_servers_refuse(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ToolSpec(**{**LOOKUP.model_dump(), **change})


def test_a_schema_is_checked_once_per_content(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[object] = []
    check = Draft202012Validator.check_schema
    monkeypatch.setattr(Draft202012Validator, "check_schema", lambda schema: checked.append(schema) or check(schema))
    schema = {"type": "object", "properties": {"x": {"type": "decimal"}, "y": {"type": "string", "minLength": 1}}}
    reordered = {"properties": {"y": {"minLength": 1, "type": "string"}, "x": {"type": "decimal"}}, "type": "object"}

    first = json_schema_problem(schema, "parameters")
    again = json_schema_problem(reordered, "returns")

    assert len(checked) == 1
    assert first is not None and first.startswith("parameters is not a valid JSON schema: 'decimal'")
    assert again == first.replace("parameters", "returns", 1)
    assert json_schema_problem({"type": "object", "big": 2**70}, "returns") is None, "not JSON for orjson: checked"
    assert len(checked) == 2


def test_tool_spec_openai_round_trip_keeps_extras_off_the_wire() -> None:
    spec = LOOKUP.model_copy(update={"sql": "SELECT * FROM orders WHERE id = :order_id", "returns": {"type": "object"}})
    wire = spec.to_openai()
    assert set(wire["function"]) == {"name", "description", "parameters"}
    assert ToolSpec.from_openai({**wire, "sql": spec.sql, "returns": spec.returns}) == spec


def test_system_message_first_is_fine() -> None:
    assert conversation_problems([SystemMessage(content="x"), *answered(call("a"))], ["get_order"]) == []
