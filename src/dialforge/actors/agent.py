"""The agent being distilled: its system prompt and one reply per call.

The system prompt becomes ``messages[0]`` of every dialogue, so it is training data: it reads like the prompt of
a real deployment (the business, its policy, how to use tools) and never mentions how the dialogue was made.
"""

from __future__ import annotations

from datetime import datetime

from dialforge.llm.completion import Completion, RequestOptions
from dialforge.llm.protocol import ChatModel
from dialforge.model.dialogue import DialogueState
from dialforge.prompts import render_prompt, service_section

NO_POLICY = "Help with requests your tools serve, and follow the rules below."
"""Stands in for a domain without a written policy, so the prompt keeps its shape."""


CONVERSATION_RULES = {
    "changes": "Before anything that creates, changes, cancels or deletes a record, do what the policy asks: tell "
    "the user exactly what you are about to do (which record, which values) and wait for their clear yes. Do no more "
    "than they agreed to.",
    "unclear": "If a detail you need is missing or unclear, ask one short question instead of assuming. If a search "
    "finds nothing, or several possible matches, say so and ask.",
}
"""How the agent handles changes and gaps when a person answers its questions (the user-oriented pipelines)."""

DIRECT_REQUEST_RULES = {
    "changes": "Requests here come as complete instructions, and nobody will answer a question: a request that "
    "states a change in full (which record, which values) is the person's confirmation of it, the yes the policy "
    "asks for. Check it against the policy, carry it out, and report the result. Do no more than was asked.",
    "unclear": "If a detail you need is missing, look it up with your tools. If it cannot be found, or a search "
    "finds several possible matches, say so and stop rather than guess.",
}
"""The same rules for the task-oriented pipeline, where each request arrives whole and nobody replies."""


def agent_system_prompt(
    domain: str, policy: str, *, description: str = "", today: str | None = None, direct_requests: bool = False
) -> str:
    """The agent's system prompt for ``domain`` (described by ``description``); ``today`` (ISO date or date-time)
    is stated with its weekday. ``direct_requests`` is the task-oriented setting: nobody answers the agent's
    questions."""
    now = "" if today is None else f" The current date and time is {datetime.fromisoformat(today):%A}, {today}."
    rules = DIRECT_REQUEST_RULES if direct_requests else CONVERSATION_RULES
    return render_prompt(
        "agent_system",
        domain=domain,
        service=service_section(description),
        policy=policy.strip() or NO_POLICY,
        now=now,
        **rules,
    )


class Agent:
    """Answers the conversation as it stands: text, tool calls, or both, with the model's reasoning."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model

    async def respond(self, state: DialogueState, *, allow_tools: bool = True) -> Completion:
        """One agent reply to ``state.messages`` (system prompt included); ``ModelError`` propagates.

        ``allow_tools=False`` keeps the tools in the request (the conversation refers to them) but forbids a
        call, so a capped tool loop ends in text. The seed moves with the conversation so that a resumed
        dialogue asks exactly what the uninterrupted one asked.
        """
        tool_choice = ("auto" if allow_tools else "none") if state.tools else None
        return await self.model.complete(
            state.messages,
            RequestOptions(
                tools=tuple(state.tools) or None, tool_choice=tool_choice, seed=state.seed + len(state.messages)
            ),
        )
