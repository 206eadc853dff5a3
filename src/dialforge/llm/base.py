"""``complete`` written once: backends only say how to send one request.

Every backend (HTTP client, dry-run, scripted) shares the same output policy and accounting
through ``RepairingChatModel``: a reply is checked, repaired once if unusable, and counted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import NO_OPTIONS, Completion, RequestOptions
from dialforge.llm.server_reply import new_call_id
from dialforge.llm.structured import complete_with_repair
from dialforge.model.messages import AssistantMessage, Message


class RepairingChatModel(ABC):
    """A ``ChatModel`` whose subclasses implement ``_send``: one request, one raw reply."""

    name: str
    role: str
    ledger: UsageLedger | None

    async def complete(self, messages: Sequence[Message], options: RequestOptions = NO_OPTIONS) -> Completion:
        async def send(conversation: Sequence[Message]) -> Completion:
            return await self._send(conversation, options)

        completion = await complete_with_repair(
            send, messages, options, ledger=self.ledger, role=self.role, model_name=self.name
        )
        _renumber_reused_call_ids(completion, messages)
        return completion

    @abstractmethod
    async def _send(self, messages: Sequence[Message], options: RequestOptions) -> Completion:
        """Send one request and return the reply as it came, usable or not."""


def _renumber_reused_call_ids(completion: Completion, messages: Sequence[Message]) -> None:
    """Give fresh ids to calls whose id the conversation already used (servers that count from 0 each turn)."""
    if not completion.tool_calls:
        return
    used = {call.id for m in messages if isinstance(m, AssistantMessage) for call in m.tool_calls or ()}
    for call in completion.tool_calls:
        if call.id in used:
            call.id = new_call_id()
        used.add(call.id)
