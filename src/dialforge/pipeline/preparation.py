"""Everything a domain needs before its first dialogue: tools, return schemas, a policy and tasks.

The tool-preparation module of arXiv 2601.08225 (docs/method.md) plus the task generators, as
plug-and-play stages: each stage is skipped when the config supplies its output, each finished
model-backed item is kept in the checkpoint store (a resumed run does not ask again), and each reports
what it produced and dropped, and the generator's usage it took (kept with its items, so a resumed run
still reports what they cost).

Tool sources: for SQL domains, a tools file or tools a model writes over the database (or scaffolded ones);
for Python domains, the functions the config names (their specs read from signatures and docstrings);
otherwise a tools file, or questions -> tool specs per question -> merge -> complementary tools -> return
schemas. A domain whose tools run for real carries its ``EnvironmentFactory`` in its plan.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import TypeAdapter

from dialforge.actors.generators.expansion import expand_tools
from dialforge.actors.generators.goal_batches import GoalBatch, goal_batches, goal_text, merged
from dialforge.actors.generators.item_repair import ItemBatch, Rejection, StageReport
from dialforge.actors.generators.policy import generate_policy
from dialforge.actors.generators.questions import generate_questions
from dialforge.actors.generators.return_schemas import field_type_conflicts, predict_return_schemas
from dialforge.actors.generators.sql_tools import synthesize_sql_tools
from dialforge.actors.generators.tasks import (
    TaskStyle,
    difficulty_counts,
    generate_followups,
    generate_tasks,
    hard_goal_counts,
    hard_goal_kinds,
)
from dialforge.actors.generators.tool_specs import generate_tool_specs, merge_tool_specs
from dialforge.config import DialforgeConfig, DomainConfig
from dialforge.environments.base import EnvironmentFactory, StateViews
from dialforge.environments.mcp import McpEnvironments, McpError
from dialforge.environments.python_config import ErrorRuleSpec, load_environments
from dialforge.environments.python_env import PythonEnvironments
from dialforge.environments.sql.data_view import DataView
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironments
from dialforge.environments.sql.mentions import goal_spread
from dialforge.environments.sql.scaffold import scaffold_notes, scaffold_tools
from dialforge.environments.sql.tool import SQLTool
from dialforge.errors import ConfigError
from dialforge.llm.protocol import ChatModel
from dialforge.llm.usage_scope import ScopedUsage, usage_scope
from dialforge.model.domain import Domain, domain_slug
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec
from dialforge.model.usage import USAGE_BY_ROLE, UsageByRole, usage_sum
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.supplied import (
    check_supplied_tools,
    load_questions,
    load_sql_tools,
    load_tasks,
    load_tool_specs,
)
from dialforge.prompts import load_prompt

T = TypeVar("T")
P = TypeVar("P")
_TASKS = TypeAdapter(list[Task])


@dataclass
class DomainPlan:
    """A domain ready for dialogues; ``sql_tools`` and ``database`` are set for SQL domains, ``environments``
    (where its tools run for real) for SQL and Python domains."""

    domain: Domain
    tools: list[ToolSpec]
    policy: str
    tasks: list[Task]
    followups: list[Task]
    questions: list[str] = field(default_factory=list)
    sql_tools: list[SQLTool] = field(default_factory=list)
    database: SQLDatabase | None = None
    environments: EnvironmentFactory | None = None
    reports: list[StageReport] = field(default_factory=list)


def python_environments(config: DomainConfig) -> PythonEnvironments[Any]:
    """The environments of a domain with Python tools (``domains[].python``); ``ConfigError`` naming the key and
    the fix when a reference cannot be followed."""
    python = config.python
    assert python is not None
    try:
        return load_environments(
            name=config.name,
            tools=python.tools,
            state=python.state,
            state_parameter=python.state_parameter,
            errors=[ErrorRuleSpec(rule.kind, rule.exception, rule.message) for rule in python.errors],
            base_dir=python.base_dir,
        )
    except ValueError as exc:
        raise ConfigError(f"domain {config.name!r}: {exc}") from None


async def mcp_environments(config: DomainConfig, workdir: Path) -> McpEnvironments:
    """The environments of a domain served by an MCP server (``domains[].mcp``), its servers' files and pid files
    in ``workdir``; ``ConfigError`` naming the server and the fix when it cannot be set up."""
    assert config.mcp is not None
    try:
        return await McpEnvironments.open(config.mcp, workdir)
    except McpError as exc:
        raise ConfigError(f"domain {config.name!r}: {exc}") from None


@dataclass(frozen=True)
class StageProgress:
    """How far one preparation stage of one domain is: ``done`` of its ``parts`` requests (one per question for
    tool specs, per batch of goals, else one) answered, and its report once it is over. Preparation hands these to
    whoever shows progress (``OnStage``), so a person watching a slow server sees more than "preparing"."""

    domain: str
    stage: str
    done: int
    parts: int
    report: StageReport | None = None


OnStage = Callable[[StageProgress], None]


def stage_seed(run_seed: int, *parts: str) -> int:
    """A seed per (run, domain, stage, item), stable across runs and resumes."""
    digest = hashlib.blake2b("\0".join((str(run_seed), *parts)).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


class Preparation:
    """Runs the preparation stages for every domain of a config, with the generator model."""

    def __init__(
        self,
        config: DialforgeConfig,
        model: ChatModel,
        store: ArtifactStore,
        *,
        tasks: bool = True,
        on_stage: OnStage | None = None,
    ) -> None:
        self.with_tasks = tasks
        self.on_stage = on_stage
        self.config = config
        self.settings = config.generation
        self.model = ScopedUsage(model, "generator")
        self.store = store

    async def run(self) -> list[DomainPlan]:
        # every domain's tools, before any domain asks a model anything
        check_supplied_tools(self.config.domains, self.config.dialogue.today)
        plans = list(await asyncio.gather(*(self.prepare(domain) for domain in self.config.domains)))
        self._write_artifacts(plans)
        return plans

    def _key(self, domain: Domain, prompts: Sequence[str], **inputs: Any) -> str:
        """What a stage's result depends on, hashed: the domain, the run seed, its prompts' text and its
        inputs. A changed config or prompt changes the key, so stale items are never reused."""
        material = {
            "domain": domain.model_dump(mode="json"),
            "seed": self.config.seed,
            "prompts": [load_prompt(name) for name in prompts],
            "inputs": TypeAdapter(dict[str, Any]).dump_python(inputs, mode="json"),
        }
        return hashlib.blake2b(orjson.dumps(material, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()

    async def _cached(
        self,
        stage: str,
        domain: str,
        key: str,
        kind: TypeAdapter[list[T]],
        produce: Callable[[], Awaitable[ItemBatch[T]]],
    ) -> ItemBatch[T]:
        """The stage's batch from the store, or produced now and stored unless a model error cut it short; with
        the usage producing it took."""
        cached = self.store.get(stage, domain, key)
        if cached is not None:
            return ItemBatch(
                items=kind.validate_python(cached["items"]),
                rejected=[Rejection.model_validate(r) for r in cached["rejected"]],
                repairs=[Rejection.model_validate(r) for r in cached.get("repairs") or ()],  # none in older stores
                usage=USAGE_BY_ROLE.validate_python(cached.get("usage") or {}),  # none in stores of older versions
                notes=cached.get("notes") or [],
            )
        usage: UsageByRole = {}
        with usage_scope(usage):
            batch = await produce()
        batch.usage = usage
        if not batch.errors:
            value = {
                "items": kind.dump_python(batch.items, mode="json", exclude_none=True),
                "rejected": [r.model_dump(mode="json") for r in batch.rejected],
                "repairs": [r.model_dump(mode="json") for r in batch.repairs],
                "usage": USAGE_BY_ROLE.dump_python(usage, mode="json"),
                "notes": batch.notes,
            }
            self.store.put(stage, domain, key, value)
        return batch

    def _tell(self, plan: DomainPlan, stage: str, done: int, parts: int, report: StageReport | None = None) -> None:
        if self.on_stage is not None:
            self.on_stage(StageProgress(plan.domain.name, stage, done, parts, report))

    async def prepare(self, config: DomainConfig) -> DomainPlan:
        domain = Domain(
            name=config.name,
            description=config.description,
            seed_tools=load_tool_specs(config.seed_tools) if config.seed_tools else [],
        )
        plan = DomainPlan(domain=domain, tools=[], policy="", tasks=[], followups=[])
        if config.database is not None:
            await self._sql_tools(config, plan)
        elif config.python is not None:
            plan.environments = python_environments(config)
            plan.tools = plan.environments.tools()
        elif config.mcp is not None:
            workdir = self.store.run_dir / "mcp" / domain_slug(config.name)
            plan.environments = await mcp_environments(config, workdir)
            plan.tools = plan.environments.tools()
        elif config.tools is not None:
            plan.tools = load_tool_specs(config.tools, config.name)
        else:
            await self._generated_tools(config, plan)
        if plan.tools and not all(tool.returns for tool in plan.tools) and config.database is None:
            await self._return_schemas(plan)
        await self._policy(config, plan)
        if self.with_tasks:
            await self._tasks(config, plan)
        return plan

    async def _stage(
        self,
        stage: str,
        plan: DomainPlan,
        prompts: Sequence[str],
        kind: TypeAdapter[list[T]],
        produce: Callable[[], Awaitable[ItemBatch[T]]],
        **inputs: Any,
    ) -> ItemBatch[T]:
        """One stage for one domain: keyed by its inputs and prompts, cached, and reported."""
        key = self._key(plan.domain, prompts, **inputs)
        self._tell(plan, stage, 0, 1)
        batch = await self._cached(stage, plan.domain.name, key, kind, produce)
        plan.reports.append(StageReport.of(stage, plan.domain.name, batch))
        self._tell(plan, stage, 1, 1, plan.reports[-1])
        return batch

    async def _goals(
        self,
        stage: str,
        plan: DomainPlan,
        prompts: Sequence[str],
        parts: Sequence[P],
        write: Callable[[P, DataView | None, int], Awaitable[ItemBatch[Task]]],
        **inputs: Any,
    ) -> ItemBatch[Task]:
        """A goal stage in ``parts``, one request each, concurrently: each part's writer sees a view of the data
        drawn with the part's own seed (the run's, the domain's, the part's index), showing first what the views
        before it did not; the view is part of the part's key, so a resumed run asks for exactly the parts it
        lacks. Reported once, with how the goals spread over the data. A domain of Python tools shows a view of its
        state's records instead (``environments/state_view.py``)."""
        name, database, tokens = plan.domain.name, plan.database, self.settings.data_view_tokens
        seeds = [stage_seed(self.config.seed, name, stage, str(index)) for index in range(len(parts))]
        views: list[DataView] = []
        if database is not None:
            for seed in seeds:
                views.append(database.data_view(seed=seed, tokens=tokens, earlier=views))
        elif isinstance(plan.environments, StateViews):
            environments = plan.environments
            views = [DataView(text=environments.view(seed=seed, tokens=tokens)) for seed in seeds]

        answered = 0

        async def one(index: int, part: P) -> ItemBatch[Task]:
            nonlocal answered
            view = views[index] if views else None
            key = self._key(plan.domain, prompts, **inputs, part=part, view=view.text if view else None)
            batch = await self._cached(stage, name, key, _TASKS, lambda: write(part, view, seeds[index]))
            answered += 1
            if answered < len(parts):  # the last one is told with the stage's report
                self._tell(plan, stage, answered, len(parts))
            return batch

        self._tell(plan, stage, 0, len(parts))
        batch = merged(await asyncio.gather(*(one(index, part) for index, part in enumerate(parts))))
        report = StageReport.of(stage, name, batch)
        if database is not None:
            report.spread = goal_spread([goal_text(task) for task in batch.items], views, database.schema)
        plan.reports.append(report)
        self._tell(plan, stage, len(parts), len(parts), report)
        return batch

    async def _sql_tools(self, config: DomainConfig, plan: DomainPlan) -> None:
        assert config.database is not None
        path = config.database
        plan.database = SQLDatabase.load(path)
        self.store.write_text(f"schemas/{domain_slug(plan.domain.name)}.txt", plan.database.schema.to_prompt())
        if notes := scaffold_notes(plan.database.schema):  # the schema's defects, and what they cost the tools
            plan.reports.append(StageReport(stage="database", domain=plan.domain.name, notes=notes))
        if config.tools is not None:
            plan.sql_tools = load_sql_tools(config.tools, plan.domain.name)
        elif config.sql_tools == "synthesize":
            domain, count = plan.domain, self.settings.sql_tools_per_domain
            database, seed = plan.database, stage_seed(self.config.seed, plan.domain.name, "sql")
            batch = await self._stage(
                "sql_tools",
                plan,
                ["sql_tools", "sql_tools_repair"],
                TypeAdapter(list[SQLTool]),
                lambda: synthesize_sql_tools(
                    self.model, database, domain=domain, count=count, seed=seed, today=self.config.dialogue.today
                ),
                count=count,
                database=database.schema.model_dump(),
            )
            plan.sql_tools = batch.items
        if not plan.sql_tools:
            plan.sql_tools = scaffold_tools(plan.database.schema)[: self.settings.max_tools_per_domain]
            plan.reports.append(
                StageReport(stage="sql_tools_scaffolded", domain=plan.domain.name, produced=len(plan.sql_tools))
            )
        plan.tools = [tool.to_spec() for tool in plan.sql_tools]
        plan.environments = SQLEnvironments(plan.database, plan.sql_tools)

    async def _generated_tools(self, config: DomainConfig, plan: DomainPlan) -> None:
        domain, name, seed = plan.domain, plan.domain.name, self.config.seed
        if config.questions is not None:
            plan.questions = load_questions(config.questions, config.name)
        else:
            count = self.settings.questions_per_domain
            questions = await self._stage(
                "questions",
                plan,
                ["questions", "questions_repair"],
                TypeAdapter(list[str]),
                lambda: generate_questions(self.model, domain, count=count, seed=stage_seed(seed, name, "q")),
                count=count,
            )
            plan.questions = questions.items
        proposed: list[ToolSpec] = list(domain.seed_tools)
        per_question = StageReport(stage="tool_specs", domain=name)
        self._tell(plan, "tool_specs", 0, len(plan.questions))
        for answered, question in enumerate(plan.questions, 1):
            known = list(proposed)
            key = self._key(domain, ["tool_specs", "tool_specs_repair"], question=question, known=known)
            specs = await self._cached(
                "tool_specs",
                name,
                key,
                TypeAdapter(list[ToolSpec]),
                partial(
                    generate_tool_specs,
                    self.model,
                    domain,
                    question,
                    known=known,
                    seed=stage_seed(seed, name, "tools", key),
                ),
            )
            proposed += specs.items
            per_question.repairs += specs.repairs
            per_question.rejected += specs.rejected
            per_question.errors += specs.errors
            per_question.usage = usage_sum(per_question.usage, specs.usage)
            if answered < len(plan.questions):  # the last one is told with the stage's report
                self._tell(plan, "tool_specs", answered, len(plan.questions))
        merged, duplicates = merge_tool_specs(proposed)
        per_question.rejected += duplicates
        per_question.produced = len(merged)
        plan.reports.append(per_question)
        self._tell(plan, "tool_specs", len(plan.questions), len(plan.questions), per_question)
        tools = merged[: self.settings.max_tools_per_domain]
        if self.settings.expansion_tools and len(tools) < self.settings.max_tools_per_domain:
            room = min(self.settings.expansion_tools, self.settings.max_tools_per_domain - len(tools))
            expansion = await self._stage(
                "expansion",
                plan,
                ["tool_expansion", "tool_expansion_repair"],
                TypeAdapter(list[ToolSpec]),
                lambda: expand_tools(self.model, domain, tools, max_new=room, seed=stage_seed(seed, name, "expand")),
                tools=tools,
                room=room,
            )
            tools = [*tools, *expansion.items]
        plan.tools = tools

    async def _return_schemas(self, plan: DomainPlan) -> None:
        domain, name, tools = plan.domain, plan.domain.name, plan.tools
        batch = await self._stage(
            "return_schemas",
            plan,
            ["return_schemas", "return_schemas_repair"],
            TypeAdapter(list[ToolSpec]),
            lambda: predict_return_schemas(self.model, domain, tools, seed=stage_seed(self.config.seed, name, "ret")),
            tools=tools,
        )
        if batch.items:
            plan.tools = batch.items
        if conflicts := field_type_conflicts(plan.tools):
            # Whatever the repair round left: reported, so a person can fix the tools file.
            plan.reports[-1].rejected.append(Rejection(label="field types across tools", reasons=conflicts))

    async def _policy(self, config: DomainConfig, plan: DomainPlan) -> None:
        if (supplied := config.policy_text) is not None:
            plan.policy = supplied
            return
        domain, name, tools = plan.domain, plan.domain.name, plan.tools
        batch = await self._stage(
            "policy",
            plan,
            ["policy", "policy_repair"],
            TypeAdapter(list[str]),
            lambda: generate_policy(self.model, domain, tools, seed=stage_seed(self.config.seed, name, "policy")),
            tools=tools,
        )
        plan.policy = batch.items[0] if batch.items else ""

    async def _tasks(self, config: DomainConfig, plan: DomainPlan) -> None:
        if config.tasks is not None:
            supplied = load_tasks(config.tasks, config.name)
            plan.tasks = [task for task in supplied if not task.is_followup]
            plan.followups = [task for task in supplied if task.is_followup]
            return
        domain, tools, database, settings = (
            plan.domain,
            plan.tools,
            plan.database,
            self.settings,
        )
        style: TaskStyle = "rubric" if self.config.mode == "task" else "descriptive"
        schema = database.schema.model_dump() if database else None
        policy = plan.policy
        executed = self.config.mode != "user"  # the tools run on the database the writer sees (task, user+exec)
        hard_kinds = hard_goal_kinds(policy=policy, tools=tools, database=database, executed=executed)
        count = settings.tasks_per_domain
        hard = sum(hard_goal_counts(count, settings.hard_goals, hard_kinds).values())
        parts = goal_batches(
            count, settings.tasks_per_batch, difficulty_counts(count, dict(settings.difficulty_mix.items())), hard
        )

        def write(part: GoalBatch, view: DataView | None, seed: int) -> Awaitable[ItemBatch[Task]]:
            return generate_tasks(
                self.model,
                domain,
                tools,
                style=style,
                count=part.size,
                difficulty_mix=dict(part.difficulties.items()),  # Mapping[str, float]: its keys are invariant
                hard_goals=part.hard_share,
                hard_kinds=part.hard_kinds(hard_kinds),
                policy=policy,
                database=database,
                view=view,
                today=self.config.dialogue.today,
                seed=seed,
            )

        batch = await self._goals(
            f"tasks_{style}",
            plan,
            [f"tasks_{style}", "tasks_parts", "tasks_repair"],
            parts,
            write,
            tools=tools,
            count=settings.tasks_per_domain,
            mix=settings.difficulty_mix,
            hard_goals=settings.hard_goals,
            hard_kinds=hard_kinds,
            policy=policy,
            database=schema,
            today=self.config.dialogue.today,
        )
        plan.tasks = batch.items
        # Follow-ups are written as descriptive goals; the task-oriented baseline chains primary tasks instead.
        multi_task = settings.tasks_per_dialogue[1] > 1 and self.config.mode != "task"
        if multi_task and settings.followups_per_domain and plan.tasks:
            primary = plan.tasks
            followups = await self._goals(
                "followups",
                plan,
                ["tasks_followup", "tasks_repair"],
                [settings.followups_per_domain],  # one request: each follow-up is written against every goal
                lambda count, view, seed: generate_followups(
                    self.model,
                    domain,
                    tools,
                    primary,
                    count=count,
                    extension_share=settings.followup_extension_share,
                    policy=policy,
                    database=database,
                    view=view,
                    today=self.config.dialogue.today,
                    seed=seed,
                ),
                tools=tools,
                primary=primary,
                count=settings.followups_per_domain,
                share=settings.followup_extension_share,
                policy=policy,
                database=schema,
                today=self.config.dialogue.today,
            )
            plan.followups = followups.items

    def _write_artifacts(self, plans: Sequence[DomainPlan]) -> None:
        store = self.store
        store.write_jsonl("questions", ({"domain": p.domain.name, "question": q} for p in plans for q in p.questions))
        store.write_jsonl(
            "tools",
            (
                {"domain": p.domain.name, **tool.model_dump(mode="json", exclude_none=True)}
                for p in plans
                for tool in (p.sql_tools or p.tools)
            ),
        )
        store.write_jsonl("policies", ({"domain": p.domain.name, "policy": p.policy} for p in plans))
        store.write_jsonl(
            "tasks",
            (
                {"domain": p.domain.name, "role": role, **task.model_dump(mode="json")}
                for p in plans
                for role, tasks in (("primary", p.tasks), ("followup", p.followups))
                for task in tasks
            ),
        )
        write_stage_reports(store, plans)


def write_stage_reports(store: ArtifactStore, plans: Sequence[DomainPlan]) -> None:
    """``artifacts/stage_reports.jsonl``: what each stage produced, dropped and used, where ``dialforge stats``
    finds the preparation's usage."""
    store.write_jsonl("stage_reports", (r.model_dump(mode="json") for p in plans for r in p.reports))
