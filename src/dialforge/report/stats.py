"""Statistics of a run's dialogues: the paper's Table 1 per (mode, domain) and overall, and more.

Table 1 of arXiv 2601.08225 (docs/method.md) gives Step, Turn and Task as "mean (max) per dialogue",
with the quantities counted as ``pipeline/dialogue_stats.py`` does and stored in each record's ``stats``:
Turn is every message (user, assistant text, each tool call, each tool output), Step is one tool-use
iteration (``steps`` per dialogue; ``max_steps_per_request`` is the longest run of them for one user
request), Task is goals completed. The table covers the kept dialogues: the completed ones, truncated ones
with the goals they kept; the failed ones and the truncated ones are counted beside it, with every goal
assigned, completed in a kept dialogue, dropped by a truncation or left in a failed dialogue.

Beyond the table: tool calls per dialogue, the tool error rate (tool errors / tool calls), the judge's
verdicts and pass rate (valid / judged) with rubric items and SQL checks passed by category (InvalidRubric
items are counted: they have no pass or fail), failure reasons (grouped, see ``failure_reason``), guards
fired, tokens and seconds per dialogue per role, diversity: distinct tools used, near-duplicate first
user messages and distinct tool-name sequences, goal reuse (``reuse.py``), how the goals spread over the data
(``goal_spread.py``) and the unhappy paths: goals per kind and injected tool faults (``unhappy_paths.py``).
What the whole run spent, preparation included, and what its ledger counted (retries, failed calls, output
problems) are ``run_usage.py``'s.

Near-duplicates use the Jaccard similarity of normalized word shingles (``near_duplicates.py``); to stay
fast on tens of thousands of records, candidates are found by prefix filtering: with shingles in one global
order (rarest first), two sets with Jaccard >= t must share one of the first ``n - ceil(t * n) + 1`` shingles
of each, so only texts sharing such a shingle are ever compared. The result is exact, not an estimate.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from dialforge.generation_checks.near_duplicates import shingles
from dialforge.llm.accounting import Price
from dialforge.model.dialogue import Dialogue, upgrade_stats
from dialforge.model.usage import USAGE_BY_ROLE, UsageByRole, usage_sum
from dialforge.report.goal_spread import GoalSpread, read_goal_spread
from dialforge.report.reuse import AvailableGoals, GoalReuse, GoalRole, goal_reuse, read_available_goals
from dialforge.report.run_usage import (
    RunModelCalls,
    RunUsage,
    read_model_calls,
    read_preparation_usage,
    read_prices,
    run_usage,
)
from dialforge.report.unhappy_paths import DialogueUnhappyPaths, UnhappyPaths, dialogue_unhappy_paths, unhappy_paths

NEAR_DUPLICATE_THRESHOLD = 0.8
"""Jaccard similarity of word shingles from which two first user messages count as near-duplicates."""

_ACTOR_KIND = re.compile(r"^(\w+): (\w+):")
_DIGITS = re.compile(r"\d+")
_KNOWN_FAILURES = (
    (re.compile(r"^the dialogue reached \d+ turns"), "max_turns"),
    (re.compile(r"^the agent repeated the call "), "repeated_tool_call"),
    (re.compile(r"^the (?:user|agent) repeated the message "), "repeated_message"),
)


class MeanMax(BaseModel):
    """A per-dialogue quantity as the paper's table shows it: mean (max)."""

    mean: float = 0.0
    max: int = 0
    total: int = 0

    def __str__(self) -> str:
        return f"{self.mean:.2f} ({self.max})"


class RoleUsage(BaseModel):
    """One role's model usage: totals over the dialogues and means per dialogue."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    seconds: float = 0.0
    calls_per_dialogue: float = 0.0
    prompt_tokens_per_dialogue: float = 0.0
    completion_tokens_per_dialogue: float = 0.0
    reasoning_tokens_per_dialogue: float = 0.0
    seconds_per_dialogue: float = 0.0


class PassRate(BaseModel):
    passed: int = 0
    total: int = 0
    rate: float | None = None


class Judging(BaseModel):
    """The judge's verdicts: ``valid``, ``invalid`` and ``unjudged`` (no judgment) counts."""

    verdicts: dict[str, int] = Field(default_factory=dict)
    judged: int = 0
    pass_rate: float | None = Field(default=None, description="valid / judged; None when nothing was judged")
    rubric_items: dict[str, PassRate] = Field(default_factory=dict, description="rubric category -> items passed")
    invalid_rubric_items: int = Field(default=0, description="items the judge found wrong in themselves: no pass/fail")
    checks: PassRate = Field(default_factory=PassRate, description="SQL checks passed")


class Diversity(BaseModel):
    distinct_tools: int = 0
    tools_offered: int = 0
    tool_usage: dict[str, int] = Field(default_factory=dict, description="tool name -> calls, most used first")
    first_user_messages: int = 0
    near_duplicate_first_user_messages: int = 0
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD
    near_duplicate_examples: list[tuple[str, str]] = Field(
        default_factory=list, description="(dialogue id, id of the earlier one it nearly repeats), the first few"
    )
    distinct_tool_sequences: int = 0
    dialogues_with_tool_calls: int = 0


class Goals(BaseModel):
    """Every goal assigned, in exactly one of three places."""

    assigned: int = 0
    completed: int = Field(default=0, description="completed in a kept dialogue")
    dropped: int = Field(default=0, description="given up by a truncated dialogue")
    in_failed: int = Field(default=0, description="assigned to a failed dialogue")


class GroupStatistics(BaseModel):
    """Everything for one (mode, domain), or for the whole run (mode and domain ``"all"``).

    Table 1's figures (``step``, ``turn``, ``task``, ``max_steps_per_request``, ``tool_calls``) are over the
    ``kept`` dialogues; the rest over all of them."""

    mode: str
    domain: str
    dialogues: int = 0
    kept: int = Field(default=0, description="completed dialogues, the truncated ones included")
    truncated: int = 0
    failed: int = 0
    step: MeanMax = Field(default_factory=MeanMax)
    turn: MeanMax = Field(default_factory=MeanMax)
    task: MeanMax = Field(default_factory=MeanMax)
    max_steps_per_request: MeanMax = Field(default_factory=MeanMax)
    tool_calls: MeanMax = Field(default_factory=MeanMax)
    failed_turn: MeanMax = Field(default_factory=MeanMax, description="turns of the failed dialogues")
    goals: Goals = Field(default_factory=Goals)
    tool_errors: int = 0
    tool_error_rate: float | None = Field(default=None, description="tool errors / tool calls")
    judging: Judging = Field(default_factory=Judging)
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    truncation_reasons: dict[str, int] = Field(default_factory=dict, description="why truncated ones were cut")
    guards: dict[str, int] = Field(default_factory=dict, description="guard -> times fired")
    guard_dialogues: dict[str, int] = Field(default_factory=dict, description="guard -> dialogues it fired in")
    usage: dict[str, RoleUsage] = Field(default_factory=dict)
    diversity: Diversity = Field(default_factory=Diversity)


class RunStatistics(BaseModel):
    """The statistics of a run: ``overall`` and one group per (mode, domain), sorted."""

    dialogues: int = 0
    overall: GroupStatistics = Field(default_factory=lambda: GroupStatistics(mode="all", domain="all"))
    groups: list[GroupStatistics] = Field(default_factory=list)
    histograms: dict[str, dict[int, int]] = Field(
        default_factory=dict, description="'turn', 'step', 'task' -> value -> kept dialogues (whole run)"
    )
    usage: RunUsage = Field(default_factory=RunUsage, description="every role's usage: preparation and dialogues")
    model_calls: RunModelCalls = Field(
        default_factory=RunModelCalls,
        description="the run's ledger (usage.json): retries, failed calls and output problems per role and model",
    )
    unhappy_paths: UnhappyPaths = Field(
        default_factory=UnhappyPaths, description="goals per kind and injected tool faults (``unhappy_paths.py``)"
    )
    reuse: list[GoalReuse] = Field(default_factory=list, description="dialogues per goal, per domain and role")
    goal_spread: list[GoalSpread] = Field(
        default_factory=list, description="per goal stage and table: rows shown to the goals' writers, rows named"
    )


def failure_reason(failure: str | None) -> str:
    """The group a failure message belongs to: a guard name where one applies, else the text before ':'.

    ``"agent: timeout: ..."`` (an actor's model error) becomes ``agent_timeout``, the guard the engine
    fires with it; the max-turns and repeated-call failures become their guards' names; anything else
    is the text before the first ``:``, numbers replaced by ``N`` so counts of the same kind fall together.
    """
    if not failure:
        return "unknown"
    if match := _ACTOR_KIND.match(failure):
        return f"{match[1]}_{match[2]}"
    for pattern, name in _KNOWN_FAILURES:
        if pattern.match(failure):
            return name
    head = failure.split(":", 1)[0].strip()
    return _DIGITS.sub("N", head)[:120] or "unknown"


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a ``dialogues.jsonl`` (blank lines skipped); ValueError names a line that is not JSON."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not a JSON record ({exc})") from None


def run_dir_statistics(
    run_dir: Path, passing: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> RunStatistics:
    """The statistics of a run directory: its dialogues, its preparation's usage, its prices and the goals it
    prepared. Each record streams through ``passing`` (the HTML report keeps a sample). ValueError names a file
    that is unreadable."""
    records = read_records(run_dir / "dialogues.jsonl")
    return run_statistics(
        records if passing is None else map(passing, records),
        preparation=read_preparation_usage(run_dir),
        prices=read_prices(run_dir),
        goals=read_available_goals(run_dir),
        goal_spread=read_goal_spread(run_dir),
        model_calls=read_model_calls(run_dir),
    )


def run_statistics(
    records: Iterable[dict[str, Any] | Dialogue],
    *,
    preparation: UsageByRole | None = None,
    prices: Mapping[str, Price] | None = None,
    goals: AvailableGoals | None = None,
    goal_spread: Sequence[GoalSpread] = (),
    model_calls: RunModelCalls | None = None,
) -> RunStatistics:
    """Compute the statistics of the dialogues (canonical records as dicts or ``Dialogue`` objects), with the
    usage of the run's ``preparation`` per role, the ``prices`` of its models for the run's usage, and the
    ``goals`` it prepared, for goal reuse, how those spread over the data (``goal_spread.py``), and the
    ``model_calls`` its ledger counted."""
    rows = [_row(record) for record in records]
    groups: dict[tuple[str, str], list[_Row]] = defaultdict(list)
    for row in rows:
        groups[(row.mode, row.domain)].append(row)
    kept = [row for row in rows if row.status == "completed"]
    histograms = {
        name: dict(sorted(Counter(getattr(row, name) for row in kept).items())) for name in ("turn", "step", "task")
    }
    return RunStatistics(
        dialogues=len(rows),
        overall=_group("all", "all", rows),
        groups=[_group(mode, domain, members) for (mode, domain), members in sorted(groups.items())],
        histograms=histograms,
        unhappy_paths=unhappy_paths(row.unhappy for row in rows),
        usage=run_usage(
            {"preparation": preparation or {}, "dialogues": reduce(usage_sum, (row.usage for row in rows), {})},
            next((row.models for row in rows if row.models), {}),
            prices or {},
        ),
        reuse=goal_reuse(((row.domain, row.goals) for row in rows), goals),
        goal_spread=list(goal_spread),
        model_calls=model_calls or RunModelCalls(),
    )


@dataclass(frozen=True, slots=True)
class _Row:
    """What the statistics need from one record, read once."""

    id: str
    mode: str
    domain: str
    status: str
    truncated: bool
    failure: str | None
    turn: int
    step: int
    task: int
    tasks_assigned: int
    tasks_dropped: int
    max_steps: int
    tool_calls: int
    tool_errors: int
    judgment: dict[str, Any] | None
    guards: dict[str, int]
    usage: UsageByRole
    models: dict[str, str]
    tools_offered: list[str]
    calls: list[str]
    first_user: str | None
    unhappy: DialogueUnhappyPaths
    goals: tuple[tuple[str, GoalRole], ...]


def _row(record: dict[str, Any] | Dialogue) -> _Row:
    data = record.model_dump(mode="json") if isinstance(record, Dialogue) else upgrade_stats(record)
    stats = data.get("stats") or {}
    calls: list[str] = []
    first_user: str | None = None
    messages = list(data.get("messages") or ())
    system = 1 if messages and messages[0].get("role") == "system" else 0
    generated = system + int(data.get("prefix_messages") or 0)  # an imported conversation's calls were not made here
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "user" and first_user is None:
            first_user = message.get("content") or ""
        elif role == "assistant" and index >= generated:
            calls.extend((call.get("function") or {}).get("name", "?") for call in message.get("tool_calls") or ())
    return _Row(
        id=str(data.get("id", "")),
        mode=str(data.get("mode", "?")),
        domain=str(data.get("domain", "?")),
        status=str(data.get("status", "completed")),
        truncated=bool(data.get("truncated")),
        failure=data.get("failure"),
        turn=int(stats.get("turns", 0)),
        step=int(stats.get("steps", 0)),
        task=int(stats.get("tasks_completed", 0)),
        tasks_assigned=int(stats.get("tasks_assigned", 0)),
        tasks_dropped=len(data.get("tasks_dropped") or ()),
        max_steps=int(stats.get("max_steps_per_request", 0)),
        tool_calls=int(stats.get("tool_calls", 0)),
        tool_errors=int(stats.get("tool_errors", 0)),
        judgment=data.get("judgment"),
        guards=data.get("guards") or {},
        usage=USAGE_BY_ROLE.validate_python(data.get("usage") or {}),
        models=(data.get("generator") or {}).get("models") or {},
        tools_offered=[
            name for tool in data.get("tools") or () if (name := (tool.get("function") or tool).get("name"))
        ],
        calls=calls,
        first_user=first_user,
        unhappy=dialogue_unhappy_paths(
            data,
            completed=int(stats.get("tasks_completed", 0)),
            verdict=str((data.get("judgment") or {}).get("judgment", "unjudged")),
        ),
        goals=tuple(
            (str(task.get("id", "")), "followup" if task.get("follows") or task.get("asked_by") else "primary")
            for task in (*(data.get("tasks") or ()), *(data.get("tasks_dropped") or ()))
        ),  # the role as Task.is_followup tells it
    )


def _mean_max(values: list[int]) -> MeanMax:
    if not values:
        return MeanMax()
    total = sum(values)
    return MeanMax(mean=total / len(values), max=max(values), total=total)


def _group(mode: str, domain: str, rows: list[_Row]) -> GroupStatistics:
    count = len(rows)
    tool_calls = sum(row.tool_calls for row in rows)
    tool_errors = sum(row.tool_errors for row in rows)
    guards: Counter[str] = Counter()
    guard_dialogues: Counter[str] = Counter()
    for row in rows:
        for name, fired in row.guards.items():
            guards[name] += int(fired)
            guard_dialogues[name] += 1
    kept = [row for row in rows if row.status == "completed"]
    failed = [row for row in rows if row.status == "failed"]
    return GroupStatistics(
        mode=mode,
        domain=domain,
        dialogues=count,
        kept=len(kept),
        truncated=sum(row.truncated for row in kept),
        failed=len(failed),
        step=_mean_max([row.step for row in kept]),
        turn=_mean_max([row.turn for row in kept]),
        task=_mean_max([row.task for row in kept]),
        max_steps_per_request=_mean_max([row.max_steps for row in kept]),
        tool_calls=_mean_max([row.tool_calls for row in kept]),
        failed_turn=_mean_max([row.turn for row in failed]),
        goals=Goals(
            assigned=sum(row.tasks_assigned for row in rows),
            completed=sum(row.task for row in kept),
            dropped=sum(row.tasks_dropped for row in kept),
            in_failed=sum(row.tasks_assigned for row in failed),
        ),
        tool_errors=tool_errors,
        tool_error_rate=tool_errors / tool_calls if tool_calls else None,
        judging=_judging(rows),
        failure_reasons=dict(Counter(failure_reason(row.failure) for row in failed).most_common()),
        truncation_reasons=dict(Counter(failure_reason(row.failure) for row in kept if row.truncated).most_common()),
        guards=dict(guards.most_common()),
        guard_dialogues=dict(guard_dialogues.most_common()),
        usage=_usage(rows),
        diversity=_diversity(rows),
    )


def _judging(rows: list[_Row]) -> Judging:
    verdicts: Counter[str] = Counter()
    items: dict[str, PassRate] = {}
    checks = PassRate()
    invalid_items = 0
    for row in rows:
        judgment = row.judgment
        if not judgment:
            verdicts["unjudged"] += 1
            continue
        verdicts[str(judgment.get("judgment", "unjudged"))] += 1
        for item in judgment.get("items") or ():
            if item.get("category") == "InvalidRubric":
                invalid_items += 1
                continue
            tally = items.setdefault(str(item.get("category", "?")), PassRate())
            tally.total += 1
            tally.passed += bool(item.get("passed"))
        for passed in (judgment.get("checks") or {}).values():
            checks.total += 1
            checks.passed += bool(passed)
    for tally in [*items.values(), checks]:
        tally.rate = tally.passed / tally.total if tally.total else None
    judged = verdicts.get("valid", 0) + verdicts.get("invalid", 0)
    return Judging(
        verdicts=dict(sorted(verdicts.items())),
        judged=judged,
        pass_rate=verdicts.get("valid", 0) / judged if judged else None,
        rubric_items=dict(sorted(items.items())),
        invalid_rubric_items=invalid_items,
        checks=checks,
    )


def _usage(rows: list[_Row]) -> dict[str, RoleUsage]:
    totals: dict[str, RoleUsage] = {}
    for row in rows:
        for role, usage in row.usage.items():
            total = totals.setdefault(role, RoleUsage())
            total.calls += usage.calls
            total.prompt_tokens += usage.prompt_tokens
            total.completion_tokens += usage.completion_tokens
            total.reasoning_tokens += usage.reasoning_tokens
            total.seconds += usage.seconds
    count = len(rows) or 1
    for total in totals.values():
        total.calls_per_dialogue = total.calls / count
        total.prompt_tokens_per_dialogue = total.prompt_tokens / count
        total.completion_tokens_per_dialogue = total.completion_tokens / count
        total.reasoning_tokens_per_dialogue = total.reasoning_tokens / count
        total.seconds_per_dialogue = total.seconds / count
    return dict(sorted(totals.items()))


def _diversity(rows: list[_Row]) -> Diversity:
    usage = Counter(name for row in rows for name in row.calls)
    offered = {name for row in rows for name in row.tools_offered}
    firsts = [(row.id, row.first_user) for row in rows if row.first_user is not None]
    duplicates = near_duplicate_pairs([text for _, text in firsts])
    return Diversity(
        distinct_tools=len(usage),
        tools_offered=len(offered),
        tool_usage=dict(sorted(usage.items(), key=lambda item: (-item[1], item[0]))),
        first_user_messages=len(firsts),
        near_duplicate_first_user_messages=len(duplicates),
        near_duplicate_examples=[(firsts[later][0], firsts[earlier][0]) for later, earlier in duplicates[:10]],
        distinct_tool_sequences=len({tuple(row.calls) for row in rows if row.calls}),
        dialogues_with_tool_calls=sum(bool(row.calls) for row in rows),
    )


def near_duplicate_pairs(texts: list[str], threshold: float = NEAR_DUPLICATE_THRESHOLD) -> list[tuple[int, int]]:
    """``(i, j)`` with ``j < i`` for every text ``i`` that nearly repeats an earlier text ``j`` (its closest).

    The same decision as ``near_duplicate_of(texts[i], texts[:i], threshold)`` (Jaccard of ``shingles``),
    but only earlier texts sharing one of the rarest shingles (prefix filtering) are compared, and each
    text's shingles are computed once; texts without words are left out.
    """
    sets = [shingles(text) for text in texts]
    frequency = Counter(shingle for words in sets for shingle in words)
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    exact: dict[frozenset[tuple[str, ...]], int] = {}
    pairs: list[tuple[int, int]] = []
    for position, words in enumerate(sets):
        if not words:
            continue
        if words in exact:
            pairs.append((position, exact[words]))
            continue
        size = len(words)
        ordered = sorted(words, key=lambda shingle: (frequency[shingle], shingle))
        prefix = ordered[: size - math.ceil(threshold * size - 1e-9) + 1]
        best, best_score = -1, threshold
        for other in sorted({other for shingle in prefix for other in index[shingle]}):
            theirs = sets[other]
            if min(size, len(theirs)) < threshold * max(size, len(theirs)):
                continue
            overlap = len(words & theirs)
            score = overlap / (size + len(theirs) - overlap)
            if score > best_score or (best < 0 and score >= threshold):
                best, best_score = other, score
        if best >= 0:
            pairs.append((position, best))
        exact[words] = position
        for shingle in prefix:
            index[shingle].append(position)
    return pairs
