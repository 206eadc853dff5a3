"""Tasks: the latent goals dialogues are generated for (docs/method.md, "Tasks").

Three stages share one check. ``generate_tasks`` writes *rubric* tasks for the task-oriented baseline, whose
description is the user's one message, sent word for word, so it is written in the first person ("Hi, I'm
Leonie Köhler, customer 2. Could you ..."), with success criteria, an expected tool pattern with placeholders
and checkpoints; or *descriptive* tasks for the user-oriented pipelines: the user's latent goal as one
self-contained statement written in the second person ("You are Leonie Köhler, customer 2. You want ..."),
the voice a user simulator is briefed in, with the requests the person will make (subtasks) and what the
assistant must achieve (success criteria, the judge's items). ``generate_followups`` writes the extra tasks
of longer dialogues: extensions of an earlier task's results (``follows`` names it) or independent
objectives in the same domain, each naming the earlier tasks whose person, in the role they have there,
would raise it (``asked_by``).

Every task must read as a real person's goal (long enough, concrete, no placeholders, no tool names, no
meta words) and use only tools that exist; a near-duplicate of a task already kept is dropped. With a
database, every record the task names must exist, and a task that changes data must carry read-only SQL
checks that are still false on the initial data, so that passing them shows the dialogue did the work.

A share of ``generate_tasks``'s goals cannot be done as asked, each labelled with its kind (``Task.kind``): the
writers are given the agent's policy, and the data confirms each kind. A missing record matches no row, an
ambiguous one two or more, and the checks of a goal the policy or the data refuses hold on the initial data,
since they assert that the record is left as it is.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

from sqlglot import exp

from dialforge.actors.generators.item_repair import Checked, ItemBatch, describe_failures, generate_items
from dialforge.actors.generators.offline_goals import OfflineGoals
from dialforge.actors.generators.readable_fields import ReadableFields
from dialforge.actors.generators.tool_specs import domain_description
from dialforge.actors.transcript import render_transcript
from dialforge.environments.sql.data_view import DataView
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment, parse_statement
from dialforge.environments.sql.schema import quote_identifier
from dialforge.generation_checks.meta_words import domain_vocabulary, meta_words
from dialforge.generation_checks.near_duplicates import near_duplicate_of
from dialforge.generation_checks.tools import changes_data, describe_tools, needs_account
from dialforge.llm.completion import ResponseSchema
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import (
    BATCH_ITEMS,
    DESCRIPTION_CHARS,
    ITEM_CHARS,
    LIST_ITEMS,
    LONG_TEXT_CHARS,
    NAME_CHARS,
)
from dialforge.model.domain import Domain, domain_slug
from dialforge.model.messages import Message, UserMessage
from dialforge.model.tasks import (
    HARD_GOAL_KINDS,
    UNCHANGED_KINDS,
    Check,
    Continuation,
    ContinuationKind,
    Difficulty,
    GoalKind,
    Rubric,
    SQLCheck,
    Task,
)
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_prompt, render_section

TaskStyle = Literal["rubric", "descriptive"]
TaskKind = Literal["rubric", "descriptive", "followup", "continuation"]
"""What a stage writes; also the middle part of the task ids (``chinook-followup-3``)."""

DIFFICULTIES: tuple[Difficulty, ...] = get_args(Difficulty)
MIN_DESCRIPTION_CHARS = 40
MAX_SUBTASKS = 5
NEAR_DUPLICATE_THRESHOLD = 0.8
NEAR_DUPLICATE_SHINGLE = 2
"""Word pairs: goals are long, so single words would make any two goals of a domain look alike."""

_PLACEHOLDER = re.compile(r"<[^<>\n]{1,60}>|\{[^{}\n]{1,60}\}")
_INSTRUCTS_ASSISTANT = re.compile(
    r"\b(?:the|an?|your) (?:ai |virtual )?(?:assistant|chatbot)"
    r"(?: (?:to|should|must|shall|will|would|needs? to|has to|is to|ought to|can|could|may)\b|:)",
    re.IGNORECASE,
)
"""Words that tell the helper what to do ("the assistant should ...", "you want the assistant to ..."); a goal may
still mention it ("you have gone through your invoices with the assistant")."""
_FIRST_PERSON = re.compile(r"\bI\b|\b(?i:me|my|mine|myself|we|our|ours)\b")
"""A word only a message in the user's own voice has: a request about the user ("Liam wants ...") has none."""
_CALL = re.compile(r"\s*([A-Za-z_][\w-]*)\s*\(")
_NO_POLICY = "(none given: the assistant helps with whatever its tools serve)"
_LOOKED_UP_KINDS = ("missing_entity", "ambiguous_entity")
"""Kinds whose goal names a detail at issue (``lookup``), looked up in the database: no row, or several."""


def _now(today: datetime | None) -> str:
    """The date the goals' people live on: the conversations' own date when the config fixes one."""
    if today is not None:
        return f"Today, for the people in these goals, is {today:%A}, {today:%Y-%m-%d}."
    return (
        "The date is not fixed: each conversation takes place on a day of its own. Name records by their ids, "
        'names or dates, never by how long ago something happened ("yesterday", "last week").'
    )


async def generate_tasks(
    model: ChatModel,
    domain: Domain,
    tools: Sequence[ToolSpec],
    *,
    style: TaskStyle,
    count: int,
    difficulty_mix: Mapping[str, float],
    hard_goals: float = 0.0,
    hard_kinds: Sequence[GoalKind] = (),
    policy: str = "",
    database: SQLDatabase | None = None,
    view: DataView | None = None,
    today: datetime | None = None,
    seed: int = 0,
) -> ItemBatch[Task]:
    """Up to ``count`` tasks of ``style``, asked for in ``difficulty_mix`` proportions, checked, repaired once;
    ``hard_goal_counts(count, hard_goals, hard_kinds)`` of them goals that cannot be done as asked, labelled
    with their kind (``hard_goal_kinds`` says which a domain supports), the rest ``ordinary``. The writer sees
    ``view`` of the database (by default one drawn with ``seed``).

    Raises ``ValueError`` for a difficulty mix that names an unknown difficulty or has no positive weight.
    """
    counts = difficulty_counts(count, difficulty_mix)
    mix = ", ".join(f"{number} {difficulty}" for difficulty, number in counts.items() if number)
    kinds = {kind: number for kind, number in hard_goal_counts(count, hard_goals, hard_kinds).items() if number}
    values = {"difficulty_mix": mix, "hard_goals": _hard_goals_section(count, kinds, sql=database is not None)}
    return await _generate(
        model,
        domain,
        tools,
        style,
        database,
        count=count,
        seed=seed,
        today=today,
        values=values,
        policy=policy,
        goal_kinds=tuple(kinds),
        view=view,
    )


async def generate_followups(
    model: ChatModel,
    domain: Domain,
    tools: Sequence[ToolSpec],
    previous: Sequence[Task],
    *,
    count: int,
    extension_share: float,
    policy: str = "",
    database: SQLDatabase | None = None,
    view: DataView | None = None,
    today: datetime | None = None,
    seed: int = 0,
) -> ItemBatch[Task]:
    """Up to ``count`` follow-up tasks, extensions of ``previous`` and independent ones as ``followup_split``
    decides from the tools; the batch's note says how many of each were asked for, and why.

    Raises ``ValueError`` for a share outside 0..1.
    """
    split = followup_split(tools, count, extension_share, previous=bool(previous))
    values = {
        "extensions": split.extensions,
        "independent": split.independent,
        "open_tools": ", ".join(tool.name for tool in tools if not needs_account(tool)) or "none",
        "previous": "\n".join(_shown(task) for task in previous) or "(none)",
    }
    batch = await _generate(
        model,
        domain,
        tools,
        "followup",
        database,
        count=split.extensions + split.independent,
        seed=seed,
        today=today,
        values=values,
        previous=previous,
        policy=policy,
        view=view,
    )
    batch.notes.append(split.note)
    return batch


@dataclass(frozen=True)
class FollowupSplit:
    """How many follow-ups to ask for of each kind, and why, as the stage report says."""

    extensions: int
    independent: int
    note: str


def followup_split(tools: Sequence[ToolSpec], count: int, extension_share: float, *, previous: bool) -> FollowupSplit:
    """The configured share of extensions, unless the tools rule a kind out: without earlier goals nothing can be
    extended, and when every tool needs an account, nothing can be independent (an independent follow-up touches
    no one's account), so those follow-ups are extensions.

    Raises ``ValueError`` for a share outside 0..1.
    """
    if not 0 <= extension_share <= 1:
        raise ValueError(f"extension_share is a share between 0 and 1, not {extension_share}")
    extensions = round(count * extension_share) if previous else 0
    open_tools = [tool.name for tool in tools if not needs_account(tool)]
    asked = f"{count} follow-ups asked for with extension_share {extension_share:g}"
    if open_tools or count == extensions:
        open_share = f"{len(open_tools)} of {len(tools)} tools need no account"
        return FollowupSplit(
            extensions,
            count - extensions,
            f"{asked}: {extensions} extensions, {count - extensions} independent; "
            f"{open_share}" + ("" if previous else "; there is no earlier goal to extend"),
        )
    why = "every tool needs an account, and an independent follow-up touches none"
    if not previous:
        return FollowupSplit(0, 0, f"{asked}: none written: there is no earlier goal to extend, and {why}")
    return FollowupSplit(count, 0, f"{asked}: all {count} are extensions: {why}")


CONTINUATION_PROMPTS = ("tasks_continuation", "tasks_parts", "tasks_repair")
"""The packaged prompts a continuation goal's requests are made of."""


async def generate_continuation(
    model: ChatModel,
    domain: Domain,
    tools: Sequence[ToolSpec],
    conversation: Sequence[Message],
    *,
    policy: str = "",
    database: SQLDatabase | None = None,
    today: datetime | None = None,
    seed: int = 0,
) -> ItemBatch[Task]:
    """One goal that the person in ``conversation`` would plausibly pursue next and that needs the tools:
    how an ongoing chat, perhaps one without any tool use, gets a tool-use need injected (``extend``). With a
    policy, the goal may be ``forbidden``: what the conversation asks for may be what the policy refuses."""
    kinds: tuple[GoalKind, ...] = ("forbidden",) if policy.strip() else ()
    data = f"\n\n{render_section('tasks_parts', 'unchanged_checks')}" if database is not None else ""
    values = {
        "conversation": render_transcript(conversation) or "(the conversation has not started)",
        "kind": f"\n{render_section('tasks_parts', 'continuation_kind', data=data)}\n" if kinds else "",
    }
    return await _generate(
        model,
        domain,
        tools,
        "continuation",
        database,
        count=1,
        seed=seed,
        today=today,
        values=values,
        policy=policy,
        goal_kinds=kinds,
    )


def difficulty_counts(count: int, mix: Mapping[str, float]) -> dict[Difficulty, int]:
    """How many tasks of each difficulty ``count`` tasks hold under ``mix`` (largest-remainder rounding).

    The weights need not sum to 1; ties go to the easier difficulty.
    """
    unknown = sorted(set(mix) - set(DIFFICULTIES))
    if unknown:
        raise ValueError(f"the difficulty mix names {unknown}; the difficulties are {list(DIFFICULTIES)}")
    if any(weight < 0 for weight in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"the difficulty mix needs non-negative weights with a positive sum, not {dict(mix)}")
    total = sum(mix.values())
    quotas = {difficulty: count * mix.get(difficulty, 0) / total for difficulty in DIFFICULTIES}
    counts = {difficulty: int(quota) for difficulty, quota in quotas.items()}
    by_remainder = sorted(DIFFICULTIES, key=lambda difficulty: counts[difficulty] - quotas[difficulty])
    for difficulty in by_remainder[: count - sum(counts.values())]:
        counts[difficulty] += 1
    return counts


def hard_goal_kinds(
    *, policy: str, tools: Sequence[ToolSpec], database: SQLDatabase | None, executed: bool
) -> list[GoalKind]:
    """The kinds of goals that cannot be done as asked which a domain can support, so that the writer can base
    them on facts and the check can confirm them: ``forbidden`` needs a policy to forbid something; the others
    need the database the writer sees to be the one the tools run on (``executed``: a model playing the tools
    would invent the record that should be missing): ``constraint`` also needs a tool that changes data,
    ``missing_entity`` and ``ambiguous_entity`` are looked up in it."""
    grounded = database is not None and executed
    supported = {
        "forbidden": bool(policy.strip()),
        "constraint": grounded and any(changes_data(tool) for tool in tools),
        "missing_entity": grounded,
        "ambiguous_entity": grounded,
    }
    return [kind for kind in HARD_GOAL_KINDS if supported[kind]]


def hard_goal_counts(count: int, share: float, kinds: Sequence[GoalKind]) -> dict[GoalKind, int]:
    """How many of ``count`` goals of each of ``kinds`` to ask for: ``share`` of them rounded half up, spread
    evenly, the earlier kinds taking the remainder; none without kinds."""
    if not 0 <= share <= 1:
        raise ValueError(f"the share of goals that cannot be done as asked is between 0 and 1, not {share}")
    total = math.floor(count * share + 0.5) if kinds else 0
    return {kind: total // len(kinds) + (index < total % len(kinds)) for index, kind in enumerate(kinds)}


def task_id(slug: str, kind: str, description: str) -> str:
    """An id that names the goal itself: a regenerated stage never gives an old id to a different goal."""
    digest = hashlib.blake2b(description.encode(), digest_size=4).hexdigest()
    return f"{slug}-{kind}-{digest}"


async def _generate(
    model: ChatModel,
    domain: Domain,
    tools: Sequence[ToolSpec],
    kind: TaskKind,
    database: SQLDatabase | None,
    *,
    count: int,
    seed: int,
    today: datetime | None,
    values: Mapping[str, object],
    previous: Sequence[Task] = (),
    policy: str = "",
    goal_kinds: Sequence[GoalKind] = (),
    view: DataView | None = None,
) -> ItemBatch[Task]:
    """What the three stages share: the prompt's common parts, the check, the repair, the ids. ``goal_kinds`` are
    the kinds of goals that cannot be done as asked which the prompt asks for; each goal then carries its kind.
    The writer sees ``view`` of the database, or one drawn with ``seed``."""
    if count <= 0:
        return ItemBatch()
    if database is not None and view is None:
        view = database.data_view(seed=seed)
    readable = _readable_fields(tools, database)
    prompt = render_prompt(
        f"tasks_{kind}",
        domain=domain.name,
        description=domain_description(domain),
        now=_now(today),
        tools=describe_tools(tools, with_returns=True) or "(no tools)",
        writes=", ".join(tool.name for tool in tools if changes_data(tool)) or "none",
        data_section=_data_section(database, view),
        policy=policy.strip() or _NO_POLICY,
        result_fields=readable.listing(),
        count=count,
        min_chars=MIN_DESCRIPTION_CHARS,
        max_subtasks=MAX_SUBTASKS,
        **values,
    )

    def repair(failed: Sequence[Checked[Task]], accepted: Sequence[Task]) -> str:
        kept = "\n".join(f"- {task.description}" for task in accepted) or "(none)"
        return render_prompt("tasks_repair", failures=describe_failures(failed), count=len(failed), accepted=kept)

    environment = database.environment(()) if database is not None else None
    check = _TaskCheck(
        kind,
        {tool.name: tool for tool in tools},
        domain_vocabulary(domain.name, domain.description, tools=tools),
        previous,
        environment,
        readable,
        frozenset(goal_kinds),
    )
    response_format = _task_format(kind, sql=database is not None, goal_kinds=goal_kinds)
    offline = OfflineGoals.for_request(
        domain=domain.name,
        tools=tools,
        readable=readable,
        properties=response_format.json_schema["properties"]["tasks"]["items"]["properties"],
        count=count,
        first_person=kind == "rubric",
        previous=[task.id for task in previous],
        continuation={"how": "new_need", "why": "a placeholder goal of the offline dry run, which reads nothing"},
    )
    try:
        batch = await generate_items(
            model,
            [UserMessage(content=prompt)],
            response_format,
            entries=lambda parsed: parsed["tasks"],
            check=check,
            repair_instruction=repair,
            limit=count,
            seed=seed,
            offline_answer=offline,
        )
    finally:
        if environment is not None:
            environment.close()
    slug = domain_slug(domain.name)
    batch.items = [task.model_copy(update={"id": task_id(slug, kind, task.description)}) for task in batch.items]
    return batch


def _data_section(database: SQLDatabase | None, view: DataView | None) -> str:
    """What the writer is shown of the data: the database's schema and view, a view of a Python environment's
    records (``environments/state_view.py``), or that nothing is shown."""
    if database is not None:
        assert view is not None
        return render_section("tasks_parts", "database", schema=database.schema.to_prompt(), data_view=view.text)
    if view is not None:
        return render_section("tasks_parts", "state", data_view=view.text)
    return render_section("tasks_parts", "no_data")


def _readable_fields(tools: Sequence[ToolSpec], database: SQLDatabase | None) -> ReadableFields:
    """What the tools can show a person; a SQL tool's fields are its statement's, read on the database."""
    if database is None:
        return ReadableFields.of(tools)
    environment = database.environment(())
    try:
        return ReadableFields.of(tools, environment)
    finally:
        environment.close()


@dataclass
class _TaskCheck:
    """The checks every task stage applies; ``environment`` is the initial database state, when there is one."""

    kind: TaskKind
    tools: Mapping[str, ToolSpec]
    vocabulary: str
    previous: Sequence[Task]
    environment: SQLEnvironment | None
    readable: ReadableFields
    goal_kinds: frozenset[GoalKind] = frozenset()
    """the kinds of goals that cannot be done as asked which were asked for; any other goal is ordinary"""

    def __call__(self, entries: Sequence[Any], accepted: Sequence[Task]) -> list[Checked[Task]]:
        kept = [task.description for task in (*self.previous, *accepted)]
        verdicts = []
        for number, entry in enumerate(entries, start=1):
            verdict = self._checked(entry, number, kept)
            if verdict.item is not None:
                kept.append(verdict.item.description)
            verdicts.append(verdict)
        return verdicts

    def _checked(self, entry: dict[str, Any], number: int, kept: Sequence[str]) -> Checked[Task]:
        rubric, sql = self.kind == "rubric", self.environment is not None
        description = entry["description"].strip()
        subtasks = [] if rubric else _texts(entry["subtasks"])
        pattern = _texts(entry["expected_tool_pattern"]) if rubric else []
        called = [match.group(1) for step in pattern if (match := _CALL.match(step))]
        tools = list(dict.fromkeys([*_texts(entry["tools"]), *called]))
        asks_to_see = list(dict.fromkeys(_texts(entry["asks_to_see"])))
        difficulty = entry["difficulty"].strip().casefold()
        follows = (entry["follows"] or None) if self.kind == "followup" else None
        asked_by = _texts(entry["asked_by"]) if self.kind == "followup" and follows is None else []
        checks = [SQLCheck(description=c["description"], sql=c["sql"]) for c in entry["checks"]] if sql else []
        writes = [name for name in tools if name in self.tools and changes_data(self.tools[name])]
        goal_kind = str(entry.get("kind") or "ordinary").strip()
        reasons = [
            *self._goal_problems(description, subtasks, difficulty),
            *self._tool_problems(tools, pattern),
            *self._reach_problems(asks_to_see),
            *self._rubric_problems(entry, pattern),
            *self._follows_problems(follows, asked_by, tools),
            *self._data_problems(entry["entities"] if sql else [], checks, writes, goal_kind in UNCHANGED_KINDS),
            *self._kind_problems(goal_kind, entry.get("lookup")),
        ]
        if twin := near_duplicate_of(description, kept, NEAR_DUPLICATE_THRESHOLD, size=NEAR_DUPLICATE_SHINGLE):
            reasons.append(f"the task is a near-duplicate of one already kept ({twin!r}); write a different goal")
        label = description[:80] or f"task {number}"
        if reasons:
            return Checked(entry, label, None, reasons)
        task = Task(
            id="",
            description=description,
            difficulty=cast(Difficulty, difficulty),
            kind=cast(GoalKind, goal_kind),
            rubric=Rubric(
                success_criteria=_texts(entry["success_criteria"]),
                expected_tool_pattern=pattern,
                checkpoints=_texts(entry["checkpoints"]) if rubric else [],
            ),
            subtasks=subtasks,
            follows=follows,
            asked_by=asked_by,
            tools=tools,
            asks_to_see=asks_to_see,
            checks=list[Check](checks),
            continuation=Continuation.model_validate(entry["continuation"]) if self.kind == "continuation" else None,
        )
        return Checked(entry, label, task)

    def _goal_problems(self, description: str, subtasks: Sequence[str], difficulty: str) -> list[str]:
        """Whether the goal reads as a real person's: concrete, complete, in their words, split into steps."""
        reasons = []
        if len(description) < MIN_DESCRIPTION_CHARS:
            reasons.append(
                f"the description is {len(description)} characters long; state the whole goal, with the concrete "
                f"details it needs, in at least {MIN_DESCRIPTION_CHARS}"
            )
        text = "\n".join([description, *subtasks])
        if placeholder := _PLACEHOLDER.search(text):
            reasons.append(
                f"the task has the unfilled placeholder {placeholder.group(0)!r}; write the concrete value, "
                "or say that it is to be looked up"
            )
        if found := meta_words(text, self.vocabulary):
            reasons.append(
                f"the task uses words that give away a generated setting ({', '.join(found)}); "
                "write it as a real person's goal"
            )
        if named := [name for name in self.tools if _is_code_name(name) and re.search(rf"\b{re.escape(name)}\b", text)]:
            reasons.append(
                f"the task names the tools {', '.join(named)}; the person does not know the tools: "
                "say what they want done"
            )
        if difficulty not in DIFFICULTIES:
            reasons.append(f"difficulty {difficulty!r} is not one of {', '.join(DIFFICULTIES)}")
        if self.kind == "rubric":
            if not _FIRST_PERSON.search(description):
                reasons.append(
                    "the description is written about the user, not by them, and the assistant receives it word "
                    "for word as the user's message: write it as the user types it, in the first person "
                    '("Hi, I\'m ... Could you ...")'
                )
            return reasons
        if told := _INSTRUCTS_ASSISTANT.search(text):
            reasons.append(
                f"the task tells the assistant what to do ({told.group(0)!r}); write the person's own goal, not "
                "instructions for whoever helps them"
            )
        if not subtasks:
            reasons.append("the task lists no subtasks; list the requests the person will make, in order")
        elif difficulty in ("medium", "hard") and len(subtasks) < 2:
            reasons.append(
                f"a {difficulty} task has 2 to {MAX_SUBTASKS} subtasks, this one has 1; split the goal into the "
                "requests the person will make one by one"
            )
        elif len(subtasks) > MAX_SUBTASKS:
            reasons.append(
                f"the task has {len(subtasks)} subtasks; keep at most {MAX_SUBTASKS} and leave the rest for "
                "another task"
            )
        return reasons

    def _tool_problems(self, tools: Sequence[str], pattern: Sequence[str]) -> list[str]:
        reasons = []
        if not tools:
            reasons.append("the task names no tools; list the tools it needs")
        reasons += [
            f"expected_tool_pattern step {number} ({step!r}) is not a tool call; write it as "
            "tool_name(argument=value), with a <placeholder> for a value an earlier result provides"
            for number, step in enumerate(pattern, start=1)
            if not _CALL.match(step)
        ]
        reasons += [
            f"unknown tool {name!r}{_did_you_mean(name, self.tools)}" for name in tools if name not in self.tools
        ]
        return reasons

    def _reach_problems(self, asks_to_see: Sequence[str]) -> list[str]:
        """Whether the tools return every fact the person asks to be told: one that none returns can never be."""
        missing = self.readable.unreachable(asks_to_see)
        if not missing:
            return []
        named = " and ".join(repr(name) for name in missing)
        return [
            f"the goal asks to see {named}, which no tool returns, so the person could never be told it; the "
            f"tools return {self.readable.listing()}. List in asks_to_see only fields from these, and take out of "
            "the goal what no tool can tell"
        ]

    def _rubric_problems(self, entry: dict[str, Any], pattern: Sequence[str]) -> list[str]:
        reasons = []
        if not _texts(entry["success_criteria"]):
            reasons.append(
                "the task has no success criteria; say what the assistant must achieve: what must be true or "
                "answered at the end"
            )
        if self.kind == "rubric" and not pattern:
            reasons.append("the rubric has no expected tool pattern; list the calls, in order")
        return reasons

    def _follows_problems(self, follows: str | None, asked_by: Sequence[str], tools: Sequence[str]) -> list[str]:
        """Whether a follow-up names the earlier task it extends, or, when independent, the earlier tasks whose
        person would raise it (it is only ever added to those dialogues) and leaves every account alone."""
        ids = [task.id for task in self.previous]
        listed = ", ".join(ids) or "there are none"
        if self.kind != "followup":
            return []
        if follows is not None:
            if follows in ids:
                return []
            return [
                f"follows names {follows!r}, which is not one of the earlier tasks ({listed}); give one of their ids, "
                "or null for an independent task"
            ]
        reasons = [
            f"asked_by names {name!r}, which is not one of the earlier tasks ({listed}); list only their ids"
            for name in asked_by
            if name not in ids
        ]
        if ids and not asked_by:
            reasons.append(
                "the independent task names no earlier task in asked_by; list the ids of the earlier tasks whose "
                "person, in the role they have there, would plausibly ask for it next"
            )
        if personal := [name for name in tools if name in self.tools and needs_account(self.tools[name])]:
            open_tools = ", ".join(name for name, tool in self.tools.items() if not needs_account(tool)) or "none"
            reasons.append(
                f"the independent task uses {', '.join(personal)}, which only work on someone's account, and an "
                f"independent task touches no one's account: use only tools that need none ({open_tools}), or make "
                "it an extension of an earlier task (follows)"
            )
        return reasons

    def _data_problems(
        self, entities: Sequence[dict[str, Any]], checks: Sequence[SQLCheck], writes: Sequence[str], unchanged: bool
    ) -> list[str]:
        """With a database: the records named exist, and the checks can tell that the task was done, or, for a
        change the policy or the data refuses (``unchanged``), that it was not."""
        if self.environment is None:
            return []
        reasons = [problem for entity in entities if (problem := self._entity_problem(entity))]
        if writes and not checks and unchanged:
            reasons.append(
                f"the goal asks for a change the policy or the data refuses (with {', '.join(writes)}) but has no "
                "check; add a read-only SELECT that is true now and stays true only while the record is left as "
                "it is"
            )
        elif writes and not checks:
            reasons.append(
                f"the task changes data (with {', '.join(writes)}) but has no check; a goal that changes data in "
                "any of its branches carries checks that hold in every branch: add a read-only SELECT whose first "
                "value is true once the goal is done, whichever way its conditions and fallbacks turn out, and false "
                "now; if on this data the goal changes nothing, leave out the tools that change data"
            )
        if checks and not writes:
            reasons.append(
                "the task has checks, but none of its tools changes data; add the tool that makes the change, or "
                "leave checks empty for a goal that only looks things up"
            )
        for number, check in enumerate(checks, start=1):
            reasons += self._check_problems(number, check.sql, bool(writes), unchanged)
        return reasons

    def _kind_problems(self, kind: str, lookup: dict[str, Any] | None) -> list[str]:
        """Whether the goal is of a kind asked for, and a missing or ambiguous record is really so in the data."""
        allowed = ["ordinary", *(k for k in HARD_GOAL_KINDS if k in self.goal_kinds)]
        if kind not in allowed:
            return [f"kind {kind!r} is not one asked for; give one of {', '.join(allowed)}"]
        if kind not in _LOOKED_UP_KINDS or self.environment is None:
            return []
        if not lookup:
            return [f"a {kind} goal gives the detail at issue in lookup, as table, column and value"]
        matched = self._matching_rows(lookup, "lookup")
        if isinstance(matched, str):
            return [matched]
        where, rows = matched
        if kind == "missing_entity" and rows:
            return [
                f"lookup {where} is in the data, so the record is not missing: name a value that no row has, as "
                "the person would believe it to be"
            ]
        if kind == "ambiguous_entity" and rows < 2:
            return [
                f"lookup {where} matches {rows} row{'s' if rows != 1 else ''}; an ambiguous_entity goal names a "
                "detail that two or more records share"
            ]
        return []

    def _entity_problem(self, entity: dict[str, Any]) -> str | None:
        matched = self._matching_rows(entity, "entity")
        if isinstance(matched, str):
            return matched
        where, rows = matched
        return None if rows else f"entity {where} is not in the data"

    def _matching_rows(self, entity: dict[str, Any], label: str) -> tuple[str, int] | str:
        """``(table.column = value, rows matching: 0, 1 or 2 for two or more)``, or why it cannot be looked up."""
        assert self.environment is not None
        schema = self.environment.database.schema
        tables = {table.name.casefold(): table for table in schema.tables}
        table = tables.get(entity["table"].casefold())
        if table is None:
            suggestion = _did_you_mean(entity["table"], [table.name for table in schema.tables])
            return f"{label} table {entity['table']!r} is not in the schema{suggestion}"
        columns = {column.name.casefold(): column for column in table.columns}
        column = columns.get(entity["column"].casefold())
        if column is None:
            suggestion = _did_you_mean(entity["column"], [column.name for column in table.columns])
            return f"{label} column {table.name}.{entity['column']} is not in the schema{suggestion}"
        found = self.environment.query(
            f"SELECT COUNT(*) AS found FROM (SELECT 1 FROM {quote_identifier(table.name)} "
            f"WHERE {quote_identifier(column.name)} = :value LIMIT 2)",
            {"value": entity["value"]},
        )
        where = f"{table.name}.{column.name} = {entity['value']!r}"
        if found.error is not None:
            return f"{label} {where} could not be looked up: {found.error.message}"
        return where, int(found.content[0]["found"])

    def _check_problems(self, number: int, sql: str, changes: bool, unchanged: bool) -> list[str]:
        assert self.environment is not None
        try:
            statement = parse_statement(sql)
        except ValueError as exc:
            return [f"check {number} is not one read-only SELECT: {exc}"]
        if isinstance(statement, exp.Insert | exp.Update | exp.Delete):
            return [
                f"check {number} changes data ({statement.key.upper()}); a check only reads: write one SELECT "
                "whose first value is true once the task is done"
            ]
        result = self.environment.query(sql)
        if result.error is not None:
            return [f"check {number} does not run on the database: {result.error.message}"]
        holds = self.environment.check(sql)[0]
        if changes and unchanged and not holds:
            return [
                f"check {number} is false on the data now; the change this goal asks for is refused, so its checks "
                "assert that the record is left as it is: true now, and false only if the refused change were made"
            ]
        if changes and not unchanged and holds:
            return [f"check {number}: the check already holds before the dialogue, so it cannot show the task was done"]
        return []


def _task_format(kind: TaskKind, *, sql: bool, goal_kinds: Sequence[GoalKind] = ()) -> ResponseSchema:
    """The reply's shape for ``kind``, with each goal's kind when ``goal_kinds`` are asked for; values (difficulty,
    tool names, SQL) are checked per task, not here."""
    strings = {"type": "array", "maxItems": LIST_ITEMS, "items": {"type": "string", "maxLength": ITEM_CHARS}}
    fields: dict[str, Any] = {
        "description": {"type": "string", "maxLength": DESCRIPTION_CHARS},
        "difficulty": {"type": "string", "maxLength": NAME_CHARS, "description": "easy, medium or hard"},
    }
    if kind == "rubric":
        fields |= {"success_criteria": strings, "expected_tool_pattern": strings, "checkpoints": strings}
    else:
        fields |= {"subtasks": strings, "success_criteria": strings}
    fields["tools"] = strings
    fields["asks_to_see"] = strings
    if kind == "followup":
        fields |= {"follows": {"type": ["string", "null"], "maxLength": NAME_CHARS}, "asked_by": strings}
    if goal_kinds:
        fields["kind"] = {"type": "string", "enum": ["ordinary", *goal_kinds]}
    if kind == "continuation":
        fields["continuation"] = {
            "type": "object",
            "properties": {
                "how": {"type": "string", "enum": list(get_args(ContinuationKind))},
                "why": {"type": "string", "maxLength": ITEM_CHARS},
            },
            "required": ["how", "why"],
        }
    if sql:
        entity = {
            "table": {"type": "string", "maxLength": NAME_CHARS},
            "column": {"type": "string", "maxLength": NAME_CHARS},
            "value": {"type": ["string", "number"], "maxLength": ITEM_CHARS},
        }
        check = {
            "description": {"type": "string", "maxLength": ITEM_CHARS},
            "sql": {"type": "string", "maxLength": LONG_TEXT_CHARS},
        }
        record = {"type": "object", "properties": entity, "required": list(entity)}
        checks = {"type": "object", "properties": check, "required": list(check)}
        fields |= {
            "entities": {"type": "array", "maxItems": LIST_ITEMS, "items": record},
            "checks": {"type": "array", "maxItems": LIST_ITEMS, "items": checks},
        }
        if any(goal_kind in _LOOKED_UP_KINDS for goal_kind in goal_kinds):
            fields["lookup"] = {"anyOf": [record, {"type": "null"}]}
    task = {"type": "object", "properties": fields, "required": list(fields)}
    return ResponseSchema(
        name=f"{kind}_tasks",
        json_schema={
            "type": "object",
            "properties": {"tasks": {"type": "array", "maxItems": BATCH_ITEMS, "items": task}},
            "required": ["tasks"],
        },
    )


def _hard_goals_section(count: int, kinds: Mapping[GoalKind, int], *, sql: bool) -> str:
    """The prompt's passage asking for goals that cannot be done as asked, ``kinds`` of them (each kind explained),
    or nothing when none is asked for; it follows the passage on changes to data."""
    if not kinds:
        return ""
    mix = ", ".join(f"{number} {kind}" for kind, number in kinds.items())
    explained = "\n".join(render_section("tasks_parts", kind) for kind in kinds)
    fields = [
        *(["lookup"] if sql and any(kind in _LOOKED_UP_KINDS for kind in kinds) else []),
        *(["unchanged_checks"] if sql and any(kind in UNCHANGED_KINDS for kind in kinds) else []),
    ]
    data = "".join(f"\n\n{render_section('tasks_parts', field)}" for field in fields)
    section = render_section(
        "tasks_parts", "hard_goals", count=count, hard=sum(kinds.values()), mix=mix, kinds=explained, data=data
    )
    return f"\n\n{section}"


def _texts(values: Sequence[str]) -> list[str]:
    return [stripped for value in values if (stripped := value.strip())]


def _is_code_name(name: str) -> bool:
    """A name no sentence uses by accident (``get_order``, ``getOrder``), unlike a tool named ``search``."""
    return not (name.isalpha() and name.islower())


def _did_you_mean(name: str, candidates: Sequence[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else "; no name is similar"


def _shown(task: Task) -> str:
    """An earlier task as the follow-up prompt lists it: id, difficulty, goal, tools."""
    return f"- {task.id} ({task.difficulty}; tools: {', '.join(task.tools) or 'none'}): {task.description}"
