"""MCP environments: server start per dialogue, calls through the client, memory per live server.

    python benchmarks/mcp_env.py [--servers 16] [--calls 500] [--pipeline 32,256]

Servers: the SDK notes server of the tests (tests/data/mcp/notes_server.py) and, when installed, the reference
``mcp-server-git`` on a small repository. For each: the seconds from a dialogue's first call to its answer
(copy of the state, server start, initialize, the call; median and max over ``--servers`` dialogues started
together, ``max_servers`` equal to that count), calls per second and dialforge's CPU per call on one live server
(``--calls`` sequential reads), and the resident memory of each live server process (median).

Then whole runs (``--pipeline``: the concurrencies to try): user+exec dialogues against ``dialforge mock-server``
(real HTTP client, real store, benchmarks/throughput.py's harness), one notes-server process per dialogue, at most
32 alive at once (``max_servers``), one dialogue per slot: dialogues per second and dialforge's CPU per model call
(the servers' own CPU is theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dialforge.config import DialforgeConfig
from dialforge.environments.mcp import McpEnvironment, McpEnvironments, McpSettings
from dialforge.model.tasks import Task

sys.path.insert(0, str(Path(__file__).parent))
from throughput import CheckpointClock, start_server
from throughput import measure as measure_pipeline

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "mcp"
GIT_SETUP = [
    ["git", "init", "-q", "-b", "main"],
    ["git", "add", "-A"],
    ["git", "-c", "user.name=Shop", "-c", "user.email=shop@example.com", "commit", "-q", "-m", "Initial prices"],
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(
    name: str, settings: McpSettings, read: tuple[str, dict[str, object]], servers: int, calls: int
) -> None:
    with tempfile.TemporaryDirectory() as work:
        factory = await McpEnvironments.open(settings, Path(work))
        environments = [factory.new(seed=index, clock="") for index in range(servers)]

        async def first_call(environment: McpEnvironment) -> float:
            started = time.perf_counter()
            result = await environment.call(*read)
            assert result.ok, result.error
            return time.perf_counter() - started

        starts = await asyncio.gather(*(first_call(environment) for environment in environments))
        pids = [int(path.read_text()) for path in (Path(work) / "servers").glob("*.pid")]
        memory = [rss_mb(pid) for pid in pids]

        one = environments[0]
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            await one.call(*read)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await factory.close()
    print(
        f"| {name} | {statistics.median(starts):.2f} s / {max(starts):.2f} s | {calls / wall:,.0f} | "
        f"{cpu / calls * 1000:.2f} ms | {statistics.median(memory):.0f} MB |"
    )


def notes_config(notes: Path) -> Callable[[Path, str, int, int], DialforgeConfig]:
    def make(workdir: Path, base_url: str, concurrency: int, dialogues: int) -> DialforgeConfig:
        tasks = [
            Task(id="a", description="You want a note 'dentist' saying 'Tuesday 9:30'.", tools=["add_note"]),
            Task(id="b", description="You want to read your groceries note.", tools=["list_notes", "read_note"]),
        ]
        (workdir / "tasks.jsonl").write_text("".join(task.model_dump_json() + "\n" for task in tasks))
        server = {"command": [sys.executable, str(DATA / "notes_server.py"), "{state}"], "state": str(notes)}
        return DialforgeConfig.model_validate(
            {
                "mode": "user+exec",
                "domains": [
                    {
                        "name": "notes",
                        "mcp": server | {"max_servers": 32, "tools": {"exclude": ["wait", "crash"]}},
                        "tasks": str(workdir / "tasks.jsonl"),
                        "policy": "Confirm before saving anything.",
                    }
                ],
                "generation": {"tasks_per_dialogue": [1, 2]},
                "dialogue": {"per_domain": dialogues, "max_turns": 24},
                "models": {
                    "default": {"model": "mock-model", "base_urls": base_url, "max_concurrency": concurrency * 2}
                },
            }
        )

    return make


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=16)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--pipeline", default="32,256", help="concurrencies of whole runs; empty: none")
    parser.add_argument("--latency-ms", type=int, default=200)
    args = parser.parse_args()
    print(f"{args.servers} dialogues starting together; {args.calls} sequential calls on one server\n")
    print("| server | first call (median / max) | calls/s | dialforge CPU per call | RSS per server |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        notes = Path(folder) / "notes"
        notes.mkdir()
        (notes / "groceries.txt").write_text("milk, eggs")
        settings = McpSettings(
            command=[sys.executable, str(DATA / "notes_server.py"), "{state}"],
            state=notes,
            max_servers=args.servers,
        )
        await measure("SDK notes server (Python)", settings, ("list_notes", {}), args.servers, args.calls)
    if shutil.which("mcp-server-git"):
        settings = McpSettings(
            command=["mcp-server-git", "--repository", "{state}"],
            state=DATA / "shop_repo",
            setup=GIT_SETUP,
            bind={"repo_path": "{state}"},
            max_servers=args.servers,
        )
        await measure("mcp-server-git", settings, ("git_status", {}), args.servers, args.calls)
    else:
        print("(mcp-server-git not installed: pip install mcp-server-git)")
    concurrencies = [int(part) for part in args.pipeline.split(",") if part]
    if not concurrencies:
        return
    server, base_url = start_server(args.latency_ms)
    try:
        with tempfile.TemporaryDirectory() as folder:
            notes = Path(folder) / "notes"
            notes.mkdir()
            (notes / "groceries.txt").write_text("milk, eggs")
            for concurrency in concurrencies:
                row = await measure_pipeline(
                    base_url, concurrency, 1, CheckpointClock(), make_config=notes_config(notes)
                )
                print(
                    f"pipeline at concurrency {concurrency} (32 servers at most): {row['dialogues']:.0f} dialogues "
                    f"({row['failed']:.0f} failed), {row['dialogues/s']:.2f} dialogues/s, {row['calls/s']:.0f} "
                    f"model calls/s, {row['cpu ms/call']:.2f} dialforge CPU ms per model call"
                )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
