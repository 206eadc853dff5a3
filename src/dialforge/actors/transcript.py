"""A conversation as plain text for a model that reads it from the outside (simulator, generators).

Each message renders on its own, so the transcript of a longer conversation starts with the transcript
of the shorter one: consecutive prompts share a prefix, which prefix caching in vLLM/SGLang rewards.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialforge.model.messages import AssistantMessage, Message, ToolMessage, UserMessage

MAX_RESULT_CHARS = 1500
"""Tool results longer than this are cut in the transcript: the user skims them, and prompts stay small."""


def transcript_lines(message: Message) -> list[str]:
    """One message as the user sees it. Depends on nothing but the message, so the transcript only grows."""
    if isinstance(message, UserMessage):
        return [_speech("User", message.content)]
    if isinstance(message, ToolMessage):
        return [f"[Result of {message.name}: {_compact(message.content)}]"]
    if isinstance(message, AssistantMessage):
        lines = [_speech("Agent", message.content)] if message.content and message.content.strip() else []
        lines.extend(
            f"[Agent uses {call.name} with {_compact(call.function.arguments)}]" for call in message.tool_calls or ()
        )
        return lines
    return []


def _speech(speaker: str, text: str) -> str:
    """A chat message, its continuation lines indented so no line of it can pass for another speaker's."""
    return f"{speaker}: " + text.strip().replace("\n", "\n  ")


def _compact(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_RESULT_CHARS else flat[:MAX_RESULT_CHARS] + " ...(cut)"


def render_transcript(messages: Sequence[Message]) -> str:
    return "\n".join(line for message in messages for line in transcript_lines(message))
