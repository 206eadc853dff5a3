"""The chat model of every role in a run, built from settings, sharing one transport.

Roles that point at the same base URLs share one ``EndpointPool``, so a server's concurrency
limit holds across generator, user simulator, agent, tool simulator and judge together.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from dialforge.llm._transport import HttpTransport
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import ROLES, Role
from dialforge.llm.dry_run import DryRunModel
from dialforge.llm.endpoint_pool import EndpointPool
from dialforge.llm.openai_compatible import OpenAICompatible
from dialforge.llm.protocol import ChatModel
from dialforge.llm.settings import ModelsConfig


class RoleModels:
    def __init__(
        self, models: Mapping[Role, ChatModel], ledger: UsageLedger, transport: HttpTransport | None = None
    ) -> None:
        self._models = dict(models)
        self.ledger = ledger
        self._transport = transport

    def __getitem__(self, role: Role) -> ChatModel:
        return self._models[role]

    def names(self) -> dict[str, str]:
        """Model name per role, as recorded in every dialogue's ``generator`` field."""
        return {role: model.name for role, model in self._models.items()}

    @classmethod
    def dry_run(cls, *, seed: int = 0, ledger: UsageLedger | None = None) -> RoleModels:
        ledger = ledger or UsageLedger()
        return cls({role: DryRunModel(seed, role=role, ledger=ledger) for role in ROLES}, ledger)

    @classmethod
    def from_settings(
        cls,
        settings: ModelsConfig,
        *,
        ledger: UsageLedger | None = None,
        environ: Mapping[str, str] | None = None,
        transport_seed: int | None = None,
    ) -> RoleModels:
        """Resolve every role (raising ``ConfigError`` before any request) and connect them."""
        ledger = ledger or UsageLedger()
        resolved = {role: settings.resolve(role, environ) for role in ROLES}
        transport = HttpTransport(seed=transport_seed)
        pools: dict[tuple[tuple[str, ...], int], EndpointPool] = {}
        models: dict[Role, ChatModel] = {}
        for role, s in resolved.items():
            key = (s.base_urls, s.max_concurrency)
            if key not in pools:
                pools[key] = EndpointPool(s.base_urls, s.max_concurrency)
            models[role] = OpenAICompatible(s, pools[key], transport, ledger=ledger, api_key=s.api_key())
        return cls(models, ledger, transport)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.close()

    async def __aenter__(self) -> RoleModels:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
