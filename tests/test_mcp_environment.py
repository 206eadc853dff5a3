"""MCP servers as environments: a real server written with the SDK (tests/data/mcp/notes_server.py), over stdio
and streamable HTTP, isolated per dialogue, rebuilt after a restart, and never left running."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dialforge.environments.mcp import McpEnvironments, McpError, McpSettings
from dialforge.model.tasks import SQLCheck

pytestmark = pytest.mark.slow  # each test starts real server processes (seconds each)

SERVER = Path(__file__).parent / "data" / "mcp" / "notes_server.py"


def notes_settings(state: Path, **overrides: Any) -> McpSettings:
    return McpSettings.model_validate(
        {"command": [sys.executable, str(SERVER), "{state}"], "state": state, "timeout_s": 10} | overrides
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "groceries.txt").write_text("milk, eggs", encoding="utf-8")
    return folder


@pytest.fixture
async def notes(state: Path, tmp_path: Path) -> AsyncIterator[McpEnvironments]:
    factory = await McpEnvironments.open(notes_settings(state), tmp_path / "work")
    yield factory
    await factory.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def server_pids(factory: McpEnvironments) -> list[int]:
    return [int(path.read_text()) for path in (factory.workdir / "servers").glob("*.pid") if path.read_text().strip()]


async def test_tools_come_from_the_server_and_can_be_filtered(state: Path, tmp_path: Path) -> None:
    factory = await McpEnvironments.open(notes_settings(state), tmp_path / "all")
    names = {tool.name for tool in factory.tools()}
    await factory.close()
    assert {"add_note", "list_notes", "read_note"} <= names
    add = next(tool for tool in factory.tools() if tool.name == "add_note")
    assert set(add.parameters["required"]) == {"title", "text"} and add.description

    chosen = notes_settings(state, tools={"include": ["list_notes", "add_note"], "exclude": ["add_note"]})
    filtered = await McpEnvironments.open(chosen, tmp_path / "some")
    await filtered.close()
    assert [tool.name for tool in filtered.tools()] == ["list_notes"]


async def test_each_dialogue_writes_its_own_copy_of_the_state(notes: McpEnvironments, state: Path) -> None:
    first, second = notes.new(seed=1, clock=""), notes.new(seed=2, clock="")
    untouched = first.digest()

    saved = await first.call("add_note", {"title": "todo", "text": "call the bank"})
    assert saved.ok and saved.content == {"saved": "todo"}
    assert (await first.call("list_notes", {})).content == {"result": ["groceries", "todo"]}
    assert (await second.call("list_notes", {})).content == {"result": ["groceries"]}
    assert sorted(path.name for path in state.iterdir()) == ["groceries.txt"], "the source state is never written"

    assert first.digest() != untouched == second.digest()
    diff = first.diff(second)
    assert diff.tables["files"].inserted == [{"path": "todo.txt", "bytes": 13, "text": "call the bank"}]
    assert not diff.tables["files"].updated and not diff.tables["files"].deleted
    verification = first.verify([SQLCheck(description="a SQL check", sql="SELECT 1")])
    assert verification.final_digest == first.digest() and verification.initial_digest == untouched
    assert verification.diff == diff and not verification.passed
    await first.aclose()
    await second.aclose()


async def test_tool_errors_reach_the_agent_as_errors(notes: McpEnvironments) -> None:
    env = notes.new(seed=1, clock="")
    refused = await env.call("add_note", {"title": "groceries", "text": "bread"})
    assert refused.error is not None and refused.error.kind == "execution_error"
    assert "exists already" in refused.error.message
    mistyped = await env.call("add_note", {"title": 3, "text": "x"})
    assert mistyped.error is not None and mistyped.error.kind == "invalid_arguments"
    unknown = await env.call("delete_everything", {})
    assert unknown.error is not None and unknown.error.kind == "unknown_tool"
    await env.aclose()


async def test_a_hung_or_crashed_server_is_a_tool_error_and_the_next_call_gets_a_new_one(
    state: Path, tmp_path: Path
) -> None:
    factory = await McpEnvironments.open(notes_settings(state, timeout_s=1.5), tmp_path / "work")
    env = factory.new(seed=1, clock="")
    assert (await env.call("add_note", {"title": "kept", "text": "on disk"})).ok

    hung = await env.call("wait", {"seconds": 30})
    assert hung.error is not None and hung.error.kind == "timeout"
    crashed = await env.call("crash", {})
    assert crashed.error is not None and crashed.error.kind == "unavailable"

    listed = await env.call("list_notes", {})
    assert listed.content == {"result": ["groceries", "kept"]}, "a new server on the same state directory"
    assert env.snapshot()["errors"] == {"timeout": 1, "crash": 1}
    await factory.close()
    assert server_pids(factory) == []


async def test_a_restored_dialogue_replays_its_calls_on_a_fresh_copy(notes: McpEnvironments) -> None:
    env = notes.new(seed=1, clock="")
    await env.call("add_note", {"title": "todo", "text": "call the bank"})
    stored = env.snapshot()
    await env.aclose()

    calls = [("add_note", {"title": "todo", "text": "call the bank"}), ("list_notes", {})]
    restored = await notes.restore(stored, seed=1, calls=calls)
    assert restored.digest() == stored["digest"] and "replay" not in restored.snapshot()
    assert (await restored.call("read_note", {"title": "todo"})).content == {"result": "call the bank"}

    differs = await notes.restore(stored, seed=1, calls=[("add_note", {"title": "other", "text": "x"})])
    assert "replay" in differs.snapshot(), "a state that did not come back is reported"
    await restored.aclose()
    await differs.aclose()


async def test_servers_are_bounded_and_end_with_their_dialogue(state: Path, tmp_path: Path) -> None:
    factory = await McpEnvironments.open(notes_settings(state, max_servers=1), tmp_path / "work")
    first, second = factory.new(seed=1, clock=""), factory.new(seed=2, clock="")
    await first.call("list_notes", {})
    [pid] = server_pids(factory)
    assert alive(pid)

    waiting = asyncio.create_task(second.call("list_notes", {}))
    await asyncio.sleep(0.5)
    assert not waiting.done(), "the only slot is taken"
    first.close()
    assert (await asyncio.wait_for(waiting, 60)).ok
    assert not alive(pid)

    await factory.close()
    assert server_pids(factory) == [] and not any((factory.workdir / "states").iterdir())


@pytest.fixture
def orphan(tmp_path: Path) -> Iterator[int]:
    """A process in a group of its own, as a server of a run killed with -9 would be."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    servers = tmp_path / "work" / "servers"
    servers.mkdir(parents=True)
    (servers / "left-behind.pid").write_text(str(process.pid))
    yield process.pid
    process.kill()
    process.wait()


async def test_servers_left_by_a_killed_run_are_ended_at_the_next_start(
    orphan: int, state: Path, tmp_path: Path
) -> None:
    factory = await McpEnvironments.open(notes_settings(state), tmp_path / "work")
    await factory.close()
    deadline = time.monotonic() + 10
    while alive(orphan) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not alive(orphan)


async def test_a_server_that_cannot_start_is_a_clear_error(state: Path, tmp_path: Path) -> None:
    missing = McpSettings(command=["/nonexistent/mcp-server"], state=state)
    with pytest.raises(McpError, match="failed to start"):
        await McpEnvironments.open(missing, tmp_path / "work")
    with pytest.raises(ValueError, match="either command"):
        McpSettings()
    with pytest.raises(ValueError, match="isolation: shared"):
        McpSettings(url="http://127.0.0.1:1/mcp")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def http_server(state: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(state), "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(10)


async def test_a_shared_server_over_streamable_http(http_server: str, tmp_path: Path) -> None:
    factory = await McpEnvironments.open(McpSettings(url=http_server, isolation="shared"), tmp_path / "work")
    first, second = factory.new(seed=1, clock=""), factory.new(seed=2, clock="")
    assert (await first.call("add_note", {"title": "shared", "text": "seen by all"})).ok
    assert (await second.call("list_notes", {})).content == {"result": ["groceries", "shared"]}
    assert first.snapshot() == {"kind": "mcp", "digest": second.digest()}
    await factory.close()


GIT_SETUP = [
    ["git", "init", "-q", "-b", "main"],
    ["git", "add", "-A"],
    ["git", "-c", "user.name=Shop", "-c", "user.email=shop@example.com", "commit", "-q", "-m", "Initial prices"],
    ["sh", "-c", "printf 'item,price\\ntea,3.40\\ncoffee,4.10\\n' > prices.csv"],
]
"""A repository with one commit and an uncommitted price change, made from the files of shop_repo/."""


@pytest.mark.skipif(shutil.which("mcp-server-git") is None, reason="needs mcp-server-git: pip install mcp-server-git")
async def test_the_reference_git_server_works_on_a_repository_per_dialogue(tmp_path: Path) -> None:
    settings = McpSettings(
        command=["mcp-server-git", "--repository", "{state}"],
        state=Path(__file__).parent / "data" / "mcp" / "shop_repo",
        setup=GIT_SETUP,
        bind={"repo_path": "{state}"},
        env={
            "GIT_AUTHOR_NAME": "Agent",
            "GIT_AUTHOR_EMAIL": "agent@example.com",
            "GIT_COMMITTER_NAME": "Agent",
            "GIT_COMMITTER_EMAIL": "agent@example.com",
        },
    )
    factory = await McpEnvironments.open(settings, tmp_path / "work")
    commit = next(tool for tool in factory.tools() if tool.name == "git_commit")
    assert "repo_path" not in commit.parameters["properties"], "bound: the agent never chooses the path"

    first, second = factory.new(seed=1, clock=""), factory.new(seed=2, clock="")
    assert (await first.call("git_create_branch", {"branch_name": "tea-price"})).ok
    assert (await first.call("git_checkout", {"branch_name": "tea-price"})).ok
    assert (await first.call("git_add", {"files": ["prices.csv"]})).ok
    assert (await first.call("git_commit", {"message": "Raise the price of tea"})).ok
    log = await first.call("git_log", {"max_count": 5})
    assert "Raise the price of tea" in str(log.content)

    other = await second.call("git_log", {"max_count": 5})
    assert "Raise the price of tea" not in str(other.content), "each dialogue has its own repository"
    assert "prices.csv" in str((await second.call("git_status", {})).content)
    changed = {row["path"] for row in first.diff(second).tables["files"].inserted}
    assert "refs/heads/tea-price" in {path.removeprefix(".git/") for path in changed}
    await factory.close()
    assert server_pids(factory) == []


EXAMPLE = Path(__file__).parents[1] / "examples" / "bakery_site" / "bakery_site.yaml"


def servers_running(run_dir: Path) -> list[int]:
    """Processes whose command line names a state directory of this run."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(run_dir) in command and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(shutil.which("mcp-server-git") is None, reason="needs mcp-server-git: pip install mcp-server-git")
def test_the_example_runs_survives_kill_9_and_leaves_no_server_behind(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "dialforge.cli.main", "run", str(EXAMPLE), "--dry-run", "--out", str(run_dir)]
    first = subprocess.Popen([*command, "--concurrency", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers = run_dir / "mcp" / "bakery-website" / "servers"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (servers.is_dir() and any(servers.glob("*.pid"))):
        time.sleep(0.05)
    first.kill()  # SIGKILL: nothing of dialforge's own clean-up runs
    first.wait()

    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    records = [orjson.loads(line) for line in (run_dir / "dialogues.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(record["env"]["kind"] == "mcp" for record in records)
    checks = [check for record in records for check in record["judgment"]["verification"]["checks"]]
    assert checks and all(check["command"] for check in checks)
    assert servers_running(run_dir) == [] and not any(servers.iterdir())
    assert not any((run_dir / "mcp" / "bakery-website" / "states").iterdir())


@pytest.mark.skipif(
    shutil.which("mcp-server-time") is None, reason="needs mcp-server-time: pip install mcp-server-time"
)
async def test_the_reference_time_server_is_shared_by_every_dialogue(tmp_path: Path) -> None:
    settings = McpSettings(command=["mcp-server-time", "--local-timezone", "Europe/London"], isolation="shared")
    factory = await McpEnvironments.open(settings, tmp_path / "work")
    first, second = factory.new(seed=1, clock=""), factory.new(seed=2, clock="")
    converted = await first.call(
        "convert_time", {"source_timezone": "Europe/London", "time": "09:30", "target_timezone": "Asia/Tokyo"}
    )
    assert converted.ok and "Asia/Tokyo" in str(converted.content)
    assert (await second.call("get_current_time", {"timezone": "Europe/Paris"})).ok
    assert first.digest() == second.digest(), "a shared server has no per-dialogue state"
    await factory.close()
    assert server_pids(factory) == []
