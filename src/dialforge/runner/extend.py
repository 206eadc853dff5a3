"""``dialforge extend``: continue existing conversations with a goal that fits them, then like ``run``.

Each conversation gets one continuation goal from the generator (kept in the store with the usage it
took, so a resumed run neither asks again nor forgets the cost; the stage report ``continuations`` sums it),
written for the person in that conversation and needing the domain's tools; the user simulator then
carries the conversation on. A conversation no goal could be written for is
recorded as a failed dialogue with the reasons, its transcript intact.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import orjson

from dialforge.actors.generators.item_repair import StageReport
from dialforge.actors.generators.tasks import generate_continuation
from dialforge.config import DialforgeConfig
from dialforge.llm.protocol import ChatModel
from dialforge.llm.usage_scope import ScopedUsage, usage_scope
from dialforge.model.tasks import Task
from dialforge.model.usage import USAGE_BY_ROLE, UsageByRole, usage_sum
from dialforge.pipeline.conversations import ImportedConversation, read_conversations
from dialforge.pipeline.preparation import DomainPlan, Preparation, stage_seed, write_stage_reports
from dialforge.runner.progress import Reporter
from dialforge.runner.run import RunOptions, RunSummary, build_engine, generate_as_asked, run_session
from dialforge.runner.store import RunStore
from dialforge.runner.work import DialogueWork


async def extend(
    config: DialforgeConfig, conversations: Path, run_dir: Path, options: RunOptions, reporter: Reporter
) -> RunSummary:
    imported = read_conversations(conversations)  # a bad file fails here, before any model call
    if not config.domains:
        raise ValueError("extend needs one domain in the config (domains: [{name: ...}]) for tools and policy")
    async with run_session(config, run_dir, options, reporter) as (store, models, ledger):
        reporter.stage("preparing tools")
        only_first = config.model_copy(update={"domains": config.domains[:1]})
        plans = await Preparation(
            only_first, models["generator"], store, tasks=False, on_stage=reporter.preparing
        ).run()
        engine = build_engine(config, models, plans)
        reporter.stage(f"writing continuation goals for {len(imported)} conversations")
        work = await _continuations(config, ScopedUsage(models["generator"], "generator"), store, plans[0], imported)
        write_stage_reports(store, plans)
        return await generate_as_asked(config, options, engine, store, work, reporter, ledger)


async def _continuations(
    config: DialforgeConfig,
    model: ChatModel,
    store: RunStore,
    plan: DomainPlan,
    conversations: Sequence[ImportedConversation],
) -> list[DialogueWork]:
    report = StageReport(stage="continuations", domain=plan.domain.name)

    async def one(index: int, conversation: ImportedConversation) -> DialogueWork:
        seed = stage_seed(config.seed, "extend", str(index))
        key = hashlib.blake2b(
            orjson.dumps([m.model_dump(mode="json") for m in conversation.messages]), digest_size=16
        ).hexdigest()
        stored = store.get("continuation", plan.domain.name, key)
        if stored is None:
            usage: UsageByRole = {}
            with usage_scope(usage):
                batch = await generate_continuation(
                    model,
                    plan.domain,
                    plan.tools,
                    conversation.messages,
                    policy=plan.policy,
                    database=plan.database,
                    today=config.dialogue.today,
                    seed=seed,
                )
            stored = {
                "tasks": [task.model_dump(mode="json") for task in batch.items],
                "problems": [f"{r.label}: {'; '.join(r.reasons)}" for r in batch.rejected] + batch.errors,
                "usage": USAGE_BY_ROLE.dump_python(usage, mode="json"),
            }
            if not batch.errors:
                store.put("continuation", plan.domain.name, key, stored)
        tasks = tuple(Task.model_validate(task) for task in stored["tasks"])
        report.produced += len(tasks)
        report.usage = usage_sum(report.usage, USAGE_BY_ROLE.validate_python(stored.get("usage") or {}))
        return DialogueWork(f"extend-{index:06d}", plan.domain.name, tasks, seed, tuple(conversation.messages))

    work = list(await asyncio.gather(*(one(i, c) for i, c in enumerate(conversations))))
    plan.reports.append(report)
    return work
