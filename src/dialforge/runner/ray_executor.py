"""``dialforge run --executor ray``: the dialogues of a run sharded across Ray workers.

The driver does what ``run`` does up to the dialogues: it checks the config against ``RUN_DIR``, runs
the preparation stages once (their artifacts go to ``RUN_DIR/state.sqlite`` and ``RUN_DIR/artifacts``
as usual) and plans the dialogues. Each dialogue belongs to one of ``workers`` shards, by a stable hash
of its id; each shard is one Ray task that runs the same async scheduler (``generate``) against the
same model endpoints, with its own checkpoint store ``RUN_DIR/shards/<k>/state.sqlite``. When every
shard is done, the driver merges the finished records of all stores into ``RUN_DIR/dialogues.jsonl``,
once each, in id order.

What a worker gets is plain data, never the driver's store: the config, and per domain the JSON of
what preparation produced (domain, tools, SQL tools, policy, tasks, follow-ups) plus the absolute path
of its database. The worker rebuilds the engine from that and re-plans the dialogues (planning is
deterministic), so no preparation stage runs twice and no model call is repeated, whichever node
the worker lands on.

Ray does the cluster work: placement, scheduling, and retrying a shard whose worker died
(``max_retries``); a retried shard resumes from its own store, like a resumed local run. Running the
command again resumes the same way: the driver leaves out every dialogue finished in any store and
launches shards only for the rest. ``--limit`` counts across all shards.

On a cluster, ``RUN_DIR`` and the domains' database files must be on storage every node sees at the
same path (a shared file system), ``dialforge`` must be installed on the nodes, and API keys must be
in the nodes' environment (``DIALFORGE_*`` overrides are passed along; secrets are not). Without an
address, a local Ray instance with ``workers`` CPUs is started and stopped again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from dialforge.config import DialforgeConfig
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironments
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm.accounting import UsageLedger, merge_snapshots
from dialforge.model.dialogue import DialogueState
from dialforge.model.domain import Domain, domain_slug
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec
from dialforge.pipeline.artifacts import store_error, write_whole
from dialforge.pipeline.preparation import DomainPlan, Preparation, mcp_environments, python_environments
from dialforge.runner.progress import Reporter
from dialforge.runner.run import (
    RunOptions,
    RunSummary,
    _check_config,
    _concurrency,
    build_engine,
    generate,
    open_models,
)
from dialforge.runner.store import DIALOGUES_FILE, RunStore
from dialforge.runner.usage_file import UsageFile
from dialforge.runner.work import plan_dialogues

INSTALL_HINT = "pip install 'dialforge[ray]'"
MAX_RETRIES = 3
"""How often Ray restarts a shard whose worker process died (a crash, a lost node, an OOM kill)."""
POLL_S = 0.5
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
KILL_AFTER_ENV = "DIALFORGE_RAY_KILL_AFTER"
"""Fault injection for tests: ``<n>:<marker file>``; the first shard worker to finish its n-th dialogue
while the marker file does not exist creates it and kills its own process with SIGKILL."""

_TOOLS = TypeAdapter(list[ToolSpec])
_SQL_TOOLS = TypeAdapter(list[SQLTool])
_TASKS = TypeAdapter(list[Task])


class RayUnavailable(Exception):
    """Ray is not installed; the message says how to install it."""


class RayExecutorError(Exception):
    """Ray itself failed (a shard's worker died more often than Ray retries, a dead actor or node, no cluster at the
    address): said in one line; the stores keep what was done, and the same command resumes."""


def shard_of(dialogue_id: str, shards: int) -> int:
    """The shard a dialogue belongs to: stable across runs, processes and machines."""
    digest = hashlib.blake2b(dialogue_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_dir(run_dir: Path, shard: int) -> Path:
    return run_dir / "shards" / str(shard)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"the Ray executor needs Ray: {INSTALL_HINT}") from None
    return ray


async def run_on_ray(
    config: DialforgeConfig,
    run_dir: Path,
    options: RunOptions,
    reporter: Reporter,
    *,
    address: str | None,
    workers: int,
) -> RunSummary:
    """Prepare once, generate the dialogues in ``workers`` Ray tasks, merge their stores' records."""
    ray = _import_ray()
    if workers < 1:
        raise ValueError(f"the Ray executor needs at least one worker, not {workers}")
    run_dir = run_dir.resolve()
    store = RunStore(run_dir)
    ledger = UsageLedger(config.prices)
    fleet = _FleetLedger(ledger)
    try:
        for note in store.notes:
            reporter.stage(note)
        _check_config(store, config, options)
        store.usage = UsageFile(run_dir, fleet)
        async with open_models(config, dry_run=options.dry_run, ledger=ledger) as models:
            reporter.stage("preparing tools and tasks")
            plans = await Preparation(config, models["generator"], store, on_stage=reporter.preparing).run()
        work = plan_dialogues(
            plans,
            per_domain=config.dialogue.per_domain,
            tasks_per_dialogue=config.generation.tasks_per_dialogue,
            run_seed=config.seed,
        )
        before = _finished_records(run_dir, store)
        failed = {key for key, record in before.items() if orjson.loads(record).get("status") == "failed"}
        if options.retry_failed:
            before = {key: record for key, record in before.items() if key not in failed}
        todo = [item.id for item in work if item.id not in before]
        limit = options.limit or config.dialogue.limit
        budget = len(todo) if limit is None else max(0, min(len(todo), limit - len(before)))
        chosen = todo[:budget]
        if options.retry_failed:  # each starts again from the beginning, in whichever shard is its own now
            _forget(run_dir, store, failed.intersection(chosen))
        by_shard: dict[int, list[str]] = {}
        for dialogue_id in chosen:
            by_shard.setdefault(shard_of(dialogue_id, workers), []).append(dialogue_id)
        already_failed = len(failed.intersection(before))
        reporter.start(total=len(before) + budget, already=len(before), ledger=fleet, already_failed=already_failed)
        if by_shard:
            concurrency = max(1, math.ceil(_concurrency(config, options) / workers))
            reporter.stage(
                f"ray: {len(chosen)} dialogues in {len(by_shard)} shards on "
                f"{address or f'a local Ray instance ({workers} CPUs)'}, {concurrency} in flight per shard"
            )
            jobs = [
                ShardJob(shard, ids, str(shard_dir(run_dir, shard)), options.dry_run, concurrency)
                for shard, ids in sorted(by_shard.items())
            ]
            plan_data = [_plan_data(plan, config) for plan in plans]
            await _launch(ray, address, workers, config, plan_data, jobs, reporter, fleet, store)
        reporter.stop()
        after = _finished_records(run_dir, store)
        summary = RunSummary(run_dir=run_dir, planned=len(work), skipped=len(before))
        for dialogue_id in after.keys() - before.keys():
            record = orjson.loads(after[dialogue_id])
            summary.finished += 1
            summary.failed += record.get("status") == "failed"
            summary.valid += (record.get("judgment") or {}).get("judgment") == "valid"
        return summary
    finally:
        try:
            _write_dialogues(run_dir, _finished_records(run_dir, store))
        finally:
            store.close()


async def _launch(
    ray: Any,
    address: str | None,
    workers: int,
    config: DialforgeConfig,
    plan_data: list[dict[str, Any]],
    jobs: list[ShardJob],
    reporter: Reporter,
    fleet: _FleetLedger,
    store: RunStore,
) -> None:
    """Start the shards and follow them until every one is done; ``usage.json`` is saved with each poll."""
    started_here = not ray.is_initialized()
    progress = None
    refs: list[Any] = []
    try:
        if started_here and address is None:
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                logging_level=logging.WARNING,
            )
        elif started_here:
            ray.init(address=address, logging_level=logging.WARNING)
        progress = ray.remote(num_cpus=0)(ProgressBook).remote()
        env = {key: value for key, value in os.environ.items() if key.startswith("DIALFORGE_")}
        task = ray.remote(max_retries=MAX_RETRIES, name="dialforge-shard")(run_shard)
        if env:  # endpoint overrides reach workers on other machines too
            task = task.options(runtime_env={"env_vars": env})
        config_ref = ray.put(config)
        plans_ref = ray.put(plan_data)
        refs = [task.remote(config_ref, plans_ref, job, progress) for job in jobs]
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            try:
                ray.get(ready)  # a shard that raised stops the run, as an exception would in a local run
            except ray.exceptions.RayTaskError as exc:
                # The shard's own exception (StoreError, ConfigError, ...), its remote traceback chained.
                cause = getattr(exc, "cause", None)
                if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
                    raise cause from exc
                raise
            _show(reporter, fleet, await progress.poll.remote())
            store.flush()  # the driver's checkpoint: usage.json with the shards' latest counts
            if pending:
                await asyncio.sleep(POLL_S)
        _show(reporter, fleet, await progress.poll.remote())
    except ray.exceptions.RayError as exc:  # a worker, an actor or a node died, after Ray's own retries
        raise RayExecutorError(
            f"Ray failed ({_first_line(exc)}); every dialogue the shards finished is stored"
        ) from None
    except ConnectionError as exc:  # ray.init found no cluster at the address
        raise RayExecutorError(f"cannot reach the Ray cluster at {address} ({_first_line(exc)})") from None
    finally:
        for ref in refs:
            with contextlib.suppress(Exception):  # already finished, or Ray is going away: nothing to stop
                ray.cancel(ref, force=True)
        if progress is not None:
            with contextlib.suppress(Exception):  # its node may be gone
                ray.kill(progress)
        if started_here:
            ray.shutdown()


def _first_line(exc: Exception) -> str:
    """The kind and first line of an error: Ray's messages run to many lines, with remote tracebacks."""
    line = next((line.strip().rstrip(".") for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {line[:300]}" if line else type(exc).__name__


def _show(reporter: Reporter, fleet: _FleetLedger, book: dict[str, Any]) -> None:
    reporter.done, reporter.failed, reporter.valid = book["done"], book["failed"], book["valid"]
    reporter.in_flight = book["in_flight"]
    fleet.shard_rows = book["usage"]
    reporter.refresh()


# --- what a worker gets and runs -------------------------------------------------------------------


def _plan_data(plan: DomainPlan, config: DialforgeConfig) -> dict[str, Any]:
    """A domain plan as JSON-able data; the database travels as the absolute path of its source."""
    source = next((d.database for d in config.domains if d.name == plan.domain.name), None)
    return {
        "domain": plan.domain.model_dump(mode="json"),
        "tools": _TOOLS.dump_python(plan.tools, mode="json"),
        "policy": plan.policy,
        "tasks": _TASKS.dump_python(plan.tasks, mode="json"),
        "followups": _TASKS.dump_python(plan.followups, mode="json"),
        "sql_tools": _SQL_TOOLS.dump_python(plan.sql_tools, mode="json"),
        "database": str(Path(source).resolve()) if plan.database is not None and source is not None else None,
    }


async def _plan_from_data(data: dict[str, Any], config: DialforgeConfig, workdir: Path) -> DomainPlan:
    """The plan, with its environments made again in this worker: the database's, the Python tools' or the MCP
    server's (whose files and processes this worker keeps in ``workdir``)."""
    plan = DomainPlan(
        domain=Domain.model_validate(data["domain"]),
        tools=_TOOLS.validate_python(data["tools"]),
        policy=data["policy"],
        tasks=_TASKS.validate_python(data["tasks"]),
        followups=_TASKS.validate_python(data["followups"]),
        sql_tools=_SQL_TOOLS.validate_python(data["sql_tools"]),
        database=SQLDatabase.load(data["database"]) if data["database"] else None,
    )
    domain = next((d for d in config.domains if d.name == plan.domain.name), None)
    if plan.database is not None:
        plan.environments = SQLEnvironments(plan.database, plan.sql_tools)
    elif domain is not None and domain.python is not None:
        plan.environments = python_environments(domain)
    elif domain is not None and domain.mcp is not None:
        plan.environments = await mcp_environments(domain, workdir / "mcp" / domain_slug(domain.name))
    return plan


@dataclass(frozen=True)
class ShardJob:
    shard: int
    ids: list[str]
    """The shard's dialogues to finish this time (the driver left out those finished anywhere)."""
    store_dir: str
    dry_run: bool
    concurrency: int


def run_shard(config: DialforgeConfig, plan_data: list[dict[str, Any]], job: ShardJob, progress: Any) -> int:
    """One shard, in a Ray worker: the local scheduler over the job's dialogues, with the shard's own store."""
    return asyncio.run(_run_shard(config, plan_data, job, progress))


async def _run_shard(config: DialforgeConfig, plan_data: list[dict[str, Any]], job: ShardJob, progress: Any) -> int:
    shard = job.shard
    plans = [await _plan_from_data(data, config, Path(job.store_dir)) for data in plan_data]
    wanted = set(job.ids)
    work = [
        item
        for item in plan_dialogues(
            plans,
            per_domain=config.dialogue.per_domain,
            tasks_per_dialogue=config.generation.tasks_per_dialogue,
            run_seed=config.seed,
        )
        if item.id in wanted
    ]
    if len(work) != len(wanted):
        raise RuntimeError(f"shard {shard}: the worker planned other dialogues than the driver; is it another version?")
    store = RunStore(Path(job.store_dir))
    try:
        ledger = UsageLedger(config.prices)
        async with open_models(config, dry_run=job.dry_run, ledger=ledger) as models:
            engine = build_engine(config, models, plans)
            reporter = _ShardReporter(shard, progress)
            summary = await generate(engine, store, work, None, job.concurrency, reporter, ledger)
    finally:
        store.close()
    return summary.finished


class _ShardReporter(Reporter):
    """Sends a shard's progress and usage to the driver's ``ProgressBook``, at most every ``POLL_S``."""

    def __init__(self, shard: int, progress: Any) -> None:
        super().__init__()
        self.shard, self.progress = shard, progress
        self.attempt = f"{shard}:{os.getpid()}:{time.time_ns()}"
        self.outcomes: dict[str, tuple[bool, bool]] = {}
        self.last_push = 0.0

    def stage(self, text: str) -> None:
        """Quiet: the driver speaks for the run."""

    def finished(self, state: DialogueState) -> None:
        super().finished(state)
        valid = state.judgment is not None and state.judgment.judgment == "valid"
        self.outcomes[state.id] = (state.status == "failed", valid)
        _maybe_kill_self(self.done)

    def refresh(self) -> None:
        if time.monotonic() - self.last_push >= POLL_S:
            self.push()

    def stop(self) -> None:
        self.push()

    def push(self) -> None:
        self.last_push = time.monotonic()
        rows = self.ledger.snapshot() if self.ledger else []
        self.progress.push.remote(self.shard, self.attempt, self.outcomes, self.in_flight, rows)
        self.outcomes = {}


def _maybe_kill_self(done: int) -> None:
    spec = os.environ.get(KILL_AFTER_ENV)
    if not spec:
        return
    count, _, marker = spec.partition(":")
    if done < int(count):
        return
    try:
        with open(marker, "x") as handle:  # the first worker there wins; later attempts find the marker
            handle.write(str(os.getpid()))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


class ProgressBook:
    """A Ray actor the shards report to and the driver polls: dialogues finished now, once each, and usage."""

    def __init__(self) -> None:
        self.outcomes: dict[str, tuple[bool, bool]] = {}
        self.in_flight: dict[int, int] = {}
        self.usage: dict[str, list[dict[str, Any]]] = {}

    def push(
        self, shard: int, attempt: str, outcomes: dict[str, tuple[bool, bool]], in_flight: int, rows: list[dict]
    ) -> None:
        self.outcomes.update(outcomes)
        self.in_flight[shard] = in_flight  # a retried shard's new attempt replaces the dead one
        self.usage[attempt] = rows  # every attempt's calls were made, and are counted

    def poll(self) -> dict[str, Any]:
        return {
            "done": len(self.outcomes),
            "failed": sum(failed for failed, _ in self.outcomes.values()),
            "valid": sum(valid for _, valid in self.outcomes.values()),
            "in_flight": sum(self.in_flight.values()),
            "usage": merge_snapshots(self.usage.values()),
        }


class _FleetLedger(UsageLedger):
    """The driver's own usage (preparation) plus what the shards last reported, for the progress display."""

    def __init__(self, driver: UsageLedger) -> None:
        super().__init__()
        self.driver = driver
        self.shard_rows: list[dict[str, Any]] = []

    def snapshot(self) -> list[dict[str, Any]]:
        return merge_snapshots([self.driver.snapshot(), self.shard_rows])


# --- merging ---------------------------------------------------------------------------------------


def _finished_records(run_dir: Path, store: RunStore) -> dict[str, bytes]:
    """Every finished record of the run: the driver's store (an earlier local run) and every shard's."""
    records: dict[str, bytes] = {}
    store.flush()
    for path in _store_paths(run_dir):
        connection = sqlite3.connect(path, timeout=30)
        try:
            _read_finished(connection, records)
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):  # a shard store that never got its tables: nothing finished there
                raise store_error(path, exc) from None
        except sqlite3.Error as exc:
            raise store_error(path, exc) from None
        finally:
            connection.close()
    return records


def _store_paths(run_dir: Path) -> list[Path]:
    """The driver's store, then every shard's in shard order."""
    shards = sorted((run_dir / "shards").glob("*/state.sqlite"), key=lambda p: (len(p.parent.name), p.parent.name))
    return [run_dir / "state.sqlite", *shards]


def _forget(run_dir: Path, store: RunStore, ids: set[str]) -> None:
    """Remove these finished dialogues from every store, so that they start again (``--retry-failed``)."""
    if not ids:
        return
    store.flush()
    for path in _store_paths(run_dir):
        connection = sqlite3.connect(path, timeout=30)
        try:
            with connection:
                connection.executemany("DELETE FROM dialogues WHERE id = ? AND finished = 1", [(key,) for key in ids])
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):  # a shard store that never got its tables holds none of them
                raise store_error(path, exc) from None
        except sqlite3.Error as exc:
            raise store_error(path, exc) from None
        finally:
            connection.close()


def _read_finished(connection: sqlite3.Connection, into: dict[str, bytes]) -> None:
    for key, record in connection.execute("SELECT id, record FROM dialogues WHERE finished = 1"):
        into.setdefault(key, record)


def _write_dialogues(run_dir: Path, records: dict[str, bytes]) -> Path:
    """``dialogues.jsonl`` from all stores, once each, in id order (as the local executor writes it)."""
    lines = (orjson.dumps(orjson.loads(records[key])) + b"\n" for key in sorted(records))
    return write_whole(run_dir / DIALOGUES_FILE, lines)
