"""The agent sends the conversation as it stands, with its tools, and returns the model's reply untouched."""

from __future__ import annotations

import pytest

from dialforge.actors.agent import Agent, agent_system_prompt
from dialforge.generation_checks.meta_words import meta_words
from dialforge.llm import ModelUnavailable, ScriptedModel
from dialforge.model.dialogue import DialogueState
from dialforge.model.messages import SystemMessage, UserMessage
from dialforge.model.tools import ToolSpec

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


def test_system_prompt_states_domain_policy_and_today_without_meta_words() -> None:
    prompt = agent_system_prompt("Online bookshop", POLICY, today="2024-03-14T10:27:00")

    assert "assistant of the Online bookshop service" in prompt
    assert POLICY in prompt
    assert "Thursday, 2024-03-14T10:27:00" in prompt
    assert meta_words(prompt, vocabulary="") == []
    for word in ("dialogue", "user simulator", "simulat", "$"):  # "assistant" is what a deployment calls it
        assert word not in prompt.casefold()


def test_direct_requests_replace_the_confirmation_and_question_rules_instead_of_contradicting_them() -> None:
    conversational = agent_system_prompt("Online bookshop", POLICY)
    direct = agent_system_prompt("Online bookshop", POLICY, direct_requests=True)

    assert "wait for their clear yes" in conversational and "ask one short question" in conversational
    assert "wait for their clear yes" not in direct and "ask one short question" not in direct
    assert "is the person's confirmation of it, the yes the policy asks for" in direct
    assert direct.index("is the person's confirmation") < direct.index("## Style"), "a rule, not an afterthought"


def test_the_service_description_gets_its_own_section_before_the_policy() -> None:
    about = "An independent bookshop in Porto that ships across Portugal."
    prompt = agent_system_prompt("Online bookshop", POLICY, description=f"  {about}\n")

    assert f"\n\n## The service\n\n{about}\n\n## Policy" in prompt
    assert "## The service" not in agent_system_prompt("Online bookshop", POLICY)


def test_system_prompt_without_today_or_policy_keeps_its_shape() -> None:
    prompt = agent_system_prompt("Online bookshop", "  ")

    assert "current date" not in prompt
    assert "## Policy\n\nHelp with requests your tools serve" in prompt
