"""Text copied from a prompt's examples or placeholders is refused wherever a model writes: what counts as copied
is read from the prompts, and a copy goes through the one repair round like any unusable reply."""

from __future__ import annotations

import json

import orjson
import pytest

from dialforge.actors.agent import Agent
from dialforge.actors.generators.questions import generate_questions
from dialforge.actors.user_simulator import UserSimulator
from dialforge.generation_checks.copied_text import PromptExamples
from dialforge.llm import ModelOutputError, ScriptedModel
from dialforge.llm.accounting import UsageLedger
from dialforge.model import DialogueState, Task
from dialforge.model.domain import Domain
from dialforge.model.messages import SystemMessage, UserMessage
from dialforge.prompts import load_prompt, prompt_examples

PROMPT = """Reply with one JSON object and nothing else:

{"user_message": "<your next chat message>", "done": false}

For example: {"reasoning": "The person asked for ... In [4] the assistant ...", "items": ["T1.C1 ..."]}
or {"description": "You are Ines Silva, member 1042, and you want your loan of Kafka on the Shore renewed."}
or {"reply": "Yes, please go ahead."}. Quote the policy between <policy> and </policy>; 3 < 4 and 5 > 2.
"""


def test_the_placeholders_and_examples_are_read_from_the_prompt_text() -> None:
    examples = PromptExamples.of([PROMPT])

    assert examples.copied_in("<your next chat message>") == "<your next chat message>"
    assert examples.copied_in("Sure! <Your next  chat message>") is not None, "inside a text, in any case"
    assert examples.copied_in("The person asked for ... In [4] the assistant ...") is not None
    assert examples.copied_in("T1.C1 ...") is not None
    copied = "You are Ines Silva, member 1042, and you want your loan of Kafka on the Shore renewed."
    assert examples.copied_in(copied) is not None, "a worked example given whole"


@pytest.mark.parametrize(
    "own",
    [
        "Yes, please go ahead.",  # a short example anyone might say
        "<policy>",  # a tag, not a placeholder
        "Is 3 < 4 and 5 > 2?",
        "The person asked for a refund. In [4] the assistant refunded order 12.",  # the form, filled in
        "T1.C1 The loan is renewed",
        "",
    ],
)
def test_own_words_in_the_form_of_an_example_are_not_a_copy(own: str) -> None:
    assert PromptExamples.of([PROMPT]).copied_in(own) is None


def test_every_placeholder_in_a_packaged_prompts_json_example_is_known() -> None:
    """Each JSON example line of the packaged prompts: its placeholders, copied as a value, are caught."""
    examples = prompt_examples()
    found = 0
    for name in ("user_simulator", "judge", "tool_simulator"):
        for line in load_prompt(name).splitlines():
            if line.startswith("{") and "<" in line:
                found += 1
                placeholder = line[line.index("<") : line.index(">") + 1]
                assert examples.copied_in(placeholder) == placeholder.casefold(), (name, placeholder)
    assert found


def user_example_placeholder() -> str:
    """The placeholder the user simulator's prompt shows where the message goes."""
    for line in load_prompt("user_simulator").splitlines():
        if line.startswith("{") and "<" in line:
            value = json.loads(line)["user_message"]
            assert isinstance(value, str)
            return value
    raise AssertionError("the user simulator's prompt shows no placeholder")


def turn(message: str) -> str:
    return orjson.dumps({"user_message": message, "is_task_complete": False}).decode()


GOAL = Task(id="g", description="You want to know whether order 5521 has shipped.", subtasks=["Ask about 5521"])


def user_state() -> DialogueState:
    return DialogueState(id="d", mode="user", domain="shop", tools=[], tasks=[GOAL], messages=[])


async def test_the_user_simulators_placeholder_is_sent_back_and_refused_if_it_stays() -> None:
    placeholder = user_example_placeholder()
    ledger = UsageLedger()
    model = ScriptedModel([turn(placeholder), turn("Hi, has order 5521 shipped yet?")], ledger=ledger, role="user")

    said = await UserSimulator(model).next_turn(user_state())

    assert said.user_message == "Hi, has order 5521 shipped yet?"
    assert placeholder in model.requests[1].messages[-1].content, "the repair names what was copied"
    problems = ledger.stats("user", "scripted").output_problems
    assert (problems["copied_text"], problems["repaired"]) == (1, 1)

    stuck = ScriptedModel([turn(placeholder), turn(f"  {placeholder} ")], role="user")
    with pytest.raises(ModelOutputError) as raised:
        await UserSimulator(stuck).next_turn(user_state())
    assert raised.value.kind == "copied_text"


async def test_the_agents_text_copying_a_placeholder_is_sent_back() -> None:
    placeholder = sorted(prompt_examples().placeholders)[0]
    model = ScriptedModel([{"content": placeholder}, {"content": "Order 5521 shipped on Monday."}], role="agent")
    state = DialogueState(
        id="d",
        mode="user",
        domain="shop",
        tools=[],
        messages=[SystemMessage(content="You help shop customers."), UserMessage(content="Has 5521 shipped?")],
    )

    reply = await Agent(model).respond(state)

    assert reply.content == "Order 5521 shipped on Monday." and len(model.requests) == 2


async def test_a_generated_item_copying_a_placeholder_is_sent_back_and_dropped_if_it_stays() -> None:
    placeholder = sorted(prompt_examples().placeholders)[0]
    good = "Which of my orders have not shipped yet?"
    model = ScriptedModel(
        [orjson.dumps({"questions": [good, placeholder]}).decode(), orjson.dumps({"questions": [placeholder]}).decode()]
    )

    batch = await generate_questions(model, Domain(name="online shop", description="Clothes."), count=2)

    assert batch.items == [good]
    (rejected,) = batch.rejected
    assert rejected.submitted == placeholder and any(placeholder in reason for reason in rejected.reasons)
