"""Replies from many kinds of OpenAI-compatible servers read the same; odd ones fail as BadResponse."""

from __future__ import annotations

import pytest

from dialforge.llm.server_reply import BadResponse, completion_from_response


def reply(message: dict, **extra: object) -> dict:
    return {"choices": [{"message": message, "finish_reason": "stop"}], "model": "m", **extra}


def test_content_as_a_list_of_parts_is_joined() -> None:
    parts = [
        {"type": "text", "text": "Hello "},
        {"type": "image_url", "image_url": {}},
        {"type": "text", "text": "there"},
    ]
    assert completion_from_response(reply({"content": parts}), "m", 0.1).content == "Hello there"


def test_arguments_as_object_or_empty_string_become_json_object_text() -> None:
    message = {
        "content": None,
        "tool_calls": [
            {"id": 7, "function": {"name": "get_order", "arguments": {"order_id": 1}}},
            {"id": "b", "function": {"name": "list_orders", "arguments": ""}},
        ],
    }
    calls = completion_from_response(reply(message), "m", 0.1).tool_calls
    assert [(c.id, c.function.arguments) for c in calls] == [("7", '{"order_id":1}'), ("b", "{}")]


def test_missing_call_ids_get_unique_random_ids() -> None:
    message = {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}] * 2}
    calls = completion_from_response(reply(message), "m", 0.1).tool_calls
    assert calls[0].id != calls[1].id and calls[0].id.startswith("call_")


def test_legacy_function_call_field_is_read() -> None:
    message = {"content": None, "function_call": {"name": "f", "arguments": '{"x": 1}'}}
    assert completion_from_response(reply(message), "m", 0.1).tool_calls[0].name == "f"


def test_hermes_tool_calls_left_in_text_are_recovered() -> None:
    content = 'Let me check.\n<tool_call>\n{"name": "get_order", "arguments": {"order_id": 3}}\n</tool_call>'
    completion = completion_from_response(reply({"content": content}), "m", 0.1)
    assert completion.content == "Let me check."
    assert completion.tool_calls[0].parsed_arguments() == {"order_id": 3}


def test_reasoning_fields_of_vllm_and_ollama_are_both_read() -> None:
    assert completion_from_response(reply({"content": "a", "reasoning_content": "r1"}), "m", 0).reasoning == "r1"
    assert completion_from_response(reply({"content": "a", "reasoning": "r2"}), "m", 0).reasoning == "r2"


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": [{"message": None}]},
        reply({"content": "x", "tool_calls": [None]}),
        reply({"content": {"text": "x"}}),
        reply({"content": "x"}, usage={"prompt_tokens": "many"}),
        "not an object",
    ],
)
def test_odd_bodies_are_bad_responses_not_crashes(body: object) -> None:
    with pytest.raises(BadResponse):
        completion_from_response(body, "m", 0.1)


def test_usage_numbers_are_read_including_reasoning_tokens() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5.0, "completion_tokens_details": {"reasoning_tokens": 2}}
    completion = completion_from_response(reply({"content": "x"}, usage=usage), "m", 0.25)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.reasoning_tokens) == (
        10,
        5,
        2,
    )
