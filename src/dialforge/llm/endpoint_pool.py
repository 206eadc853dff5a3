"""Several base URLs serving one model (vLLM/SGLang replicas): route, limit, and rest the sick.

Requests go to the healthy endpoint with the fewest requests in flight, never beyond its
concurrency limit. An endpoint that fails several times in a row, or answers 429 with a
``Retry-After``, is cooled down: no request is sent to it until the cool-down ends, so a
struggling server gets room to recover instead of a retry storm. Cool-downs double per
*episode*, not per failure: requests already in flight when a cool-down starts carry no news
about the endpoint, so their failures are not counted (a burst of 64 failing requests is one
episode, not a 60-second ban).
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
    episodes: int = 0
    epoch: int = 0
    cooldown_until: float = 0.0
    completions_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.completions_url = f"{self.base_url}/chat/completions"


@dataclass(frozen=True, slots=True)
class Lease:
    """One request slot on an endpoint, and the endpoint's epoch when the request was sent."""

    endpoint: Endpoint
    epoch: int


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
    async def lease(self) -> AsyncIterator[Lease]:
        """Hold one request slot on the best endpoint for the duration of the block."""
        async with self._slots:
            endpoint = await self._pick()
            endpoint.in_flight += 1
            try:
                yield Lease(endpoint, endpoint.epoch)
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
                async with asyncio.timeout(max(wake - now, 0.001)):
                    await waiter
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the wake-up this cancelled request will not use
                raise
            finally:
                if not waiter.done():
                    waiter.cancel()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def record_success(self, lease: Lease) -> None:
        lease.endpoint.consecutive_failures = 0
        lease.endpoint.episodes = 0

    def record_failure(self, lease: Lease, *, retry_after: float | None = None) -> None:
        """Count a failure; a server's ``retry_after`` rests the endpoint at once (at most ``max_cooldown_s``)."""
        endpoint = lease.endpoint
        now = self._clock()
        if retry_after:
            endpoint.cooldown_until = max(endpoint.cooldown_until, now + min(retry_after, self._max_cooldown_s))
        if lease.epoch != endpoint.epoch:
            return  # sent before the current cool-down began: no news about the endpoint
        endpoint.consecutive_failures += 1
        if endpoint.consecutive_failures >= self._failures_before_cooldown:
            rest = min(self._max_cooldown_s, self._cooldown_s * 2 ** min(endpoint.episodes, 10))
            endpoint.cooldown_until = max(endpoint.cooldown_until, now + rest)
            endpoint.episodes += 1
            endpoint.epoch += 1
            endpoint.consecutive_failures = 0
