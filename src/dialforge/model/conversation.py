"""Structural checks on a conversation that trainers and chat templates would choke on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dialforge.model.messages import AssistantMessage, Message, ToolMessage


def conversation_problems(
    messages: Sequence[Message], tool_names: Iterable[str], *, allow_pending: bool = False
) -> list[str]:
    """Every reason the messages are not a well-formed tool-use conversation; empty when fine.

    Rules: tool-call ids are unique; every call names a known tool and carries a JSON-object
    argument string; the tool messages right after an assistant message answer each of its
    calls exactly once, with the call's name; no tool message answers nothing. With
    ``allow_pending`` the calls of a final assistant message may still be unanswered (a
    dialogue in flight).
    """
    known = set(tool_names)
    problems: list[str] = []
    seen_ids: set[str] = set()
    pending: dict[str, str] = {}

    def close_pending(at: int, final: bool) -> None:
        if pending and not (final and allow_pending):
            problems.append(f"message {at}: tool calls {sorted(pending)} are never answered by a tool message")
        pending.clear()

    for index, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            name = pending.pop(message.tool_call_id, None)
            if name is None:
                problems.append(
                    f"message {index}: tool message answers {message.tool_call_id!r}, "
                    "which is not an open call of the preceding assistant message"
                )
            elif name != message.name:
                problems.append(
                    f"message {index}: tool message for {message.tool_call_id!r} is named "
                    f"{message.name!r} but the call was to {name!r}"
                )
            continue
        close_pending(index, final=False)
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or []:
                if call.id in seen_ids:
                    problems.append(f"message {index}: tool call id {call.id!r} is used twice")
                seen_ids.add(call.id)
                pending[call.id] = call.name
                if call.name not in known:
                    problems.append(f"message {index}: tool call to unknown tool {call.name!r}")
                try:
                    call.parsed_arguments()
                except ValueError as exc:
                    problems.append(f"message {index}: {exc}")
    close_pending(len(messages), final=True)
    return problems
