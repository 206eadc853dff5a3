"""The scripted model must replay its script exactly and go through the shared repair policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialforge.actors.user_simulator import USER_TURN_FORMAT
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import Completion, RequestOptions
from dialforge.llm.errors import ModelError, ModelOutputError, ModelUnavailable
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import LONG_TEXT_CHARS
from dialforge.llm.scripted import ScriptedModel, ScriptExhausted, scripted_roles
from dialforge.llm.structured import CUT_OFF
from dialforge.model.messages import Message, SystemMessage, ToolCall, UserMessage
from dialforge.model.tools import ToolSpec
from prompt_checks import assert_mentions
from samples import USER_TURN

LOOKUP_ORDER = ToolSpec(
    name="lookup_order",
    description="Find an order by id.",
    parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)
GOOD_TURN = '{"user_message": "Where is order 7?", "is_task_complete": false}'


def conversation() -> list[Message]:
    return [SystemMessage(content="You are a support agent."), UserMessage(content="Where is my order?")]


def test_scripted_model_is_a_chat_model() -> None:
    assert isinstance(ScriptedModel([]), ChatModel)


async def test_replies_come_back_in_order() -> None:
    model = ScriptedModel(["first", "second"])
    assert (await model.complete(conversation())).content == "first"
    assert (await model.complete(conversation())).content == "second"
    assert model.remaining == 0


async def test_a_completion_reply_is_returned_as_scripted() -> None:
    scripted = Completion(content="done", reasoning="easy", finish_reason="stop")
    reply = await ScriptedModel([scripted]).complete(conversation())
    assert (reply.content, reply.reasoning, reply.finish_reason) == ("done", "easy", "stop")


async def test_dict_reply_with_tool_calls_becomes_tool_calls() -> None:
    model = ScriptedModel(
        [{"content": None, "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "ORD-1"}}]}]
    )
    reply = await model.complete(conversation(), RequestOptions(tools=[LOOKUP_ORDER]))
    assert reply.finish_reason == "tool_calls"
    (call,) = reply.tool_calls
    assert (call.name, call.parsed_arguments()) == ("lookup_order", {"order_id": "ORD-1"})


def test_tool_call_ids_are_generated_unique_per_model_unless_given() -> None:
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "a"}, {"name": "b", "id": "mine"}]},
            {"tool_calls": [{"name": "c", "arguments": "{}"}]},
        ]
    )
    ids = [call.id for _ in range(2) for call in model.pop().tool_calls]
    assert ids == ["call_0", "mine", "call_1"]


async def test_requests_are_recorded_with_their_options() -> None:
    model = ScriptedModel(["ok"])
    await model.complete(
        conversation(), RequestOptions(tools=[LOOKUP_ORDER], tool_choice="auto", temperature=0.2, seed=9)
    )
    (request,) = model.requests
    options = request.options
    assert request.messages == conversation()
    assert request.options.tools == (LOOKUP_ORDER,)
    assert (options.tool_choice, options.temperature, options.seed, options.max_tokens) == (
        "auto",
        0.2,
        9,
        None,
    )


async def test_structured_reply_is_parsed() -> None:
    reply = await ScriptedModel([GOOD_TURN]).complete(conversation(), RequestOptions(response_format=USER_TURN))
    assert reply.parsed == {"user_message": "Where is order 7?", "is_task_complete": False}


async def test_malformed_json_reply_is_repaired_with_next_scripted_reply() -> None:
    ledger = UsageLedger()
    model = ScriptedModel(["{not json", GOOD_TURN], role="user", ledger=ledger)
    reply = await model.complete(conversation(), RequestOptions(response_format=USER_TURN))
    assert reply.parsed["user_message"] == "Where is order 7?"
    assert reply.usage.calls == 2
    assert len(model.requests) == 2
    rejected, correction = model.requests[1].messages[-2:]
    assert rejected.content == "{not json"
    assert_mentions(correction.content or "", "no complete JSON value", USER_TURN.name)  # the problem, the schema
    stats = ledger.stats("user", "scripted")
    assert stats.output_problems == {"invalid_json": 1, "repaired": 1}
    assert stats.usage.calls == 2


async def test_two_malformed_replies_raise_model_output_error() -> None:
    ledger = UsageLedger()
    model = ScriptedModel(['{"user_message": 3}', "still not json"], role="user", ledger=ledger)
    with pytest.raises(ModelOutputError):
        await model.complete(conversation(), RequestOptions(response_format=USER_TURN))
    stats = ledger.stats("user", "scripted")
    assert stats.output_problems == {"schema_mismatch": 1, "invalid_json": 1}
    assert stats.failures == {"invalid_json": 1}


async def test_a_cut_structured_reply_is_truncated_even_when_its_text_holds_json() -> None:
    ledger = UsageLedger()
    cut = {"content": '{"user_message": "As I said in [4] and in [5], I', "finish_reason": "length"}
    model = ScriptedModel([cut, GOOD_TURN], role="user", ledger=ledger)
    reply = await model.complete(conversation(), RequestOptions(response_format=USER_TURN_FORMAT))
    assert reply.parsed["user_message"] == "Where is order 7?"
    assert ledger.stats("user", "scripted").output_problems == {"truncated": 1, "repaired": 1}
    assert_mentions(model.requests[1].messages[-1].content or "", CUT_OFF, USER_TURN_FORMAT.name)


async def test_a_complete_looking_tool_call_cut_by_the_token_limit_is_asked_again() -> None:
    ledger = UsageLedger()
    cut = {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "ORD-2"}}], "finish_reason": "length"}
    model = ScriptedModel([cut, "Order 2 has shipped."], role="agent", ledger=ledger)
    reply = await model.complete(conversation(), RequestOptions(tools=[LOOKUP_ORDER]))
    assert reply.content == "Order 2 has shipped." and reply.to_message().finish_reason == "stop"
    assert ledger.stats("agent", "scripted").output_problems == {"truncated": 1, "repaired": 1}


async def test_a_text_field_over_its_limit_is_sent_back_naming_the_field_and_the_limit() -> None:
    ledger = UsageLedger()
    rambling = json.dumps({"user_message": "Hold on. " * 600, "is_task_complete": False})
    model = ScriptedModel([rambling, GOOD_TURN], role="user", ledger=ledger)
    reply = await model.complete(conversation(), RequestOptions(response_format=USER_TURN_FORMAT))
    assert reply.parsed["user_message"] == "Where is order 7?"
    assert ledger.stats("user", "scripted").output_problems == {"too_long": 1, "repaired": 1}
    echo, correction = model.requests[1].messages[-2:]
    assert_mentions(correction.content or "", "user_message", str(LONG_TEXT_CHARS), str(len("Hold on. " * 600)))
    assert len(echo.content or "") < len(rambling)


async def test_unknown_tool_call_is_repaired_with_next_scripted_reply() -> None:
    model = ScriptedModel(
        [
            {"tool_calls": [{"name": "cancel_order", "arguments": {}}]},
            {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "ORD-2"}}]},
        ]
    )
    reply = await model.complete(conversation(), RequestOptions(tools=[LOOKUP_ORDER]))
    assert [call.name for call in reply.tool_calls] == ["lookup_order"]


async def test_exhausted_script_names_the_role() -> None:
    model = ScriptedModel(["only one"], role="judge")
    await model.complete(conversation())
    with pytest.raises(ScriptExhausted, match=r"role 'judge'.*all 1 scripted replies") as caught:
        await model.complete(conversation())
    assert isinstance(caught.value, ModelError)
    assert caught.value.kind == "script_exhausted"


async def test_scripted_exception_is_raised() -> None:
    ledger = UsageLedger()
    model = ScriptedModel([ModelUnavailable("server down"), "back again"], role="agent", ledger=ledger)
    with pytest.raises(ModelUnavailable, match="server down"):
        await model.complete(conversation())
    assert ledger.stats("agent", "scripted").failures == {"unavailable": 1}
    assert (await model.complete(conversation())).content == "back again"


async def test_ledger_counts_calls_per_role() -> None:
    ledger = UsageLedger()
    models = scripted_roles({"user": ["hi", "bye"], "agent": ["hello"]}, ledger=ledger)
    assert {role: model.role for role, model in models.items()} == {"user": "user", "agent": "agent"}
    for model in models.values():
        while model.remaining:
            await model.complete(conversation())
    assert ledger.usage_by_role()["user"].calls == 2
    assert ledger.usage_by_role()["agent"].calls == 1


def test_scripted_completion_is_not_shared_between_replies() -> None:
    scripted = Completion(content="same")
    model = ScriptedModel([scripted, scripted])
    model.pop().content = "changed"
    assert model.pop().content == "same"


def test_invalid_dict_reply_is_rejected_at_load_time() -> None:
    with pytest.raises(ValueError, match=r"reply 1.*unknown keys"):
        ScriptedModel(["fine", {"text": "typo for content"}])


def test_from_jsonl_reads_one_reply_per_line(tmp_path: Path) -> None:
    script = tmp_path / "script.jsonl"
    call = {"name": "lookup_order", "arguments": {"order_id": "ORD-3"}}
    script.write_text(f'{{"content": "hello"}}\n\n{{"tool_calls": [{json.dumps(call)}]}}\n')
    model = ScriptedModel.from_jsonl(script, role="agent")
    assert model.role == "agent"
    assert model.pop().content == "hello"
    assert model.pop().tool_calls == [ToolCall.make("call_0", "lookup_order", {"order_id": "ORD-3"})]


@pytest.mark.parametrize(
    "bad_line",
    ["{not json", '"just a string"', '{"tool_calls": [{"arguments": {}}]}', '{"content": 5}'],
    ids=["broken json", "not an object", "tool call without name", "content not text"],
)
def test_from_jsonl_names_file_and_line_of_a_bad_reply(tmp_path: Path, bad_line: str) -> None:
    script = tmp_path / "script.jsonl"
    script.write_text(f'{{"content": "fine"}}\n{bad_line}\n')
    with pytest.raises(ValueError, match=r"script\.jsonl, line 2"):
        ScriptedModel.from_jsonl(script)


async def test_call_ids_reused_from_earlier_turns_are_renumbered() -> None:
    from dialforge.model import AssistantMessage, ToolCall, ToolMessage

    model = ScriptedModel([{"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "7"}, "id": "call_0"}]}])
    earlier = ToolCall.make("call_0", "lookup_order", {"order_id": "1"})
    history = [
        *conversation(),
        AssistantMessage(tool_calls=[earlier]),
        ToolMessage(tool_call_id="call_0", name="lookup_order", content="{}"),
    ]
    reply = await model.complete(history, RequestOptions(tools=[LOOKUP_ORDER]))
    assert reply.tool_calls[0].id != "call_0"
