"""All HTTP policy in one place: connection reuse, timeouts, retries, backoff, Retry-After.

Retried: 408, 409, 429, 5xx, timeouts, connection resets and bodies that are not the JSON we
expect. Never retried: other 4xx (400, 401, 403, 404, 422...), which become
``ModelRequestRejected`` naming the endpoint, the model and the server's own message.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from dialforge.llm.endpoint_pool import Endpoint, EndpointPool
from dialforge.llm.errors import ModelRequestRejected, ModelUnavailable
from dialforge.llm.server_reply import BadResponse

T = TypeVar("T")

_RETRYABLE_4XX = {408: "timeout", 409: "conflict", 429: "rate_limited"}


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between attempts; how many attempts is each model's own setting."""

    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Server's ``Retry-After`` when given (capped, plus up to 10% so a crowd does not return at once),
        else exponential backoff with jitter."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s) * rng.uniform(1.0, 1.1)
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2.0**attempt)
        return backoff * rng.uniform(0.5, 1.0)


def retry_after_seconds(headers: CIMultiDictProxy[str]) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, or ``Retry-After`` as seconds or a date."""
    if (ms := headers.get("retry-after-ms")) is not None and (seconds := _finite(ms)) is not None:
        return max(seconds / 1000, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := _finite(value)) is not None:
        return max(seconds, 0.0)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _server_message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:300].decode("utf-8", "replace").strip() or "(empty body)"
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)[:500]
    return str(error)[:500]


@dataclass
class _Attempt:
    """Why one attempt failed, for counting and for the final error message."""

    kind: str
    description: str
    retry_after: float | None = None
    endpoint_at_fault: bool = True


class HttpTransport:
    """One aiohttp session shared by every model and endpoint of a run."""

    def __init__(self, policy: RetryPolicy | None = None, *, seed: int | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._rng = random.Random(seed)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Per-endpoint limits are enforced by EndpointPool; the connector must not add its own.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=75)
            self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post_json(
        self,
        pool: EndpointPool,
        body: bytes,
        *,
        model: str,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,
        parse: Callable[[Any], T],
        on_retry: Callable[[str], None],
        max_retries: int,
    ) -> T:
        """POST ``body`` to a pooled endpoint's chat-completions URL and ``parse`` the JSON reply.

        ``parse`` raises ``BadResponse`` for bodies it cannot use; that is retried too.
        """
        session = self._get_session()
        failure = _Attempt("none", "")
        for attempt in range(max_retries + 1):
            async with pool.lease() as lease:
                result = await self._attempt(session, lease.endpoint, body, headers, timeout, parse, model)
                if not isinstance(result, _Attempt):
                    pool.record_success(lease)
                    return result
                failure = result
                if failure.endpoint_at_fault:
                    retry_after = (
                        None if failure.retry_after is None else min(failure.retry_after, self.policy.max_retry_after_s)
                    )
                    pool.record_failure(lease, retry_after=retry_after)
            if attempt < max_retries:
                on_retry(failure.kind)
                await asyncio.sleep(self.policy.delay(attempt, failure.retry_after, self._rng))
        raise ModelUnavailable(
            f"model {model!r} at {', '.join(pool.base_urls)} failed {max_retries + 1} attempts; "
            f"last: {failure.description}",
            kind=failure.kind,
        )

    async def get_json(self, url: str, headers: dict[str, str], timeout: aiohttp.ClientTimeout) -> Any:
        """One GET, not retried (a probe asks once): the JSON body, ``ModelRequestRejected`` for a 4xx and
        ``ModelUnavailable`` for anything else that is not a JSON 200."""
        try:
            async with self._get_session().get(url, headers=headers, timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise ModelUnavailable(f"no reply from {url} within {timeout.total} s", kind="timeout") from None
        except aiohttp.ClientError as exc:
            raise ModelUnavailable(f"cannot talk to {url}: {exc or type(exc).__name__}", kind="connection") from None
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            message = _server_message(raw)
            raise ModelRequestRejected(f"GET {url}: HTTP {status}: {message}", status=status, reason=message)
        if status != 200:
            raise ModelUnavailable(f"GET {url}: HTTP {status}: {_server_message(raw)}", kind="server_error")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ModelUnavailable(f"GET {url} sent a body that is not JSON", kind="malformed_body") from None

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        body: bytes,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,
        parse: Callable[[Any], T],
        model: str,
    ) -> T | _Attempt:
        try:
            async with session.post(endpoint.completions_url, data=body, headers=headers, timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = retry_after_seconds(resp.headers) if status >= 400 else None
        except TimeoutError:
            return _Attempt("timeout", f"no reply from {endpoint.base_url} within {timeout.total} s")
        except aiohttp.ClientPayloadError as exc:
            return _Attempt("connection", f"{endpoint.base_url} broke off its reply: {exc}")
        except aiohttp.ClientConnectionError as exc:
            return _Attempt("connection", f"cannot talk to {endpoint.base_url}: {exc or type(exc).__name__}")
        except aiohttp.ClientError as exc:
            return _Attempt(
                "protocol", f"{endpoint.base_url} did not speak HTTP as expected: {exc or type(exc).__name__}"
            )
        if status == 200:
            try:
                return parse(orjson.loads(raw))
            except (orjson.JSONDecodeError, BadResponse) as exc:
                # The server is up and answering; a broken body says nothing about its health.
                return _Attempt("malformed_body", f"{endpoint.base_url} sent an unusable body: {exc}", None, False)
        message = _server_message(raw)
        if status >= 500 or status in _RETRYABLE_4XX:
            kind = _RETRYABLE_4XX.get(status, "server_error")
            return _Attempt(kind, f"HTTP {status} from {endpoint.base_url}: {message}", retry_after)
        raise ModelRequestRejected(
            f"endpoint {endpoint.base_url} rejected model {model!r}: HTTP {status}: {message}",
            status=status,
            endpoint=endpoint.base_url,
            model=model,
            reason=message,
        )
