"""The agent being distilled: its system prompt and one reply per call.

The system prompt becomes ``messages[0]`` of every dialogue, so it is training data: it reads like the prompt of
a real deployment (the business, its policy, how to use tools) and never mentions how the dialogue was made.
"""

from __future__ import annotations

from datetime import datetime

from dialforge.llm.completion import Completion
from dialforge.llm.protocol import ChatModel
from dialforge.model.dialogue import DialogueState
from dialforge.prompts import render_prompt

NO_POLICY = "Help with requests your tools serve, and follow the rules below."
"""Stands in for a domain without a written policy, so the prompt keeps its shape."""


def agent_system_prompt(domain: str, policy: str, *, today: str | None = None) -> str:
    """The agent's system prompt for ``domain``; ``today`` (ISO date or date-time) is stated with its weekday."""
    now = "" if today is None else f" The current date and time is {datetime.fromisoformat(today):%A}, {today}."
    return render_prompt("agent_system", domain=domain, policy=policy.strip() or NO_POLICY, now=now)


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
            tools=state.tools or None,
            tool_choice=tool_choice,
            seed=state.seed + len(state.messages),
        )
