"""Whole-pipeline throughput: user+exec dialogues on Chinook against ``dialforge mock-server``.

    python benchmarks/throughput.py --concurrency 100,1000 --dialogues-per-slot 2 --latency-ms 500

The mock server runs in a separate process with a fixed latency; every role (user simulator, agent,
judge) calls it over HTTP through the real client, tools run on real SQLite forks, and every state is
checkpointed to a real store. Ideal model calls/s is concurrency / latency. Reported: dialogues/s,
model calls/s and % of ideal, this process's CPU ms per model call, the share of that CPU spent
checkpointing, peak RSS, and the prompt prefix reuse the mock server measured.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from dialforge.config import DialforgeConfig
from dialforge.environments.sql.scaffold import scaffold_tools, write_tools_json
from dialforge.environments.sql.schema import introspect
from dialforge.environments.sql.source import open_readonly
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.role_models import RoleModels
from dialforge.model import Task
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.preparation import Preparation
from dialforge.runner import store as store_module
from dialforge.runner.progress import LogReporter
from dialforge.runner.run import build_engine, generate
from dialforge.runner.store import RunStore
from dialforge.runner.work import plan_dialogues

REPO = Path(__file__).resolve().parents[1]
CHINOOK = REPO.parent / "shared" / "data" / "db" / "chinook.sqlite"


def start_server(latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "dialforge.cli.main", "mock-server", "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    match = re.search(r"(http://\S+/v1)", server.stdout.readline())
    if not match:
        server.kill()
        raise SystemExit("mock-server did not start")
    return server, match.group(1)


def config_for(workdir: Path, base_url: str, concurrency: int, dialogues: int) -> DialforgeConfig:
    connection = open_readonly(CHINOOK)
    write_tools_json(scaffold_tools(introspect(connection))[:24], workdir / "tools.json")
    connection.close()
    tasks = [
        Task(id="a", description="You are customer 2: you want invoice 1 and its lines.", tools=["get_invoice"]),
        Task(id="b", description="You want a genre called Polka added and then listed.", tools=["create_genre"]),
    ]
    (workdir / "tasks.jsonl").write_text("".join(task.model_dump_json() + "\n" for task in tasks))
    return DialforgeConfig.model_validate(
        {
            "mode": "user+exec",
            "domains": [
                {
                    "name": "music store",
                    "database": str(CHINOOK),
                    "tools": str(workdir / "tools.json"),
                    "tasks": str(workdir / "tasks.jsonl"),
                    "policy": "Confirm before changing anything.",
                }
            ],
            "generation": {"tasks_per_dialogue": [1, 2]},
            "dialogue": {"per_domain": dialogues, "max_turns": 24},
            "models": {"default": {"model": "mock-model", "base_urls": base_url, "max_concurrency": concurrency * 2}},
        }
    )


class SteadyStateReporter(LogReporter):
    """Notes the model calls made until the last dialogue starts: until then every slot is busy, so
    that rate is the steady state, free of the ramp-down while the longest dialogues finish."""

    def __init__(self, expected: int) -> None:
        super().__init__(every_s=30)
        self.expected = expected
        self.started_count = 0
        self.steady: tuple[float, int] | None = None
        self.t0 = time.perf_counter()

    def started(self) -> None:
        super().started()
        self.started_count += 1
        if self.started_count == self.expected and self.ledger is not None:
            calls = sum(row["usage"]["calls"] for row in self.ledger.snapshot())
            self.steady = (time.perf_counter() - self.t0, calls)


class CheckpointClock:
    """Times every store write, to report checkpointing's share of the CPU."""

    def __init__(self) -> None:
        self.seconds = 0.0
        original_save, original_flush = RunStore.save, RunStore.flush

        def save(store: RunStore, *args: object, **kwargs: object) -> None:
            started = time.process_time()
            original_save(store, *args, **kwargs)  # type: ignore[arg-type]
            self.seconds += time.process_time() - started

        def flush(store: RunStore) -> None:
            started = time.process_time()
            original_flush(store)
            self.seconds += time.process_time() - started

        store_module.RunStore.save = save  # type: ignore[method-assign]
        store_module.RunStore.flush = flush  # type: ignore[method-assign]


async def measure(
    base_url: str,
    concurrency: int,
    per_slot: int,
    clock: CheckpointClock,
    make_config: Callable[[Path, str, int, int], DialforgeConfig] = config_for,
) -> dict[str, float]:
    """One whole run of ``concurrency * per_slot`` dialogues on the config ``make_config`` writes (Chinook's by
    default)."""
    with tempfile.TemporaryDirectory() as workdir:
        config = make_config(Path(workdir), base_url, concurrency, concurrency * per_slot)
        ledger = UsageLedger()
        async with RoleModels.from_settings(config.models, ledger=ledger, environ={}) as models:
            plans = await Preparation(config, models["generator"], ArtifactStore(Path(workdir) / "prep")).run()
            engine = build_engine(config, models, plans)
            work = plan_dialogues(plans, per_domain=config.dialogue.per_domain, tasks_per_dialogue=(1, 2), run_seed=0)
            store = RunStore(Path(workdir) / "run")
            clock.seconds = 0.0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            reporter = SteadyStateReporter(len(work))
            summary = await generate(engine, store, work, None, concurrency, reporter, ledger)
            store.close()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        calls = sum(row["usage"]["calls"] for row in ledger.snapshot())
        waited = sum(row["usage"]["seconds"] for row in ledger.snapshot())
        retries = sum(sum(row["retries"].values()) for row in ledger.snapshot())
    return {
        "latency ms": 1000 * waited / max(calls, 1),
        "retries": retries,
        "steady calls/s": reporter.steady[1] / reporter.steady[0] if reporter.steady else 0.0,
        "dialogues": summary.finished,
        "dialogues/s": summary.finished / wall,
        "calls/s": calls / wall,
        "cpu ms/call": 1000 * cpu / max(calls, 1),
        "checkpoint share": clock.seconds / cpu if cpu else 0.0,
        "failed": summary.failed,
    }


async def prefix_reuse(base_url: str) -> float | None:
    async with aiohttp.ClientSession() as session, session.get(base_url.removesuffix("/v1") + "/stats") as response:
        stats = await response.json()
    return stats["prefix_reuse"]["chars_weighted_ratio"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="100,1000")
    parser.add_argument("--dialogues-per-slot", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=500)
    args = parser.parse_args()
    server, base_url = start_server(args.latency_ms)
    clock = CheckpointClock()
    try:
        print(f"mock server latency {args.latency_ms} ms; ideal model calls/s = concurrency / latency")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            row = asyncio.run(measure(base_url, concurrency, args.dialogues_per_slot, clock))
            ideal = concurrency / (args.latency_ms / 1000)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"concurrency {concurrency:>5}: {row['dialogues']:.0f} dialogues ({row['failed']:.0f} failed),"
                f" {row['dialogues/s']:.1f} dialogues/s, {row['calls/s']:.0f} calls/s"
                f" ({100 * row['calls/s'] / ideal:.0f}% of ideal {ideal:.0f}; while every slot was busy"
                f" {row['steady calls/s']:.0f}, {100 * row['steady calls/s'] / ideal:.0f}%),"
                f" {row['cpu ms/call']:.2f} CPU ms/call,"
                f" checkpointing {100 * row['checkpoint share']:.0f}% of CPU, peak RSS {rss:.0f} MB,"
                f" mean call latency {row['latency ms']:.0f} ms, {row['retries']:.0f} retries"
            )
        reuse = asyncio.run(prefix_reuse(base_url))
        print(f"prompt prefix reuse (mock server, chars-weighted): {reuse:.1%}" if reuse is not None else "")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
