"""``dialforge extend``: continue existing conversations with a goal that fits them, then like ``run``.

Each conversation of the file (``pipeline/conversations.py`` reads the formats) becomes one dialogue, in file
order (``extend-000000`` is the first): it gets one continuation goal from the generator, written for the
person in that conversation and needing the domain's tools, and the user simulator carries the conversation on.
A goal is kept in the store with the usage it took, keyed on everything that shapes it (the conversation, the
domain's tools, policy and data, the prompts, the model, the date and the seed), so a resumed run neither asks
again nor forgets the cost, and a changed prompt or tool set asks anew; the stage report ``continuations`` sums
it. A conversation that cannot be continued, or for which no goal passed its checks, is recorded as a failed
dialogue that says why (its transcript intact when it has one): the dataset accounts for every conversation.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from dialforge.actors.generators.item_repair import StageReport
from dialforge.actors.generators.tasks import CONTINUATION_PROMPTS, generate_continuation
from dialforge.config import DialforgeConfig
from dialforge.llm.protocol import ChatModel
from dialforge.llm.usage_scope import ScopedUsage, usage_scope
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec, with_brought_tools
from dialforge.model.usage import USAGE_BY_ROLE, UsageByRole, usage_sum
from dialforge.pipeline.conversations import ImportedConversation, UnusableConversation, load_conversations
from dialforge.pipeline.preparation import DomainPlan, Preparation, stage_seed, write_stage_reports
from dialforge.prompts import prompt_digests
from dialforge.runner.progress import Reporter
from dialforge.runner.run import RunOptions, RunSummary, build_engine, generate_as_asked, run_session
from dialforge.runner.store import RunStore
from dialforge.runner.work import DialogueWork

SHOWN_UNUSABLE = 20
"""Conversations that cannot be continued named one by one at the start; every one is in the dataset anyway."""


async def extend(
    config: DialforgeConfig, conversations: Path, run_dir: Path, options: RunOptions, reporter: Reporter
) -> RunSummary:
    loaded = load_conversations(conversations)  # a file that cannot be read at all fails here, before any call
    if not config.domains:
        raise ValueError("extend needs one domain in the config (domains: [{name: ...}]) for tools and policy")
    for unusable in loaded.unusable[:SHOWN_UNUSABLE]:
        reporter.stage(f"{unusable.where} cannot be continued: {unusable.reason}")
    if len(loaded.unusable) > SHOWN_UNUSABLE:
        reporter.stage(f"and {len(loaded.unusable) - SHOWN_UNUSABLE} more conversations that cannot be continued")
    if loaded.unusable:
        reporter.stage(f"{len(loaded.unusable)} conversations are recorded as failed dialogues, each saying why")
    async with run_session(config, run_dir, options, reporter) as (store, models, ledger):
        reporter.stage("preparing tools")
        only_first = config.model_copy(update={"domains": config.domains[:1]})
        plans = await Preparation(
            only_first, models["generator"], store, tasks=False, on_stage=reporter.preparing
        ).run()
        engine = build_engine(config, models, plans)
        reporter.stage(f"writing continuation goals for {len(loaded.conversations)} conversations")
        work = await _continuations(
            config,
            ScopedUsage(models["generator"], "generator"),
            store,
            plans[0],
            loaded.entries,
            ask_again=options.retry_failed,
        )
        write_stage_reports(store, plans)
        return await generate_as_asked(config, options, engine, store, work, reporter, ledger)


async def _continuations(
    config: DialforgeConfig,
    model: ChatModel,
    store: RunStore,
    plan: DomainPlan,
    entries: Sequence[ImportedConversation | UnusableConversation],
    *,
    ask_again: bool,
) -> list[DialogueWork]:
    """One dialogue per entry, in order; ``ask_again`` writes anew a goal that failed its checks before."""
    report = StageReport(stage="continuations", domain=plan.domain.name)
    domain = plan.domain.name

    async def one(index: int, entry: ImportedConversation | UnusableConversation) -> DialogueWork:
        dialogue_id, seed = f"extend-{index:06d}", stage_seed(config.seed, "extend", str(index))
        if isinstance(entry, UnusableConversation):
            return DialogueWork(
                dialogue_id, domain, (), seed, failure=f"{entry.where} cannot be continued: {entry.reason}"
            )
        key = _goal_key(plan, entry, model.name, config, seed)
        stored = store.get("continuation", domain, key)
        if stored is None or (ask_again and not stored["tasks"]):
            stored = await _written_goal(config, model, plan, entry, seed)
            if not stored["errors"]:  # after a failed request, the goal is asked for again next time
                store.put("continuation", domain, key, stored)
        tasks = tuple(Task.model_validate(task) for task in stored["tasks"])
        report.produced += len(tasks)
        report.usage = usage_sum(report.usage, USAGE_BY_ROLE.validate_python(stored.get("usage") or {}))
        problems = [*stored["problems"], *stored.get("errors", [])]
        failure = None if tasks else f"no goal for {entry.where} passed its checks: {'; '.join(problems)}"
        return DialogueWork(
            dialogue_id,
            domain,
            tasks,
            seed,
            tuple(entry.messages),
            instructions=entry.system,
            tools=tuple(entry.tools),
            failure=failure,
        )

    work = list(await asyncio.gather(*(one(i, entry) for i, entry in enumerate(entries))))
    plan.reports.append(report)
    return work


async def _written_goal(
    config: DialforgeConfig, model: ChatModel, plan: DomainPlan, conversation: ImportedConversation, seed: int
) -> dict[str, Any]:
    """The goal the generator writes for ``conversation`` (none when every try failed its checks), why others
    failed, and what it cost."""
    usage: UsageByRole = {}
    with usage_scope(usage):
        batch = await generate_continuation(
            model,
            plan.domain,
            _dialogue_tools(plan, conversation),
            conversation.messages,
            policy=plan.policy,
            database=plan.database,
            today=config.dialogue.today,
            seed=seed,
        )
    return {
        "tasks": [task.model_dump(mode="json") for task in batch.items],
        "problems": [f"{r.label}: {'; '.join(r.reasons)}" for r in batch.rejected],
        "errors": batch.errors,
        "usage": USAGE_BY_ROLE.dump_python(usage, mode="json"),
    }


def _dialogue_tools(plan: DomainPlan, conversation: ImportedConversation) -> list[ToolSpec]:
    """The tools the dialogue's agent will have, so that the goal writer sees what the agent can do."""
    return with_brought_tools(plan.tools, conversation.tools)


def _goal_key(
    plan: DomainPlan, conversation: ImportedConversation, model: str, config: DialforgeConfig, seed: int
) -> str:
    """A digest of everything that shapes a continuation goal, so that a stored one is reused only for the very
    same request."""
    database = plan.database
    shaping = {
        "conversation": [message.model_dump(mode="json") for message in conversation.messages],
        "domain": plan.domain.model_dump(mode="json"),
        "tools": [tool.model_dump(mode="json") for tool in _dialogue_tools(plan, conversation)],
        "policy": plan.policy,
        "data": None if database is None else [database.table_digest(table) for table in database.schema.tables],
        "prompts": prompt_digests(CONTINUATION_PROMPTS),
        "model": model,
        "today": None if config.dialogue.today is None else config.dialogue.today.isoformat(),
        "seed": seed,
    }
    return hashlib.blake2b(orjson.dumps(shaping, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
