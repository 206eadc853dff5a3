"""The paper's Table 1 quantities for one dialogue, counted from its messages.

- Turn: every message the paper counts: a user message, an assistant text reply, each tool call,
  each tool output. An assistant message with text and two calls is three turns. The same count is the
  dialogue's turn budget (``DialogueConfig.turn_budget``), so the guard and the statistics never disagree.
- Step: one tool-use iteration, i.e. an assistant message that calls tools; ``steps`` totals them,
  ``max_steps_per_request`` is the most between two user messages.
- Only what the dialogue made counts: a continued conversation's own messages (``dialforge extend``) do not.
- Task: goals completed in the dialogue (``tasks_completed``); ``tasks_assigned`` counts every goal it was
  given, the ones a truncated dialogue dropped and a failed one never finished included.
"""

from __future__ import annotations

from collections.abc import Sequence

from dialforge.environments.base import is_error_text
from dialforge.model.dialogue import DialogueState, DialogueStats
from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage


def message_turns(message: Message) -> int:
    """The turns one message counts for: its text, and each tool call of an assistant message."""
    if isinstance(message, AssistantMessage):
        return len(message.tool_calls or ()) + (1 if (message.content or "").strip() else 0)
    return 1 if isinstance(message, UserMessage | ToolMessage) else 0


def dialogue_stats(state: DialogueState, messages: Sequence[Message] | None = None) -> DialogueStats:
    """The dialogue's figures over ``messages`` (default: the state's; a record passes the ones it keeps), counting
    only what the dialogue made: a continued conversation's own messages, after the system prompt, are not."""
    stats = DialogueStats(tasks_assigned=len(state.tasks) + len(state.tasks_dropped), tasks_completed=state.tasks_done)
    steps_in_request = 0
    kept = list(state.messages if messages is None else messages)
    system = 1 if kept and isinstance(kept[0], SystemMessage) else 0
    for message in kept[system + state.history_length :]:
        stats.turns += message_turns(message)
        if isinstance(message, UserMessage):
            steps_in_request = 0
        elif isinstance(message, AssistantMessage):
            calls = len(message.tool_calls or ())
            stats.tool_calls += calls
            if calls:
                stats.steps += 1
                steps_in_request += 1
                stats.max_steps_per_request = max(stats.max_steps_per_request, steps_in_request)
        elif isinstance(message, ToolMessage):
            stats.tool_errors += is_error_text(message.content)
    return stats
