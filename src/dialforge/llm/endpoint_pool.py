"""Several base URLs serving one model (vLLM/SGLang replicas): route, limit, and rest the sick.

Requests go to the healthy endpoint with the fewest requests in flight, never beyond its
concurrency limit. An endpoint that fails several times in a row, or answers 429 with a
``Retry-After``, is cooled down: no request is sent to it until the cool-down ends, so a
struggling server gets room to recover instead of a retry storm.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class Endpoint:
    base_url: str
    limit: int
    in_flight: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    completions_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.completions_url = f"{self.base_url}/chat/completions"


class EndpointPool:
    def __init__(
        self,
        base_urls: Sequence[str],
        max_concurrency: int,
        *,
        failures_before_cooldown: int = 5,
        cooldown_s: float = 0.5,
        max_cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_urls:
            raise ValueError("an endpoint pool needs at least one base URL")
        self.endpoints = [Endpoint(url.rstrip("/"), max_concurrency) for url in base_urls]
        self._slots = asyncio.Semaphore(max_concurrency * len(self.endpoints))
        self._failures_before_cooldown = failures_before_cooldown
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def base_urls(self) -> list[str]:
        return [endpoint.base_url for endpoint in self.endpoints]

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Endpoint]:
        """Hold one request slot on the best endpoint for the duration of the block."""
        async with self._slots:
            endpoint = await self._pick()
            endpoint.in_flight += 1
            try:
                yield endpoint
            finally:
                endpoint.in_flight -= 1
                self._wake_one()

    async def _pick(self) -> Endpoint:
        # Holding a pool slot guarantees some endpoint is below its limit, but it may be resting;
        # then wait for whichever comes first: a slot freed elsewhere or the end of the rest.
        while True:
            now = self._clock()
            best: Endpoint | None = None
            for endpoint in self.endpoints:
                available = endpoint.in_flight < endpoint.limit and endpoint.cooldown_until <= now
                if available and (best is None or endpoint.in_flight < best.in_flight):
                    best = endpoint
            if best is not None:
                return best
            wake = min(e.cooldown_until for e in self.endpoints if e.in_flight < e.limit)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, timeout=max(wake - now, 0.001))
            except TimeoutError:
                pass
            finally:
                if not waiter.done():
                    waiter.cancel()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def record_success(self, endpoint: Endpoint) -> None:
        endpoint.consecutive_failures = 0

    def record_failure(self, endpoint: Endpoint, *, retry_after: float | None = None) -> None:
        endpoint.consecutive_failures += 1
        now = self._clock()
        rest = retry_after or 0.0
        excess = endpoint.consecutive_failures - self._failures_before_cooldown
        if excess >= 0:
            rest = max(rest, min(self._max_cooldown_s, self._cooldown_s * 2 ** min(excess, 10)))
        if rest:
            endpoint.cooldown_until = max(endpoint.cooldown_until, now + rest)
