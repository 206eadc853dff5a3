"""Booking each model call's usage to the dialogue it was made for, whichever actor made it.

The engine opens ``usage_scope(state.usage)`` around a step; every ``ScopedUsage`` model called
inside (user simulator, agent, tool simulator deep inside an environment, judge) adds its usage
under its role. A context variable carries the scope, so concurrent dialogues never mix.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from dialforge.llm.completion import NO_OPTIONS, Completion, RequestOptions
from dialforge.llm.errors import ModelError
from dialforge.llm.protocol import ChatModel
from dialforge.model.messages import Message
from dialforge.model.usage import Usage

_scope: ContextVar[MutableMapping[str, Usage] | None] = ContextVar("dialforge_usage_scope", default=None)


@contextmanager
def usage_scope(usage: MutableMapping[str, Usage]) -> Iterator[None]:
    token = _scope.set(usage)
    try:
        yield
    finally:
        _scope.reset(token)


class ScopedUsage:
    """A chat model that also books its usage, under ``role``, to the usage scope in force."""

    def __init__(self, model: ChatModel, role: str) -> None:
        self.model = model
        self.role = role
        self.name = model.name

    async def complete(self, messages: Sequence[Message], options: RequestOptions = NO_OPTIONS) -> Completion:
        """A call that fails books what it spent too (its unusable replies), as the run's ledger does."""
        try:
            completion = await self.model.complete(messages, options)
        except ModelError as exc:
            if exc.usage.calls:
                self._book(exc.usage)
            raise
        self._book(completion.usage)
        return completion

    def _book(self, spent: Usage) -> None:
        usage = _scope.get()
        if usage is not None:
            usage[self.role] = usage.get(self.role, Usage()) + spent
