"""``complete`` written once: backends only say how to send one request.

Every backend (HTTP client, dry-run, scripted) shares the same output policy and accounting
through ``RepairingChatModel``: a reply is checked, repaired once if unusable, and counted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import Completion, CompletionOptions, ResponseSchema, ToolChoice
from dialforge.llm.structured import complete_with_repair
from dialforge.model.messages import Message
from dialforge.model.tools import ToolSpec


class RepairingChatModel(ABC):
    """A ``ChatModel`` whose subclasses implement ``_send``: one request, one raw reply."""

    name: str
    role: str
    ledger: UsageLedger | None

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] | None = None,
        tool_choice: ToolChoice | None = None,
        response_format: ResponseSchema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        options = CompletionOptions(
            tools=tuple(tools) if tools else None,
            tool_choice=tool_choice,
            response_format=response_format,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
        )

        async def send(conversation: Sequence[Message]) -> Completion:
            return await self._send(conversation, options)

        return await complete_with_repair(
            send, messages, options, ledger=self.ledger, role=self.role, model_name=self.name
        )

    @abstractmethod
    async def _send(self, messages: Sequence[Message], options: CompletionOptions) -> Completion:
        """Send one request and return the reply as it came, usable or not."""
