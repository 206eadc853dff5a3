"""The agent sends the conversation as it stands, with its tools, and returns the model's reply untouched."""

from __future__ import annotations

import re

import pytest

from dialforge.actors.agent import Agent, agent_system_prompt
from dialforge.generation_checks.meta_words import meta_words
from dialforge.llm import ModelUnavailable, ScriptedModel
from dialforge.model.dialogue import DialogueState
from dialforge.model.messages import SystemMessage, UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_section
from prompt_checks import assert_in_order, assert_mentions, filled_in

SEARCH = ToolSpec(
    name="search_orders",
    description="Find a customer's orders by email.",
    parameters={"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]},
)
POLICY = "Look orders up with search_orders. Confirm with the customer before cancelling anything."


def state(*, tools: list[ToolSpec] | None = None, seed: int = 7) -> DialogueState:
    prompt = agent_system_prompt("Online bookshop", POLICY)
    return DialogueState(
        id="d1",
        mode="user",
        domain="Online bookshop",
        tools=[SEARCH] if tools is None else tools,
        policy=POLICY,
        seed=seed,
        messages=[SystemMessage(content=prompt), UserMessage(content="Where is my order? I'm ana@example.com.")],
    )


async def test_respond_sends_system_prompt_tools_and_auto_and_returns_calls_with_reasoning() -> None:
    model = ScriptedModel(
        [
            {
                "tool_calls": [{"name": "search_orders", "arguments": {"email": "ana@example.com"}}],
                "reasoning": "I should look up her orders first.",
            }
        ]
    )
    dialogue = state()

    completion = await Agent(model).respond(dialogue)

    (request,) = model.requests
    assert request.messages == dialogue.messages
    assert isinstance(request.messages[0], SystemMessage) and "Online bookshop" in request.messages[0].content
    assert request.options.tools == (SEARCH,)
    assert request.options.tool_choice == "auto"
    assert request.options.seed == 7 + 2
    (call,) = completion.tool_calls
    assert call.name == "search_orders" and call.parsed_arguments() == {"email": "ana@example.com"}
    assert completion.reasoning == "I should look up her orders first."


async def test_respond_without_tools_allowed_sends_tool_choice_none() -> None:
    model = ScriptedModel(["Your order shipped yesterday."])

    completion = await Agent(model).respond(state(), allow_tools=False)

    assert model.requests[0].options.tool_choice == "none"
    assert model.requests[0].options.tools == (SEARCH,)
    assert completion.content == "Your order shipped yesterday." and completion.tool_calls == []


async def test_respond_with_no_tools_sends_no_tool_choice() -> None:
    model = ScriptedModel(["Happy to help."])

    await Agent(model).respond(state(tools=[]))

    assert (model.requests[0].options.tools, model.requests[0].options.tool_choice) == (None, None)


async def test_model_errors_propagate() -> None:
    with pytest.raises(ModelUnavailable):
        await Agent(ScriptedModel([ModelUnavailable("down")])).respond(state())


def test_system_prompt_states_domain_policy_and_today_with_its_weekday_without_meta_words() -> None:
    prompt = agent_system_prompt("Online bookshop", POLICY, today="2024-03-14T10:27:00")

    assert_mentions(prompt, "Online bookshop", POLICY, "2024-03-14T10:27:00", "Thursday")
    assert meta_words(prompt, vocabulary="") == []
    for word in ("dialogue", "user simulator", "simulat", "$"):  # "assistant" is what a deployment calls it
        assert word not in prompt.casefold()


def test_direct_requests_replace_the_confirmation_and_question_rules_instead_of_contradicting_them() -> None:
    conversational = filled_in(agent_system_prompt("Online bookshop", POLICY), "agent_system")
    direct = filled_in(agent_system_prompt("Online bookshop", POLICY, direct_requests=True), "agent_system")

    assert conversational["rules"] == render_section("agent_system_parts", "conversation_rules")
    assert direct["rules"] == render_section("agent_system_parts", "direct_request_rules")
    assert conversational | {"rules": ""} == direct | {"rules": ""}, "the rules are all that changes"


def test_the_service_description_comes_before_the_policy_and_only_when_there_is_one() -> None:
    about = "An independent bookshop in Porto that ships across Portugal."
    described = agent_system_prompt("Online bookshop", POLICY, description=f"  {about}\n")
    plain = agent_system_prompt("Online bookshop", POLICY)

    assert_in_order(described, about, POLICY)
    assert filled_in(plain, "agent_system")["service"] == "", "no empty section for a domain without a description"


def test_system_prompt_without_today_or_policy_keeps_its_shape() -> None:
    prompt = agent_system_prompt("Online bookshop", "  ")

    assert re.search(r"\d{4}-\d{2}-\d{2}", prompt) is None, "no date is stated when none is known"
    assert filled_in(prompt, "agent_system")["policy"].strip(), "a domain without a policy still gets rules there"
