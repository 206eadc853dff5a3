"""The dry-run model must be reproducible, obey tool_choice and formats, and let dialogues end."""

from __future__ import annotations

import re
import timeit

import pytest
from jsonschema import Draft202012Validator

from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import Completion, RequestOptions, ResponseSchema
from dialforge.llm.dry_run import DryRunModel
from dialforge.llm.errors import ModelOutputError, ModelRequestRejected
from dialforge.llm.protocol import ChatModel
from dialforge.model.messages import Message, SystemMessage, ToolMessage, UserMessage
from dialforge.model.tools import ToolSpec
from samples import USER_TURN

LOOKUP_ORDER = ToolSpec(
    name="lookup_order",
    description="Find an order by id.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "include_items": {"type": "boolean"}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
)
BOOK_TABLE = ToolSpec(
    name="book_table",
    description="Reserve a restaurant table.",
    parameters={
        "type": "object",
        "properties": {
            "restaurant_id": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "party_size": {"type": "integer", "minimum": 1, "maximum": 12},
            "seating": {"enum": ["indoor", "outdoor"]},
        },
        "required": ["restaurant_id", "date", "party_size"],
        "additionalProperties": False,
    },
)
TOOLS = [LOOKUP_ORDER, BOOK_TABLE]


def conversation(user_text: str = "Where is my order?") -> list[Message]:
    return [SystemMessage(content="You are a helpful support agent."), UserMessage(content=user_text)]


def conversations(count: int) -> list[list[Message]]:
    return [conversation(f"Question number {i}: where is my order?") for i in range(count)]


def test_dry_run_model_is_a_chat_model() -> None:
    assert isinstance(DryRunModel(), ChatModel)


async def test_same_request_gets_same_reply() -> None:
    first = await DryRunModel(seed=3).complete(conversation(), RequestOptions(tools=TOOLS))
    again = await DryRunModel(seed=3).complete(conversation(), RequestOptions(tools=TOOLS))
    assert first.model_dump(exclude={"usage"}) == again.model_dump(exclude={"usage"})


async def test_different_conversations_get_different_replies() -> None:
    model = DryRunModel()
    replies = {(await model.complete(messages)).content for messages in conversations(20)}
    assert len(replies) > 10


async def test_model_seed_and_request_seed_change_the_reply() -> None:
    messages = conversation()
    base = [(await DryRunModel(seed=0).complete(messages, RequestOptions(seed=s))).content for s in range(10)]
    other_model = [(await DryRunModel(seed=1).complete(messages, RequestOptions(seed=s))).content for s in range(10)]
    assert len(set(base)) > 1
    assert base != other_model


async def test_text_reply_is_short_readable_sentences() -> None:
    reply = await DryRunModel().complete(conversation())
    assert reply.finish_reason == "stop"
    assert reply.tool_calls == []
    assert re.fullmatch(r"([A-Z][a-z ,]+\.)( [A-Z][a-z ,]+\.){0,2}", reply.content or "")


async def test_text_after_a_tool_result_names_the_tool() -> None:
    messages = [
        *conversation(),
        (
            await DryRunModel().complete(conversation(), RequestOptions(tools=TOOLS, tool_choice="lookup_order"))
        ).to_message(),
    ]
    messages.append(ToolMessage(tool_call_id="call_x", name="lookup_order", content='{"status": "shipped"}'))
    reply = await DryRunModel().complete(messages, RequestOptions(tools=TOOLS, tool_choice="none"))
    assert "lookup_order" in (reply.content or "")


async def test_response_format_gives_parsed_json_satisfying_the_schema() -> None:
    validator = Draft202012Validator(USER_TURN.json_schema)
    for messages in conversations(10):
        reply = await DryRunModel().complete(messages, RequestOptions(response_format=USER_TURN))
        assert reply.finish_reason == "stop"
        assert validator.is_valid(reply.parsed)
        assert reply.content is not None and reply.parsed["user_message"] in reply.content


async def test_required_tool_choice_forces_a_tool_call() -> None:
    parallel = 0
    for messages in conversations(40):
        reply = await DryRunModel().complete(messages, RequestOptions(tools=TOOLS, tool_choice="required"))
        assert reply.finish_reason == "tool_calls"
        assert reply.content is None
        assert 1 <= len(reply.tool_calls) <= 2
        parallel += len(reply.tool_calls) == 2
    assert parallel > 0


async def test_named_tool_choice_calls_exactly_that_tool() -> None:
    for messages in conversations(10):
        reply = await DryRunModel().complete(messages, RequestOptions(tools=TOOLS, tool_choice="book_table"))
        assert [call.name for call in reply.tool_calls] == ["book_table"]


async def test_none_tool_choice_answers_in_text() -> None:
    for messages in conversations(10):
        reply = await DryRunModel().complete(messages, RequestOptions(tools=TOOLS, tool_choice="none"))
        assert reply.tool_calls == [] and reply.content


async def test_tool_call_arguments_satisfy_the_tool_schema() -> None:
    validators = {tool.name: Draft202012Validator(tool.parameters) for tool in TOOLS}
    for messages in conversations(30):
        reply = await DryRunModel().complete(messages, RequestOptions(tools=TOOLS, tool_choice="required"))
        for call in reply.tool_calls:
            arguments = call.parsed_arguments()
            assert validators[call.name].is_valid(arguments), arguments


async def test_tool_call_ids_are_unique_and_openai_shaped() -> None:
    ids = []
    for messages in conversations(30):
        reply = await DryRunModel().complete(messages, RequestOptions(tools=TOOLS, tool_choice="required"))
        ids += [call.id for call in reply.tool_calls]
    assert all(re.fullmatch(r"call_[0-9a-f]{12}", i) for i in ids)
    assert len(set(ids)) == len(ids)


async def test_auto_tool_choice_always_ends_in_text_within_four_rounds() -> None:
    called_tools = 0
    for messages in conversations(30):
        for _round in range(4):
            reply = await DryRunModel().complete(messages, RequestOptions(tools=TOOLS, tool_choice="auto"))
            if not reply.tool_calls:
                break
            called_tools += 1
            messages = [
                *messages,
                reply.to_message(),
                *(ToolMessage(tool_call_id=c.id, name=c.name, content="{}") for c in reply.tool_calls),
            ]
        assert reply.content and not reply.tool_calls, "the dialogue did not end in text within four rounds"
    assert called_tools > 0


async def test_a_new_user_message_restarts_the_tool_budget() -> None:
    messages = [
        *conversation(),
        ToolMessage(tool_call_id="call_a", name="lookup_order", content="{}"),
        ToolMessage(tool_call_id="call_b", name="lookup_order", content="{}"),
        ToolMessage(tool_call_id="call_c", name="lookup_order", content="{}"),
    ]
    model = DryRunModel()
    after_three_results = [await model.complete(messages, RequestOptions(tools=TOOLS, seed=s)) for s in range(10)]
    assert not any(reply.tool_calls for reply in after_three_results)
    messages.append(UserMessage(content="Thanks, one more thing."))
    replies = [await model.complete(messages, RequestOptions(tools=TOOLS, seed=s)) for s in range(20)]
    assert any(reply.tool_calls for reply in replies)


async def test_tool_choice_naming_an_unknown_tool_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="cancel_order"):
        await DryRunModel().complete(conversation(), RequestOptions(tools=TOOLS, tool_choice="cancel_order"))


def test_required_tool_choice_without_tools_is_refused_like_a_server_would() -> None:
    with pytest.raises(ModelRequestRejected):
        DryRunModel().raw_completion(conversation(), RequestOptions(tool_choice="required"))


def test_max_tokens_truncates_text_with_length_finish_reason() -> None:
    reply = DryRunModel().raw_completion(conversation(), RequestOptions(max_tokens=2))
    assert reply.finish_reason == "length"
    assert reply.content is not None and len(reply.content) == 8


def test_max_tokens_never_truncates_json() -> None:
    reply = DryRunModel().raw_completion(conversation(), RequestOptions(response_format=USER_TURN, max_tokens=1))
    assert reply.finish_reason == "stop"
    assert Draft202012Validator(USER_TURN.json_schema).is_valid(reply.parsed)


async def test_zero_max_tokens_is_an_unusable_reply() -> None:
    with pytest.raises(ModelOutputError) as caught:
        await DryRunModel().complete(conversation(), RequestOptions(max_tokens=0))
    assert caught.value.kind == "truncated"


async def test_reasoning_is_filled_only_when_asked() -> None:
    assert (await DryRunModel().complete(conversation())).reasoning is None
    thought = (await DryRunModel(reasoning=True).complete(conversation())).reasoning
    assert thought and thought.endswith(".")


async def test_reasoning_does_not_change_the_answer() -> None:
    plain = await DryRunModel().complete(conversation(), RequestOptions(tools=TOOLS))
    thinking = await DryRunModel(reasoning=True).complete(conversation(), RequestOptions(tools=TOOLS))
    assert plain.content == thinking.content and plain.tool_calls == thinking.tool_calls


async def test_usage_estimates_tokens_from_characters() -> None:
    messages = [UserMessage(content="x" * 400)]
    reply = await DryRunModel().complete(messages)
    assert reply.usage.calls == 1
    assert reply.usage.prompt_tokens == 100
    assert reply.usage.completion_tokens == len(reply.content or "") // 4
    assert reply.usage.seconds > 0


async def test_ledger_counts_every_call_by_role_and_name() -> None:
    ledger = UsageLedger()
    model = DryRunModel(name="offline", role="agent", ledger=ledger)
    for messages in conversations(3):
        await model.complete(messages, RequestOptions(tools=TOOLS))
    stats = ledger.stats("agent", "offline")
    assert stats.usage.calls == 3
    assert stats.usage.prompt_tokens > 0
    assert not stats.output_problems


async def test_ledger_counts_output_problems_and_the_failure() -> None:
    ledger = UsageLedger()
    with pytest.raises(ModelOutputError):
        await DryRunModel(role="user", ledger=ledger).complete(conversation(), RequestOptions(max_tokens=0))
    stats = ledger.stats("user", "dry-run")
    assert stats.usage.calls == 2
    assert stats.output_problems["truncated"] == 2
    assert stats.failures["truncated"] == 1


def test_raw_completion_is_cheap_for_a_plain_text_reply() -> None:
    model, messages = DryRunModel(), conversation()
    seconds = min(timeit.repeat(lambda: model.raw_completion(messages), number=200, repeat=3)) / 200
    assert seconds < 200e-6, f"{seconds * 1e6:.0f} µs per plain-text reply"


def test_raw_completion_returns_a_completion_named_after_the_model() -> None:
    reply = DryRunModel(name="offline-7b").raw_completion(conversation())
    assert isinstance(reply, Completion)
    assert reply.model == "offline-7b"


async def test_a_schema_no_value_can_satisfy_is_refused_like_a_server_would() -> None:
    impossible = ResponseSchema(name="x", json_schema={"type": "integer", "minimum": 5, "maximum": 1})
    with pytest.raises(ModelRequestRejected, match="cannot satisfy this schema"):
        await DryRunModel().complete(conversation(), RequestOptions(response_format=impossible))
