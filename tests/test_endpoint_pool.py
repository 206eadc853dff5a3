"""Requests spread over replicas by load; failing replicas rest; limits hold."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from dialforge.llm._transport import RetryPolicy, retry_after_seconds
from dialforge.llm.endpoint_pool import Endpoint, EndpointPool, Lease


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_least_in_flight_endpoint_is_chosen() -> None:
    pool = EndpointPool(["http://a/v1", "http://b/v1"], max_concurrency=4)
    async with pool.lease() as first, pool.lease() as second, pool.lease() as third:
        assert {first.endpoint.base_url, second.endpoint.base_url} == {"http://a/v1", "http://b/v1"}
        assert third.endpoint.in_flight == 2 and first.endpoint.in_flight + second.endpoint.in_flight == 3


async def test_per_endpoint_limit_is_never_exceeded() -> None:
    pool = EndpointPool(["http://a/v1", "http://b/v1"], max_concurrency=3)
    peak = 0

    async def one() -> None:
        nonlocal peak
        async with pool.lease() as lease:
            peak = max(peak, lease.endpoint.in_flight)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(one() for _ in range(50)))
    assert peak == 3
    assert all(e.in_flight == 0 for e in pool.endpoints)


def lease_of(endpoint: Endpoint) -> Lease:
    """A lease as a request sent now would hold it."""
    return Lease(endpoint, endpoint.epoch)


async def test_repeatedly_failing_endpoint_is_cooled_down_and_skipped() -> None:
    clock = FakeClock()
    pool = EndpointPool(["http://a/v1", "http://b/v1"], 8, failures_before_cooldown=3, cooldown_s=2, clock=clock)
    sick = pool.endpoints[0]
    for _ in range(3):
        pool.record_failure(lease_of(sick))
    assert sick.cooldown_until == clock.now + 2
    for _ in range(5):
        async with pool.lease() as lease:
            assert lease.endpoint.base_url == "http://b/v1"
    clock.now += 2
    for _ in range(3):
        pool.record_failure(lease_of(sick))
    assert sick.cooldown_until == clock.now + 4, "the next episode rests twice as long"
    pool.record_success(lease_of(sick))
    assert (sick.consecutive_failures, sick.episodes) == (0, 0)


async def test_failures_of_requests_sent_before_a_cool_down_do_not_extend_it() -> None:
    clock = FakeClock()
    pool = EndpointPool(["http://a/v1"], 64, failures_before_cooldown=5, cooldown_s=0.5, clock=clock)
    endpoint = pool.endpoints[0]
    in_flight = [lease_of(endpoint) for _ in range(64)]
    for lease in in_flight:
        pool.record_failure(lease)
    assert endpoint.cooldown_until == clock.now + 0.5, "a burst of 64 failures is one episode"
    assert endpoint.episodes == 1


async def test_retry_after_rests_the_endpoint_even_after_one_429_but_never_beyond_the_cap() -> None:
    clock = FakeClock()
    pool = EndpointPool(["http://a/v1"], 8, max_cooldown_s=60, clock=clock)
    pool.record_failure(lease_of(pool.endpoints[0]), retry_after=5)
    assert pool.endpoints[0].cooldown_until == clock.now + 5
    pool.record_failure(lease_of(pool.endpoints[0]), retry_after=3600)
    assert pool.endpoints[0].cooldown_until == clock.now + 60


async def test_when_every_endpoint_rests_the_request_waits_instead_of_hammering() -> None:
    pool = EndpointPool(["http://a/v1"], 8)
    pool.record_failure(lease_of(pool.endpoints[0]), retry_after=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with pool.lease():
        waited = loop.time() - started
    assert waited >= 0.15


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after-ms": "250", "Retry-After": "3"}, 0.25),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"retry-after-ms": "inf", "Retry-After": "2"}, 2.0),
        ({}, None),
    ],
)
def test_retry_after_headers_are_read_in_every_form(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(CIMultiDictProxy(CIMultiDict(headers))) == seconds


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    import random

    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4)
    rng = random.Random(1)
    delays = [policy.delay(attempt, None, rng) for attempt in range(6)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert all(2 <= d <= 4 for d in delays[3:])
    assert 7.0 <= policy.delay(0, 7.0, rng) <= 7.7
    assert policy.delay(0, 1e6, rng) <= policy.max_retry_after_s * 1.1


async def test_a_slot_freed_on_a_live_replica_is_used_while_another_replica_rests() -> None:
    pool = EndpointPool(["http://live/v1", "http://sick/v1"], 1, failures_before_cooldown=1, cooldown_s=30)
    _, sick = pool.endpoints
    pool.record_failure(lease_of(sick))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def use(seconds: float) -> str:
        async with pool.lease() as lease:
            await asyncio.sleep(seconds)
            return lease.endpoint.base_url

    assert await asyncio.gather(use(0.05), use(0)) == ["http://live/v1", "http://live/v1"]
    assert loop.time() - started < 1, "the second request waited for the live slot, not the 30 s rest"
