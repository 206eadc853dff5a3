"""Resuming a run with many dialogues in flight: the seconds from opening the store to the first step.

    python benchmarks/resume.py [--dialogues 5000]

The run is a dry run over Chinook (user+exec: user simulator, scaffolded SQL tools run for real): every dialogue
is started and taken a few steps (2 to 6: user messages, agent replies, tool calls and their results), saved after
each as a run saves it, and left in flight. Then a fresh process resumes it the way ``dialforge run`` does
(store, config check, cached preparation, engine, the states in flight) and stops when the first dialogue is
ready for its next step. Printed, each measured in a fresh process: that time, the time of reading the states back
alone, the CPU time of each (the wall time depends on what else runs) and the JSON-schema checks (``check_schema``)
each made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from dialforge.config import DialforgeConfig
from dialforge.llm.role_models import RoleModels
from dialforge.pipeline.preparation import Preparation
from dialforge.runner.progress import Reporter
from dialforge.runner.run import RunOptions, build_engine, run
from dialforge.runner.store import RunStore
from dialforge.runner.work import plan_dialogues

REPO = Path(__file__).resolve().parents[1]
CHINOOK = REPO / "tests" / "data" / "db" / "chinook.sqlite"
POLICY = (
    "Identify customers by the email address on their account before you look at or change anything of theirs. "
    "Before any change, say exactly what you will do and wait for the customer's yes. Never share another "
    "customer's details."
)
ASKS = [
    ("the albums of the artist AC/DC", ["search_artists", "get_albums_for_artist"]),
    ("the email address on your account changed to a new one", ["search_customers", "update_customer"]),
    ("who your support representative is", ["search_customers", "get_employee_for_customer"]),
    ("the albums whose title mentions 'Greatest'", ["search_albums"]),
    ("the artist of the album 'Let There Be Rock'", ["search_albums", "get_artist_for_album"]),
]
TASKS = [
    {
        "id": f"music-{index}",
        "description": f"You are a customer of the music store (customer{index}@example.com). You want {want}.",
        "difficulty": "easy",
        "tools": tools,
    }
    for index, (want, tools) in enumerate(ASKS * 2)
]


def config(folder: Path, dialogues: int) -> DialforgeConfig:
    database, tasks = folder / "chinook.sqlite", folder / "tasks.jsonl"
    if not database.exists():
        shutil.copyfile(CHINOOK, database)
        tasks.write_bytes(b"".join(orjson.dumps(task) + b"\n" for task in TASKS))
    domain = {"name": "music store", "database": str(database), "sql_tools": "scaffold", "tasks": str(tasks)}
    return DialforgeConfig.model_validate(
        {
            "mode": "user+exec",
            "domains": [domain | {"policy": POLICY}],
            "dialogue": {"per_domain": dialogues, "today": "2025-11-21T18:00:00"},
            "seed": 7,
        }
    )


async def build(folder: Path, dialogues: int) -> None:
    """Start every planned dialogue and take it 2 to 6 steps, saving after each; none is finished."""
    settings = config(folder, dialogues)
    store = RunStore(folder / "run")
    models = RoleModels.dry_run(seed=settings.seed)
    plans = await Preparation(settings, models["generator"], store).run()
    engine = build_engine(settings, models, plans)
    work = iter(plan_dialogues(plans, per_domain=dialogues, tasks_per_dialogue=(1, 2), run_seed=settings.seed))

    async def worker() -> None:
        for index, item in enumerate(work):
            state = engine.start(item.domain, item.tasks, dialogue_id=item.id, seed=item.seed)
            store.save(state)
            for _ in range(2 + index % 5):
                if state.next_actor in ("judge", "done"):
                    break
                state = await engine.step(state)
                store.save(state)

    await asyncio.gather(*(worker() for _ in range(64)))
    store.close()


class FirstStep(Exception):
    """Raised when the first resumed dialogue is ready for its next step: the measurement ends there."""


class StopAtFirstStep(Reporter):
    def started(self) -> None:
        raise FirstStep


def count_schema_checks() -> list[int]:
    """A counter of the JSON-schema checks (``check_schema``) made from now on in this process."""
    count = [0]
    check = Draft202012Validator.check_schema

    def counted(schema: Any, *args: Any) -> None:
        count[0] += 1
        check(schema, *args)

    Draft202012Validator.check_schema = counted  # type: ignore[assignment,method-assign]
    return count


def measure(folder: Path, dialogues: int, what: str) -> None:
    """In this fresh process: resume the run as ``dialforge run`` does until the first step is ready (``first``),
    or only read the states in flight back (``read``)."""
    settings = config(folder, dialogues)
    checks = count_schema_checks()
    wall, cpu = time.perf_counter(), time.process_time()

    def report(label: str) -> None:
        took = f"{time.perf_counter() - wall:6.2f} s ({time.process_time() - cpu:.2f} s CPU)"
        print(f"{label:<30} {took}  {checks[0]} schema checks")

    if what == "read":
        store = RunStore(folder / "run")
        states = store.unfinished_states()
        report(f"read the {len(states)} states back:")
        store.close()
        return
    try:
        asyncio.run(run(settings, folder / "run", RunOptions(dry_run=True), StopAtFirstStep()))
    except FirstStep:
        report("open the run -> first step:")
    else:
        raise SystemExit("the run finished without resuming a dialogue")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=5000)
    parser.add_argument("--folder", type=Path, help="keep the run here (built once, reused when present)")
    parser.add_argument("--measure", choices=["first", "read"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        measure(options.folder, options.dialogues, options.measure)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = options.folder or Path(tmp)
        if not (folder / "run" / "state.sqlite").exists():
            start = time.perf_counter()
            asyncio.run(build(folder, options.dialogues))
            print(f"built {options.dialogues} dialogues in flight in {time.perf_counter() - start:.0f} s", flush=True)
        print(f"{options.dialogues} dialogues in flight, {os.cpu_count()} cores", flush=True)
        for what in ("first", "read"):
            command = [sys.executable, __file__, "--measure", what, "--folder", str(folder)]
            subprocess.run([*command, "--dialogues", str(options.dialogues)], check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
