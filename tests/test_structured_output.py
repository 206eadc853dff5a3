"""Replies are turned into usable values, or repaired once, or refused with the reason."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from dialforge.llm import Completion, ModelOutputError, UsageLedger
from dialforge.llm.completion import RequestOptions
from dialforge.llm.reasoning import split_reasoning
from dialforge.llm.structured import complete_with_repair, extract_json, output_problem, with_instruction
from dialforge.model import AssistantMessage, Message, ToolCall, ToolMessage, ToolSpec, UserMessage
from samples import USER_TURN

TOOL = ToolSpec(name="get_order", description="One order.", parameters={"type": "object", "properties": {}})


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        'Here it is:\n```\n{"a": 1}\n```\nAnything else?',
        'Sure! {"a": 1} Hope that helps.',
        'I think {"broken": } but really {"a": 1}',
    ],
)
def test_json_is_found_bare_fenced_or_in_prose(text: str) -> None:
    assert extract_json(text) == {"a": 1}


def test_text_without_json_is_refused() -> None:
    with pytest.raises(ValueError, match="no complete JSON"):
        extract_json('{"a": ')


@pytest.mark.parametrize(
    ("content", "answer", "reasoning"),
    [
        ("<think>plan</think>Answer", "Answer", "plan"),
        ("mid-thought</think>\n\nAnswer", "Answer", "mid-thought"),
        ("<think>cut off by max_tokens", None, "cut off by max_tokens"),
        ("No thinking here", "No thinking here", None),
        (None, None, None),
    ],
)
def test_reasoning_is_split_from_inline_think_blocks(
    content: str | None, answer: str | None, reasoning: str | None
) -> None:
    assert split_reasoning(content) == (answer, reasoning)


class Replies:
    """A send function that replays completions and remembers what it was sent."""

    def __init__(self, *replies: Completion) -> None:
        self.replies = list(replies)
        self.sent: list[Sequence[Message]] = []

    async def __call__(self, messages: Sequence[Message]) -> Completion:
        self.sent.append(messages)
        return self.replies.pop(0)


async def repair(send: Replies, kinds: list[str], **kwargs: object) -> Completion:
    """Run the repair policy; ``kinds`` receives the output problems the ledger counted, in order."""
    ledger = UsageLedger()
    options = RequestOptions(**kwargs)  # type: ignore[arg-type]
    try:
        return await complete_with_repair(
            send, [UserMessage(content="go")], options, ledger=ledger, role="agent", model_name="m"
        )
    finally:
        counted = ledger.stats("agent", "m").output_problems
        kinds.extend(kind for kind, times in counted.items() for _ in range(times))


async def test_good_json_is_parsed_without_repair() -> None:
    kinds: list[str] = []
    completion = await repair(
        Replies(Completion(content='{"user_message": "hi", "is_task_complete": false}')),
        kinds,
        response_format=USER_TURN,
    )
    assert completion.parsed == {"user_message": "hi", "is_task_complete": False}
    assert kinds == []


async def test_schema_mismatch_is_repaired_with_the_reason_and_usage_is_summed() -> None:
    kinds: list[str] = []
    send = Replies(
        Completion(content='{"user_message": "hi"}'),
        Completion(content='{"user_message": "hi", "is_task_complete": true}'),
    )
    completion = await repair(send, kinds, response_format=USER_TURN)
    assert completion.parsed["is_task_complete"] is True
    assert kinds == ["schema_mismatch", "repaired"]
    assert completion.usage.calls == 2
    repair_request = send.sent[1]
    assert repair_request[-2].content == '{"user_message": "hi"}'
    assert "'is_task_complete' is a required property" in repair_request[-1].content


async def test_truncated_json_twice_raises_with_both_reasons() -> None:
    kinds: list[str] = []
    cut = Completion(content='{"user_message": "h', finish_reason="length")
    with pytest.raises(ModelOutputError, match="unusable reply twice") as error:
        await repair(Replies(cut, cut), kinds, response_format=USER_TURN)
    assert error.value.kind == "truncated"
    assert kinds == ["truncated", "truncated"]


async def test_unknown_tool_is_repaired_as_plain_text_echo() -> None:
    kinds: list[str] = []
    bad = Completion(tool_calls=[ToolCall.make("c1", "cancel_order", {})])
    good = Completion(tool_calls=[ToolCall.make("c2", "get_order", {})])
    send = Replies(bad, good)
    completion = await repair(send, kinds, tools=[TOOL])
    assert completion.tool_calls[0].name == "get_order"
    echo = send.sent[1][-2]
    assert isinstance(echo, AssistantMessage) and echo.tool_calls is None and "cancel_order" in echo.content
    assert kinds == ["unknown_tool", "repaired"]


async def test_arguments_that_are_not_json_are_repaired() -> None:
    kinds: list[str] = []
    bad = Completion(tool_calls=[ToolCall.make("c1", "get_order", "{'id': 1}")])
    good = Completion(tool_calls=[ToolCall.make("c2", "get_order", {})])
    await repair(Replies(bad, good), kinds, tools=[TOOL])
    assert kinds == ["bad_arguments", "repaired"]


@pytest.mark.parametrize(
    ("reply", "options", "kind"),
    [
        (Completion(content=""), {}, "empty"),
        (Completion(content="", finish_reason="length"), {}, "truncated"),
        (Completion(content="text"), {"tools": [TOOL], "tool_choice": "required"}, "missing_tool_call"),
        (Completion(content="text"), {"tools": [TOOL], "tool_choice": "get_order"}, "missing_tool_call"),
        (
            Completion(tool_calls=[ToolCall.make("c", "get_order", {})]),
            {"tools": [TOOL], "tool_choice": "none"},
            "unexpected_tool_call",
        ),
    ],
)
async def test_unusable_replies_are_named(reply: Completion, options: dict, kind: str) -> None:
    kinds: list[str] = []
    with pytest.raises(ModelOutputError):
        await repair(Replies(reply, reply), kinds, **options)
    assert kinds == [kind, kind]


def test_instruction_joins_a_trailing_user_message_and_never_breaks_alternation() -> None:
    user_last = with_instruction([UserMessage(content="Q")], "JSON please")
    assert [m.role for m in user_last] == ["user"] and user_last[0].content == "Q\n\nJSON please"
    tool_last = with_instruction(
        [
            AssistantMessage(tool_calls=[ToolCall.make("a", "f", {})]),
            ToolMessage(tool_call_id="a", name="f", content="1"),
        ],
        "JSON please",
    )
    assert [m.role for m in tool_last] == ["assistant", "tool", "user"]


async def test_named_tool_choice_refuses_a_call_to_another_tool() -> None:
    other = ToolSpec(name="get_customer", description="One customer.", parameters={"type": "object", "properties": {}})
    kinds: list[str] = []
    wrong = Completion(tool_calls=[ToolCall.make("c1", "get_customer", {})])
    right = Completion(tool_calls=[ToolCall.make("c2", "get_order", {})])
    completion = await repair(Replies(wrong, right), kinds, tools=[TOOL, other], tool_choice="get_order")
    assert completion.tool_calls[0].name == "get_order"
    assert kinds == ["wrong_tool", "repaired"]


@pytest.mark.parametrize(("tools", "tool_choice"), [(None, "required"), ([TOOL], "requried"), ([TOOL], "cancel_order")])
async def test_impossible_tool_choice_is_a_caller_error_before_any_call(tools: list | None, tool_choice: str) -> None:
    send = Replies()
    with pytest.raises(ValueError, match="tool_choice"):
        await repair(send, [], tools=tools, tool_choice=tool_choice)
    assert send.sent == []


async def test_ledger_counts_calls_problems_and_final_failures() -> None:
    ledger = UsageLedger()
    empty = Completion(content="")
    with pytest.raises(ModelOutputError):
        await complete_with_repair(
            Replies(empty, empty),
            [UserMessage(content="go")],
            RequestOptions(),
            ledger=ledger,
            role="user",
            model_name="m",
        )
    stats = ledger.stats("user", "m")
    assert (stats.usage.calls, stats.output_problems["empty"], stats.failures["empty"]) == (2, 2, 1)


def test_json_satisfying_the_schema_wins_over_an_earlier_value_in_prose() -> None:
    text = 'Based on source [1], here it is: {"user_message": "hi", "is_task_complete": false}'
    completion = Completion(content=text)
    problem = output_problem(completion, tools=None, tool_choice=None, response_format=USER_TURN)
    assert problem is None and completion.parsed["user_message"] == "hi"


def test_instruction_already_present_is_not_repeated() -> None:
    once = with_instruction([UserMessage(content="Q")], "JSON please")
    assert with_instruction(once, "JSON please")[0].content == "Q\n\nJSON please"
