"""A conversation as plain text for a model that reads it from the outside (simulator, judge, generators).

Deterministic and append-only: the transcript of a longer conversation starts with the transcript of
the shorter one, which keeps consecutive prompts a shared prefix for prefix caching.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage

MAX_RESULT_CHARS = 1_500
"""Tool results are cut here in transcripts: enough to check facts, not a whole table."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} more characters]"


def render_transcript(
    messages: Sequence[Message], *, user: str = "User", agent: str = "Agent", max_result_chars: int = MAX_RESULT_CHARS
) -> str:
    lines: list[str] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, UserMessage):
            lines.append(f"{user}: {message.content}")
        elif isinstance(message, AssistantMessage):
            if message.content and message.content.strip():
                lines.append(f"{agent}: {message.content.strip()}")
            for call in message.tool_calls or ():
                lines.append(f"{agent} calls {call.name}({call.function.arguments})")
        elif isinstance(message, ToolMessage):
            lines.append(f"Result of {message.name}: {_cut(message.content, max_result_chars)}")
    return "\n".join(lines)
