"""A domain's environments together with tools a continued conversation brought along.

A conversation given to ``dialforge extend`` may already call tools the domain does not have (a weather
lookup before the person turns to their order). Those tools stay the dialogue's tools, so its record declares
every tool it calls, and the agent may call them again; nothing real exists behind them, so a model plays
them, as it plays every tool of a domain without real ones. Calls go to whichever side has the tool; the
domain's side alone is checked, since only its state is real.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from dialforge.environments.base import (
    Environment,
    EnvironmentFactory,
    ExecutedCall,
    RestoreError,
    StateDiff,
    ToolResult,
    Verification,
)
from dialforge.environments.simulated import SimulatedEnvironment, SimulatedEnvironments
from dialforge.model.messages import Message
from dialforge.model.tasks import Check
from dialforge.model.tools import ToolSpec

BROUGHT = "brought_tools"
"""The key of the brought tools' state in a combined snapshot; the domain's own keys stay at the top level
(where records and stores look for them, e.g. a SQL fork's ``pages``)."""


def played_tools(snapshot: dict[str, Any]) -> list[str]:
    """The brought tools a model played in the dialogue whose snapshot this is (none for any other snapshot)."""
    brought = snapshot.get(BROUGHT) or {}
    return sorted({entry["name"] for entry in brought.get("log", ())})


class CombinedEnvironments:
    """``domain``'s environments, plus ``brought`` (a model playing the tools a conversation brought along)."""

    def __init__(self, domain: EnvironmentFactory, brought: SimulatedEnvironments) -> None:
        names = {tool.name for tool in domain.tools()} & {tool.name for tool in brought.tools()}
        if names:
            raise ValueError(f"tools {sorted(names)} are both the domain's and brought by the conversation")
        self.domain = domain
        self.brought = brought
        self.prompts = (*domain.prompts, *(p for p in brought.prompts if p not in domain.prompts))

    def tools(self) -> list[ToolSpec]:
        return [*self.domain.tools(), *self.brought.tools()]

    def new(self, *, seed: int, clock: str) -> CombinedEnvironment:
        return CombinedEnvironment(self.domain.new(seed=seed, clock=clock), self.brought.new(seed=seed, clock=clock))

    async def restore(self, snapshot: dict[str, Any], *, seed: int, calls: Sequence[ExecutedCall]) -> Environment:
        if BROUGHT not in snapshot:
            raise RestoreError("not a snapshot of a dialogue with brought tools: it has no brought_tools state")
        own = {tool.name for tool in self.domain.tools()}
        domain = {key: value for key, value in snapshot.items() if key != BROUGHT}
        return CombinedEnvironment(
            await self.domain.restore(domain, seed=seed, calls=[call for call in calls if call[0] in own]),
            await self.brought.restore(
                snapshot[BROUGHT], seed=seed, calls=[call for call in calls if call[0] not in own]
            ),
        )

    async def close(self) -> None:
        """The domain's environments end what still runs; the brought tools hold nothing."""
        await self.domain.close()


class CombinedEnvironment:
    """One dialogue's environment: the domain's, and a model playing the brought tools."""

    def __init__(self, domain: Environment, brought: SimulatedEnvironment) -> None:
        self.domain = domain
        self.brought = brought
        self._brought_names = {tool.name for tool in brought.tools()}

    def tools(self) -> list[ToolSpec]:
        return [*self.domain.tools(), *self.brought.tools()]

    async def call(self, name: str, arguments: dict[str, Any], *, conversation: Sequence[Message] = ()) -> ToolResult:
        side = self.brought if name in self._brought_names else self.domain
        return await side.call(name, arguments, conversation=conversation)

    def snapshot(self) -> dict[str, Any]:
        return {**self.domain.snapshot(), BROUGHT: self.brought.snapshot()}

    def digest(self) -> str:
        """The domain's digest: the brought tools' results were written by a model and change no real state."""
        return self.domain.digest()

    def diff(self, other: Self) -> StateDiff:
        return self.domain.diff(other.domain)

    def verify(self, checks: Sequence[Check]) -> Verification | None:
        return self.domain.verify(checks)

    def close(self) -> None:
        self.domain.close()
        self.brought.close()
