"""``dialforge run``: preparation, then many dialogues on one event loop, checkpointed after every step.

Running the same command again on the same run directory resumes: finished dialogues are skipped,
dialogues in flight continue from their last stored state, stage artifacts are not asked for again.
A config that changed since the run started is refused with a diff, unless forced.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml

from dialforge.actors.personas import Persona
from dialforge.config import DialforgeConfig
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import ROLES
from dialforge.llm.role_models import RoleModels
from dialforge.pipeline.artifacts import write_whole
from dialforge.pipeline.engine import DialogueEngine, DomainSetup
from dialforge.pipeline.preparation import DomainPlan, Preparation
from dialforge.runner.progress import Reporter
from dialforge.runner.store import RunStore
from dialforge.runner.usage_file import UsageFile
from dialforge.runner.work import DialogueWork, plan_dialogues

DRY_RUN_CONCURRENCY = 64


class ConfigChanged(Exception):
    """The run directory belongs to another config; the message holds the difference."""


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    limit: int | None = None
    concurrency: int | None = None
    force_new_config: bool = False
    retry_failed: bool = False


@dataclass
class RunSummary:
    run_dir: Path
    planned: int = 0
    finished: int = 0
    failed: int = 0
    valid: int = 0
    skipped: int = 0


def _config_text(config: DialforgeConfig) -> str:
    """The config as the run's identity: where it runs (``ray:``) does not change what it generates."""
    data = orjson.loads(config.model_dump_json(exclude={"ray"}))
    return yaml.safe_dump(data, sort_keys=True, allow_unicode=True)


_MODELS_CHANGED = {
    "dry-run": "{run_dir} was made with --dry-run (the offline dry-run model's placeholder texts); resuming it with "
    "the configured model endpoints would mix placeholder and real dialogues in one dataset. Use a new --out "
    "directory for the real run, or add --dry-run to continue the dry run.",
    "endpoints": "{run_dir} was made with the configured model endpoints; resuming it with --dry-run would mix "
    "placeholder dialogues into real ones. Use a new --out directory for the dry run, or leave out --dry-run to "
    "continue with the endpoints.",
}


def _check_config(store: RunStore, config: DialforgeConfig, options: RunOptions) -> None:
    """A run directory holds one dataset: resuming it with another config (unless forced) or with the other kind
    of model (the dry-run model or the endpoints; never forced) is refused, as either would mix two in one."""
    models = "dry-run" if options.dry_run else "endpoints"
    made_with = store.meta("models")
    if made_with is not None and made_with != models:
        raise ConfigChanged(_MODELS_CHANGED[made_with].format(run_dir=store.run_dir))
    text = _config_text(config)
    previous = store.meta("config")
    if previous is not None and previous != text and not options.force_new_config:
        diff = "".join(
            difflib.unified_diff(previous.splitlines(True), text.splitlines(True), "run config", "this config")
        )
        raise ConfigChanged(
            f"{store.run_dir} was started with another config; resuming it with this one would mix two datasets.\n"
            f"{diff}\nUse a new --out directory, or --force-new-config to continue with the new config."
        )
    store.set_meta("config", text)
    store.set_meta("models", models)
    write_whole(store.run_dir / "config.yaml", [text.encode()])


def _concurrency(config: DialforgeConfig, options: RunOptions) -> int:
    if options.concurrency:
        return options.concurrency
    if options.dry_run:
        return DRY_RUN_CONCURRENCY
    agent = config.models.resolve("agent")
    return max(1, agent.max_concurrency * len(agent.base_urls))


def build_engine(config: DialforgeConfig, models: RoleModels, plans: Sequence[DomainPlan]) -> DialogueEngine:
    personas = (
        None
        if config.dialogue.personas is None
        else [Persona(name=p.name, description=p.description) for p in config.dialogue.personas]
    )
    engine = DialogueEngine(
        {role: models[role] for role in ROLES}, mode=config.mode, settings=config.dialogue, personas=personas
    )
    for plan in plans:
        engine.add_domain(
            DomainSetup(plan.domain.name, plan.tools, plan.policy, plan.environments, plan.domain.description)
        )
    return engine


def open_models(config: DialforgeConfig, *, dry_run: bool, ledger: UsageLedger) -> RoleModels:
    """Every role's model: the offline dry-run model, or the configured endpoints."""
    if dry_run:
        return RoleModels.dry_run(seed=config.seed, ledger=ledger)
    return RoleModels.from_settings(config.models, ledger=ledger)


@asynccontextmanager
async def run_session(
    config: DialforgeConfig, run_dir: Path, options: RunOptions, reporter: Reporter
) -> AsyncIterator[tuple[RunStore, RoleModels, UsageLedger]]:
    """The store and the models of a run; on the way out, the store is flushed (``usage.json`` with it) and
    ``dialogues.jsonl`` rewritten, whether the run finished, failed or was interrupted."""
    store = RunStore(run_dir)
    try:
        for note in store.notes:
            reporter.stage(note)
        _check_config(store, config, options)
        ledger = UsageLedger(config.prices)
        store.usage = UsageFile(run_dir, ledger)
        async with open_models(config, dry_run=options.dry_run, ledger=ledger) as models:
            yield store, models, ledger
    finally:
        try:
            store.flush()
            store.write_dialogues()
        finally:
            store.close()


async def run(config: DialforgeConfig, run_dir: Path, options: RunOptions, reporter: Reporter) -> RunSummary:
    async with run_session(config, run_dir, options, reporter) as (store, models, ledger):
        reporter.stage("preparing tools and tasks")
        plans = await Preparation(config, models["generator"], store, on_stage=reporter.preparing).run()
        engine = build_engine(config, models, plans)
        work = plan_dialogues(
            plans,
            per_domain=config.dialogue.per_domain,
            tasks_per_dialogue=config.generation.tasks_per_dialogue,
            run_seed=config.seed,
        )
        return await generate_as_asked(config, options, engine, store, work, reporter, ledger)


async def generate_as_asked(
    config: DialforgeConfig,
    options: RunOptions,
    engine: DialogueEngine,
    store: RunStore,
    work: Sequence[DialogueWork],
    reporter: Reporter,
    ledger: UsageLedger,
) -> RunSummary:
    """``generate`` with the limit, concurrency and retry choice of the config and the command line."""
    return await generate(
        engine,
        store,
        work,
        options.limit or config.dialogue.limit,
        _concurrency(config, options),
        reporter,
        ledger,
        retry_failed=options.retry_failed,
    )


async def generate(
    engine: DialogueEngine,
    store: RunStore,
    work: Sequence[DialogueWork],
    limit: int | None,
    concurrency: int,
    reporter: Reporter,
    ledger: UsageLedger,
    *,
    retry_failed: bool = False,
) -> RunSummary:
    """Step every unfinished dialogue to its end, ``concurrency`` at a time, stopping after ``limit`` in all.

    With ``retry_failed``, failed dialogues count as not done: each starts again from the beginning (same id and
    seed), and its failed record is replaced as soon as it starts. A refusal every request would meet
    (``ModelError.blocks_every_request``) cancels every worker and propagates: no dialogue it hit is marked
    finished, and each dialogue in flight keeps its last stored state, from which the next run continues.
    """
    finished = store.finished_ids()
    if retry_failed:
        finished -= store.failed_ids()
    saved = store.unfinished_states()
    todo = [item for item in work if item.id not in finished]
    budget = len(todo) if limit is None else max(0, min(len(todo), limit - len(finished)))
    summary = RunSummary(run_dir=store.run_dir, planned=len(work), skipped=len(finished))
    already_failed = len(finished & store.failed_ids())
    reporter.start(total=len(finished) + budget, already=len(finished), ledger=ledger, already_failed=already_failed)
    queue = iter(todo[:budget])

    async def worker() -> None:
        for item in queue:
            state = saved.get(item.id) or engine.start(
                item.domain,
                item.tasks,
                dialogue_id=item.id,
                seed=item.seed,
                messages=item.history,
                instructions=item.instructions,
                tools=item.tools,
                failure=item.failure,
            )
            store.save(state)
            reporter.started()
            while state.next_actor != "done":
                state = await engine.step(state)
                store.save(state)
            store.save(state, engine.record(state))
            summary.finished += 1
            summary.failed += state.status == "failed"
            summary.valid += state.judgment is not None and state.judgment.judgment == "valid"
            reporter.finished(state)

    try:
        async with asyncio.TaskGroup() as workers:  # one worker's exception cancels the others
            for _ in range(min(concurrency, budget) or 1):
                workers.create_task(worker())
    except BaseExceptionGroup as stopped:
        raise stopped.exceptions[0] from None  # what stopped the run, as it was raised (several may be alike)
    finally:
        reporter.stop()
        await engine.close()  # servers of dialogues an interruption cut short end here; their states are stored
    return summary
