"""A conversation as plain text for a model that reads it from the outside (simulator, generators).

Each message's lines depend only on it and the messages before it, so the transcript of a longer conversation
starts with the transcript of the shorter one: consecutive prompts share a prefix, which prefix caching in
vLLM/SGLang rewards. The user simulator is only asked after a reply in words, so its transcripts never end with
calls still waiting for their results, the one case whose lines change once the results arrive.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialforge.model.messages import AssistantMessage, Message, ToolCall, ToolMessage, UserMessage

MAX_RESULT_CHARS = 1500
"""Tool results longer than this are cut in the transcript: the user skims them, and prompts stay small."""


def transcript_lines(messages: Sequence[Message]) -> list[str]:
    """The conversation as the user sees it: what each side said, and each tool call on one line with its result,
    so that the results of parallel calls are told apart by the call they answer."""
    lines: list[str] = []
    calls: dict[str, ToolCall] = {}
    for message in messages:
        if isinstance(message, UserMessage):
            lines.append(_speech("User", message.content))
        elif isinstance(message, AssistantMessage):
            if message.content and message.content.strip():
                lines.append(_speech("Agent", message.content))
            calls = {call.id: call for call in message.tool_calls or ()}
        elif isinstance(message, ToolMessage):
            call = calls.pop(message.tool_call_id, None)
            used = _use(call) if call is not None else f"[Agent uses {message.name}"
            lines.append(f"{used}; result: {_compact(message.content)}]")
    lines.extend(f"{_use(call)}; no result yet]" for call in calls.values())
    return lines


def _use(call: ToolCall) -> str:
    return f"[Agent uses {call.name} with {_compact(call.function.arguments)}"


def _speech(speaker: str, text: str) -> str:
    """A chat message, its continuation lines indented so no line of it can pass for another speaker's."""
    return f"{speaker}: " + text.strip().replace("\n", "\n  ")


def _compact(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_RESULT_CHARS else flat[:MAX_RESULT_CHARS] + " ...(cut)"


def render_transcript(messages: Sequence[Message]) -> str:
    return "\n".join(transcript_lines(messages))
