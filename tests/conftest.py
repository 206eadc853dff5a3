"""Shared fixtures: an in-process mock model server and the shared data folder.

``mock_server`` is a ready server with test-friendly settings (no latency, short Retry-After);
``start_mock_server(**settings)`` starts more, with any ``MockServerSettings`` field overridden.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from dialforge.environments.sql.environment import SQLDatabase
from dialforge.mock_server import MockServerSettings
from dialforge.mock_server import start_mock_server as serve_in_loop

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TEST_SERVER_DEFAULTS: dict[str, Any] = {"latency_ms": 0, "retry_after": 0.05}


class MockServerHandle:
    """A running mock server: its URLs, its settings, and helpers for its control endpoints."""

    def __init__(self, runner: web.AppRunner, base_url: str, settings: MockServerSettings) -> None:
        self.runner = runner
        self.settings = settings
        self.base_url = base_url
        """OpenAI base URL, ending in ``/v1``."""
        self.url = base_url.removesuffix("/v1")
        """Server root, for ``/health``, ``/stats`` and ``/control/...``."""
        self._session = aiohttp.ClientSession()

    async def queue_faults(self, *kinds: str) -> None:
        """The next ``len(kinds)`` chat requests get these faults, in order."""
        async with self._session.post(f"{self.url}/control/faults", json={"faults": list(kinds)}) as response:
            response.raise_for_status()

    async def stats(self) -> dict[str, Any]:
        async with self._session.get(f"{self.url}/stats") as response:
            response.raise_for_status()
            return await response.json()

    async def reset(self) -> None:
        """Clear the statistics and the fault queue."""
        async with self._session.post(f"{self.url}/control/reset") as response:
            response.raise_for_status()

    async def close(self) -> None:
        await self._session.close()
        await self.runner.cleanup()


StartMockServer = Callable[..., Awaitable[MockServerHandle]]


@pytest.fixture
async def start_mock_server() -> AsyncIterator[StartMockServer]:
    """Factory: ``await start_mock_server(fault_rate=1.0, faults=["empty"])``; all are stopped after the test."""
    handles: list[MockServerHandle] = []

    async def start(**settings: Any) -> MockServerHandle:
        merged = MockServerSettings(**{**TEST_SERVER_DEFAULTS, **settings})
        runner, base_url = await serve_in_loop(merged, "127.0.0.1", 0, shutdown_timeout=1.0)
        handles.append(MockServerHandle(runner, base_url, merged))
        return handles[-1]

    yield start
    for handle in handles:
        await handle.close()


@pytest.fixture
async def mock_server(start_mock_server: StartMockServer) -> MockServerHandle:
    """A mock server with the dry-run backend, no latency and no random faults."""
    return await start_mock_server()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository (databases, chat templates); skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (expected ../shared/data next to the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def chinook_path(shared_data: Path) -> Path:
    """The real Chinook sample database (read in place, never copied into the repository)."""
    return shared_data / "db" / "chinook.sqlite"


@pytest.fixture(scope="session")
def chinook(chinook_path: Path) -> SQLDatabase:
    return SQLDatabase.open(chinook_path)
