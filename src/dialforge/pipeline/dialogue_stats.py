"""The paper's Table 1 quantities for one dialogue, counted from its messages.

- Turn: every message the paper counts: a user message, an assistant text reply, each tool call,
  each tool output. An assistant message with text and two calls is three turns.
- Step: one tool-use iteration, i.e. an assistant message that calls tools; ``steps`` totals them,
  ``max_steps_per_request`` is the most between two user messages.
- Task: objectives completed in the dialogue.
"""

from __future__ import annotations

from dialforge.environments.base import is_error_text
from dialforge.model.dialogue import DialogueState, DialogueStats
from dialforge.model.messages import AssistantMessage, ToolMessage, UserMessage


def dialogue_stats(state: DialogueState) -> DialogueStats:
    stats = DialogueStats(tasks=state.tasks_done)
    steps_in_request = 0
    for message in state.messages:
        if isinstance(message, UserMessage):
            stats.turns += 1
            steps_in_request = 0
        elif isinstance(message, AssistantMessage):
            calls = len(message.tool_calls or ())
            stats.turns += calls + (1 if (message.content or "").strip() else 0)
            stats.tool_calls += calls
            if calls:
                stats.steps += 1
                steps_in_request += 1
                stats.max_steps_per_request = max(stats.max_steps_per_request, steps_in_request)
        elif isinstance(message, ToolMessage):
            stats.turns += 1
            stats.tool_errors += is_error_text(message.content)
    return stats
