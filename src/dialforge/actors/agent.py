"""The agent being distilled: its system prompt and one reply per call.

The system prompt becomes ``messages[0]`` of every dialogue, so it is training data: it reads like the prompt of
a real deployment (the business, its policy, how to use tools) and never mentions how the dialogue was made.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from dialforge.actors.reply_checks import copied_text
from dialforge.llm.completion import Completion, RequestOptions
from dialforge.llm.protocol import ChatModel
from dialforge.model.dialogue import DialogueState
from dialforge.prompts import render_prompt, render_section, service_section


def agent_system_prompt(
    domain: str,
    policy: str,
    *,
    description: str = "",
    today: str | None = None,
    direct_requests: bool = False,
    instructions: str | None = None,
) -> str:
    """The agent's system prompt for ``domain`` (described by ``description``); ``today`` (ISO date or date-time)
    is stated with its weekday. ``direct_requests`` is the task-oriented setting: nobody answers the agent's
    questions. ``instructions`` are the system prompt a continued conversation began with, kept word for word
    at the end."""
    now = "" if today is None else " " + _part("now", weekday=f"{datetime.fromisoformat(today):%A}", today=today)
    return render_prompt(
        "agent_system",
        domain=domain,
        service=service_section(description),
        policy=policy.strip() or _part("no_policy"),
        now=now,
        rules=_part("direct_request_rules" if direct_requests else "conversation_rules"),
        instructions="" if instructions is None else "\n\n" + _part("instructions", text=instructions),
    )


def _part(section: str, /, **values: object) -> str:
    """A piece of the system prompt that depends on the setting."""
    return render_section("agent_system_parts", section, **values)


class Agent:
    """Answers the conversation as it stands: text, tool calls, or both, with the model's reasoning."""

    prompts: ClassVar[tuple[str, ...]] = ("agent_system", "agent_system_parts", "service_section")
    """The packaged prompts its system prompt is made of."""

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
                tools=tuple(state.tools) or None,
                tool_choice=tool_choice,
                seed=state.seed + len(state.messages),
                check=copied_text(),
            ),
        )
