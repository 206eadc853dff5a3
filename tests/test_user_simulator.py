"""The user simulator follows the paper's rules and is corrected once when it breaks the checked ones."""

from __future__ import annotations

import re

import orjson
import pytest

from dialforge.actors.personas import DEFAULT_PERSONAS, Persona, persona_named, pick_persona
from dialforge.actors.user_simulator import (
    USER_TURN_FORMAT,
    UserSimulator,
    copied_passage,
    is_offer,
    newly_mentioned_requests,
    pending_confirmation,
)
from dialforge.llm import ModelOutputError, ModelUnavailable, ScriptedModel
from dialforge.model.dialogue import DialogueState
from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, UserMessage
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_section
from prompt_checks import assert_in_order, assert_mentions, filled_in, rule_numbers

TOOLS = [
    ToolSpec(name="search_orders", description="Find a customer's orders by email."),
    ToolSpec(name="cancel_order", description="Cancel an order that has not shipped."),
]
EARLIER_GOAL = Task(
    id="t0",
    description="You are Maya Okafor (maya.okafor@example.com) and want your delivery address changed to 4 Elm Row.",
    subtasks=["Ask for the delivery address to be changed to 4 Elm Row"],
)
GOAL = Task(
    id="t1",
    description=(
        "You are Maya Okafor (maya.okafor@example.com). You ordered two used novels last week and want to know "
        "whether they have shipped. If the order for 'Beloved' has not shipped, you want it cancelled, and you "
        "want to know when the refund will arrive."
    ),
    subtasks=[
        "Ask whether your order from last week has shipped",
        "Cancel the order for 'Beloved' if it has not shipped",
        "Ask when the refund will arrive",
    ],
)
SHALL_I = "Order 12 (Beloved) has not shipped yet. Shall I cancel order 12?"
OPENING = [
    UserMessage(content="Hi, I'm Maya Okafor. Has my order from last week shipped yet?"),
    AssistantMessage(tool_calls=[ToolCall.make("c1", "search_orders", {"email": "maya.okafor@example.com"})]),
    ToolMessage(tool_call_id="c1", name="search_orders", content='[{"order_id": 12,\n "status": "pending"}]'),
    AssistantMessage(content=SHALL_I),
]
ORDER_CANCELLED = [
    UserMessage(content="Yes, please cancel it."),
    AssistantMessage(tool_calls=[ToolCall.make("c2", "cancel_order", {"order_id": 12})]),
    ToolMessage(tool_call_id="c2", name="cancel_order", content='{"rows_affected": 1}'),
    AssistantMessage(content="Order 12 is cancelled."),
]


def state_with(messages: list[Message], *, tasks_done: int = 1, seed: int = 7) -> DialogueState:
    return DialogueState(
        id="d1",
        mode="user",
        domain="Online bookshop",
        tools=TOOLS,
        tasks=[EARLIER_GOAL, GOAL],
        tasks_done=tasks_done,
        messages=[SystemMessage(content="You help bookshop customers."), *messages],
        seed=seed,
    )


def speaker_of(transcript: str, said: str) -> str:
    """What the transcript puts before a message: who said it."""
    (line,) = [line for line in transcript.splitlines() if line.endswith(said)]
    return line.removesuffix(said)


def turn(message: str, complete: bool = False) -> str:
    return orjson.dumps({"user_message": message, "is_task_complete": complete}).decode()


def content(message: Message) -> str:
    assert isinstance(message, SystemMessage | UserMessage | AssistantMessage) and message.content is not None
    return message.content


def instruction_of(request: Message) -> str:
    """The turn's instruction, which follows the transcript in the simulator's request."""
    return filled_in(content(request), "user_simulator_parts", "turn")["instruction"]


def problems_sent_back(correction: Message) -> str:
    """The problems a correction names, as the packaged feedback prompt shows them."""
    return filled_in(content(correction), "user_simulator_feedback")["problems"]


async def test_the_prompt_holds_rules_goal_requests_persona_and_completed_goals() -> None:
    model = ScriptedModel([turn("Hi, has my order from last week shipped?")])
    state = state_with([])

    await UserSimulator(model).next_turn(state, persona_named("impatient"))

    (request,) = model.requests
    system, user = request.messages
    assert isinstance(system, SystemMessage) and isinstance(user, UserMessage)
    prompt = content(system)
    brief = filled_in(prompt, "user_simulator")  # the packaged prompt: the rules are the same for every dialogue
    assert brief["goal"] == GOAL.description
    assert_in_order(brief["subtasks"], *GOAL.subtasks)
    assert brief["persona"] == persona_named("impatient").description
    assert EARLIER_GOAL.description in brief["completed"] and GOAL.description not in brief["completed"]
    assert "$" not in prompt
    assert GOAL.description not in content(user) and "Beloved" not in content(user)
    assert rule_numbers(instruction_of(user)) == {1}, "the opening follows rule 1"
    assert request.options.response_format == USER_TURN_FORMAT
    assert request.options.seed == state.seed + len(state.messages)


async def test_the_transcript_shows_what_the_agent_said_looked_up_and_found() -> None:
    model = ScriptedModel([turn("Yes, please go ahead.")])

    await UserSimulator(model).next_turn(state_with(OPENING))

    request = model.requests[0].messages[1]
    transcript = content(request)
    said, asked = content(OPENING[0]), content(OPENING[3])
    arguments, found = '{"email":"maya.okafor@example.com"}', '[{"order_id": 12, "status": "pending"}]'
    assert_in_order(transcript, said, "search_orders", arguments, found, asked)
    assert speaker_of(transcript, said) != speaker_of(transcript, asked), "who said what is shown"
    hint = render_section("user_simulator_parts", "confirmation_hint", question="Shall I cancel order 12?")
    assert hint in instruction_of(request), "the pending question is put to the user"
    assert rule_numbers(instruction_of(request)) == {2, 3, 4}


async def test_each_result_of_parallel_calls_is_shown_with_the_call_it_answers() -> None:
    calls = [ToolCall.make(f"t{n}", "track_order", {"order_id": n}) for n in (12, 14, 15)]
    results = [
        ToolMessage(tool_call_id=f"t{n}", name="track_order", content=f'{{"eta": "2025-11-{n}"}}') for n in (12, 14, 15)
    ]
    tracked = [
        UserMessage(content="Where are my orders 12, 14 and 15?"),
        AssistantMessage(content="Let me look.", tool_calls=calls),
        *results,
        AssistantMessage(content="They arrive on the 12th, 14th and 15th."),
    ]
    state = state_with(tracked).model_copy(update={"tools": [*TOOLS, ToolSpec(name="track_order", description="-")]})
    model = ScriptedModel([turn("Thanks!")])

    await UserSimulator(model).next_turn(state)

    lines = content(model.requests[0].messages[1]).splitlines()
    for call, result in zip(calls, results, strict=True):
        assert any(call.function.arguments in line and result.content in line for line in lines), (
            f"no line shows the call {call.function.arguments} with its result {result.content}:\n" + "\n".join(lines)
        )


async def test_consecutive_requests_share_the_earlier_request_as_a_prefix() -> None:
    model = ScriptedModel([turn("Yes, please cancel it."), turn("When will I get the refund?")])
    simulator = UserSimulator(model)

    await simulator.next_turn(state_with(OPENING))
    await simulator.next_turn(state_with(OPENING + ORDER_CANCELLED))

    earlier, later = (request.messages for request in model.requests)
    assert earlier[0] == later[0]
    up_to_the_question = content(earlier[1])[: content(earlier[1]).index(SHALL_I) + len(SHALL_I)]
    assert content(later[1]).startswith(up_to_the_question), "the earlier transcript is a prefix of the later one"
    went_on = content(later[1]).removeprefix(up_to_the_question)
    assert_in_order(went_on, "Yes, please cancel it.", "cancel_order", "Order 12 is cancelled.")
    assert "Shall I cancel order 12?" not in instruction_of(later[1]), "an answered question is not put again"


async def test_a_good_reply_passes_without_correction() -> None:
    model = ScriptedModel([turn("Thanks! When should I expect the refund?")])

    result = await UserSimulator(model).next_turn(state_with(OPENING + ORDER_CANCELLED))

    assert result.user_message == "Thanks! When should I expect the refund?"
    assert not result.is_task_complete and result.violations == []
    assert len(model.requests) == 1


async def test_completing_right_after_a_confirmation_request_is_corrected() -> None:
    model = ScriptedModel([turn("Yes, cancel it. Thanks, that's all!", True), turn("Yes, please cancel it.")])
    simulator = UserSimulator(model)

    result = await simulator.next_turn(state_with(OPENING))

    assert result.user_message == "Yes, please cancel it." and not result.is_task_complete
    assert result.violations == ["complete_while_confirming"]
    first, second = (request.messages for request in model.requests)
    assert second[:2] == first
    assert second[2] == AssistantMessage(content=turn("Yes, cancel it. Thanks, that's all!", True))
    assert "Shall I cancel order 12?" in problems_sent_back(second[3])


async def test_completing_again_after_the_correction_is_forced_to_not_complete() -> None:
    model = ScriptedModel([turn("Yes. All done, thanks!", True), turn("Go ahead. Thanks, bye!", True)])

    result = await UserSimulator(model).next_turn(state_with(OPENING))

    assert result.user_message == "Go ahead. Thanks, bye!" and not result.is_task_complete
    assert len(model.requests) == 2


@pytest.mark.parametrize(
    "declined",
    ["No thanks, that's all!", "No, leave it as it is. Thanks!", "That's all, bye.", "Not just now, thanks."],
)
async def test_turning_the_offer_down_may_end_the_goal(declined: str) -> None:
    model = ScriptedModel([turn(declined, True)])

    result = await UserSimulator(model).next_turn(state_with(OPENING))

    assert result.is_task_complete and result.violations == [] and len(model.requests) == 1


async def test_a_detail_only_a_tool_result_shows_is_sent_back_and_one_the_agent_said_is_not() -> None:
    lookup = [
        UserMessage(content="Hi, I'm Maya Okafor. Which of my orders is the oldest?"),
        AssistantMessage(tool_calls=[ToolCall.make("c1", "search_orders", {"email": "maya.okafor@example.com"})]),
        ToolMessage(tool_call_id="c1", name="search_orders", content='[{"order_id": 4471, "customer_id": 90817}]'),
        AssistantMessage(content="Your oldest order is order 4471."),
    ]
    model = ScriptedModel([turn("Thanks. Is order 4471 on customer 90817?"), turn("Thanks. Has order 4471 shipped?")])

    result = await UserSimulator(model).next_turn(state_with(lookup))

    assert result.violations == ["uses_hidden_result"] and result.user_message == "Thanks. Has order 4471 shipped?"
    sent_back = problems_sent_back(model.requests[1].messages[-1])
    assert "90817" in sent_back and "4471" not in sent_back


async def test_completing_once_the_action_is_reported_is_accepted() -> None:
    model = ScriptedModel([turn("Great, thanks!", True)])

    result = await UserSimulator(model).next_turn(state_with(OPENING + ORDER_CANCELLED))

    assert result.is_task_complete and len(model.requests) == 1


@pytest.mark.parametrize(
    ("bad", "violation", "named"),
    [
        ("For this simulation, has my order shipped?", "meta_words", ["simulation"]),
        ("Hello assistant, has my order from last week shipped?", "meta_words", ["assistant"]),
        (
            "I ordered two used novels last week and want to know whether they have shipped.",
            "copied_goal",
            ["ordered two used novels last week and want to know whether they"],
        ),
        (
            "Has my order from last week shipped? If not, cancel Beloved, and when would the refund arrive?",
            "reveals_all_requests",
            GOAL.subtasks,
        ),
    ],
    ids=["meta-word", "assistant-as-role", "verbatim-copy", "reveals-all-requests"],
)
async def test_a_rule_breaking_opening_is_sent_back_once_naming_what_breaks_the_rule(
    bad: str, violation: str, named: list[str]
) -> None:
    good = "Hi, I'm Maya Okafor. Has my order from last week shipped yet?"
    model = ScriptedModel([turn(bad), turn(good)])

    result = await UserSimulator(model).next_turn(state_with([]))

    assert result.user_message == good and result.violations == [violation]
    assert model.requests[1].messages[-2] == AssistantMessage(content=turn(bad))
    assert_mentions(problems_sent_back(model.requests[1].messages[-1]), *named)


async def test_a_violation_that_survives_the_correction_is_returned_as_written() -> None:
    bad = "Hello assistant, has my order shipped?"
    model = ScriptedModel([turn(bad), turn(bad)])

    result = await UserSimulator(model).next_turn(state_with([]))

    assert result.user_message == bad and result.violations == ["meta_words"]


@pytest.mark.parametrize(
    ("domain", "tool", "message"),
    [
        ("Gym", "book_training_session", "Hi, can I book a training session for Friday?"),
        ("University", "find_teaching_assistant", "Who is the teaching assistant for CS101?"),
    ],
)
async def test_words_the_domain_uses_itself_are_not_meta(domain: str, tool: str, message: str) -> None:
    state = state_with([]).model_copy(update={"domain": domain, "tools": [ToolSpec(name=tool, description="-")]})
    model = ScriptedModel([turn(message)])

    result = await UserSimulator(model).next_turn(state)

    assert result.violations == [] and len(model.requests) == 1


async def test_an_empty_message_twice_is_an_output_error() -> None:
    model = ScriptedModel([turn("  "), turn(" \n ")])

    with pytest.raises(ModelOutputError, match="still empty after a correction"):
        await UserSimulator(model).next_turn(state_with([]))


async def test_malformed_json_is_repaired_by_the_client_not_the_simulator() -> None:
    model = ScriptedModel(["Sure! Here is my message: Has my order shipped?", turn("Has my order shipped?")])

    result = await UserSimulator(model).next_turn(state_with([]))

    assert result.user_message == "Has my order shipped?" and result.violations == []
    assert len(model.requests) == 2 and model.remaining == 0


async def test_model_errors_propagate() -> None:
    model = ScriptedModel([ModelUnavailable("server down")])

    with pytest.raises(ModelUnavailable, match="server down"):
        await UserSimulator(model).next_turn(state_with([]))


async def test_a_dialogue_without_a_goal_left_is_refused() -> None:
    with pytest.raises(ValueError, match="no goal left"):
        await UserSimulator(ScriptedModel([])).next_turn(state_with([], tasks_done=2))


@pytest.mark.parametrize(
    ("agent", "pending"),
    [
        ("Shall I cancel order 12?", "Shall I cancel order 12?"),
        (
            "I found it.\nWould you like me to go ahead with the refund?",
            "Would you like me to go ahead with the refund?",
        ),
        ("Could you confirm the new address: 4 Elm Row?", "Could you confirm the new address: 4 Elm Row?"),
        ("Order 12 is cancelled. Would you like me to help with anything else?", None),
        ("Order 12 is cancelled. I should note refunds take 5 days.", None),
        (
            "Both have shipped. (Standard shipping takes 2-5 days.) Would you like me to set up delivery alerts?",
            "Would you like me to set up delivery alerts?",
        ),
        ("(Delivery takes 2-5 days) Shall I place the order?", "Shall I place the order?"),
    ],
)
def test_a_confirmation_request_is_a_question_asking_to_confirm_an_action(agent: str, pending: str | None) -> None:
    assert pending_confirmation([UserMessage(content="Hi"), AssistantMessage(content=agent)]) == pending


@pytest.mark.parametrize(
    ("question", "offer"),
    [
        ("Shall I cancel order 12?", False),
        ("Could you confirm the new address: 4 Elm Row?", False),
        ("Would you like me to go ahead with the refund?", False),
        ("Would you like me to check your other orders?", True),
        ("Do you want me to set up delivery alerts?", True),
        ("Shall I also email you the receipt?", True),
    ],
)
def test_an_offer_of_something_extra_is_told_apart_from_a_confirmation(question: str, offer: bool) -> None:
    assert is_offer(question) is offer


async def test_an_offer_is_put_to_the_user_as_something_they_may_decline() -> None:
    offer = "Would you like me to check your other orders?"
    model = ScriptedModel([turn("No, thanks.")])

    await UserSimulator(model).next_turn(
        state_with([*OPENING[:3], AssistantMessage(content=f"It is pending. {offer}")])
    )

    instruction = instruction_of(model.requests[0].messages[1])
    assert render_section("user_simulator_parts", "offer_hint", question=offer) in instruction
    assert render_section("user_simulator_parts", "confirmation_hint", question=offer) not in instruction


def test_an_answered_confirmation_request_is_no_longer_pending() -> None:
    assert pending_confirmation([*OPENING, UserMessage(content="Yes, cancel it.")]) is None


def test_emails_ids_numbers_dates_and_names_are_left_out_of_the_copied_words() -> None:
    goal = (
        "You are Maya Okafor, and you want the receipt of order 10250 from 2025-11-14 emailed to "
        "maya.okafor@example.com. You also want to know whether your order 10250 of 2025-11-14 has shipped and "
        "when it will arrive at your home."
    )
    repeated = (
        "Hi, Maya Okafor here: could I have the receipt of order 10250 from 2025-11-14 emailed to "
        "maya.okafor@example.com?"
    )
    pasted = (
        "Also I want to know whether your order 10250 of 2025-11-14 has shipped and when it will arrive at your home."
    )

    assert copied_passage(repeated, goal) is None, "the identifiers a person must repeat exactly are not copying"
    assert copied_passage(pasted, goal) is not None, "a pasted sentence is still found between its identifiers"


def test_a_recap_of_requests_already_made_is_not_a_reveal() -> None:
    recap = "So my order from last week has not shipped, Beloved is cancelled; when will the refund arrive?"
    earlier = [content(OPENING[0]), content(OPENING[3]), "Yes, please cancel it."]

    assert newly_mentioned_requests(recap, GOAL.subtasks, earlier) == ["Ask when the refund will arrive"]
    assert len(newly_mentioned_requests(recap, GOAL.subtasks, [])) == 3


def test_persona_sampling_is_deterministic_and_covers_the_library() -> None:
    picks = [pick_persona(DEFAULT_PERSONAS, seed) for seed in range(200)]

    assert picks == [pick_persona(DEFAULT_PERSONAS, seed) for seed in range(200)]
    assert {p.name for p in picks if p} == {p.name for p in DEFAULT_PERSONAS}
    assert pick_persona((), 3) is None
    only = Persona(name="formal", description="You write formally.")
    assert pick_persona([only], 99) == only


def test_the_default_library_has_the_promised_personas() -> None:
    names = {p.name for p in DEFAULT_PERSONAS}
    assert {"terse", "chatty", "non_native_speaker", "impatient", "detail_oriented", "correctable_mistake"} <= names
    with pytest.raises(KeyError, match="no persona named 'pirate'; the personas are \\['terse'"):
        persona_named("pirate")


async def test_the_person_knows_whether_another_goal_follows_but_not_what_it_is() -> None:
    model = ScriptedModel([turn("Hi, could you change my delivery address to 4 Elm Row?"), turn("Hi!")])

    await UserSimulator(model).next_turn(state_with([], tasks_done=0))  # the earlier goal, with GOAL still to come
    await UserSimulator(model).next_turn(state_with([], tasks_done=1))  # GOAL, the last one

    first, last = (filled_in(content(request.messages[0]), "user_simulator") for request in model.requests)
    assert first["goal"] == EARLIER_GOAL.description and last["goal"] == GOAL.description
    assert first["after"] == render_section("user_simulator_parts", "more_goals")
    assert last["after"] == render_section("user_simulator_parts", "last_goal")
    asked_first = "\n".join(content(message) for message in model.requests[0].messages)
    assert GOAL.description not in asked_first and "Beloved" not in asked_first, "what comes next stays unknown"


def test_the_correctable_mistake_covers_every_kind_of_detail_a_goal_gives() -> None:
    words = set(re.findall(r"\w+", persona_named("correctable_mistake").description.casefold()))

    kinds = {"ids": {"id", "ids"}, "dates": {"date", "dates"}, "names": {"name", "names"}, "emails": {"email"}}
    assert [kind for kind, spellings in kinds.items() if not words & spellings] == []


async def test_the_person_knows_the_business_and_the_date_when_they_are_known() -> None:
    model = ScriptedModel([turn("Hi!"), turn("Hello.")])
    dated = state_with([]).model_copy(update={"today": "2025-11-21T10:00:00"})

    await UserSimulator(model).next_turn(dated, service="  A second-hand bookshop in Porto  ")
    await UserSimulator(model).next_turn(state_with([]))

    described, plain = (content(request.messages[0]) for request in model.requests)
    assert_mentions(described, "Online bookshop", "A second-hand bookshop in Porto", "Friday", "2025-11-21", "10:00")
    assert_mentions(plain, "Online bookshop")
    assert re.search(r"\d{4}-\d{2}-\d{2}", plain) is None and "Friday" not in plain, "no date when none is known"
