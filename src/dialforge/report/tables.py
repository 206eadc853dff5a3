"""The statistics of a run as tables of display text, built once for every renderer.

Cells are already formatted (``formatting``), so ``dialforge stats`` and the HTML report show the same
figures; a renderer only lays the tables out.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialforge.report.formatting import MISSING, number, percent, seconds, usd
from dialforge.report.stats import GroupStatistics, MeanMax, RunStatistics


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table; its first ``label_columns`` columns name the row, the others hold figures."""

    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    note: str = ""
    label_columns: int = 1


def group_tables(stats: RunStatistics) -> list[Table]:
    """Table 1, the dialogues and goals beside it, and the outcome, one row per (mode, domain) and one for the
    whole run."""
    groups = _groups(stats)
    return [
        Table(
            "Table 1",
            ("mode", "domain", "Step", "Turn", "Task", "kept"),
            [(g.mode, g.domain, *_kept_means(g, g.step, g.turn, g.task), str(g.kept)) for g in groups],
            note="mean (max) per kept dialogue; a truncated one counts with the goals it kept",
            label_columns=2,
        ),
        Table(
            "Beside Table 1",
            (
                "mode",
                "domain",
                "kept",
                "truncated",
                "failed",
                "Turn (failed)",
                "goals assigned",
                "completed",
                "dropped",
                "in failed",
            ),
            [
                (
                    g.mode,
                    g.domain,
                    str(g.kept),
                    str(g.truncated),
                    str(g.failed),
                    str(g.failed_turn) if g.failed else MISSING,
                    str(g.goals.assigned),
                    str(g.goals.completed),
                    str(g.goals.dropped),
                    str(g.goals.in_failed),
                )
                for g in groups
            ],
            note="truncated: kept, cut back to their last completed goal; goals completed in kept dialogues, "
            "dropped by truncations, or assigned to failed dialogues",
            label_columns=2,
        ),
        Table(
            "Outcome",
            (
                "mode",
                "domain",
                "tool calls",
                "tool errors",
                "error rate",
                "valid",
                "invalid",
                "unjudged",
                "pass rate",
                "steps/request",
            ),
            [
                (
                    g.mode,
                    g.domain,
                    *_kept_means(g, g.tool_calls),
                    str(g.tool_errors),
                    percent(g.tool_error_rate),
                    str(g.judging.verdicts.get("valid", 0)),
                    str(g.judging.verdicts.get("invalid", 0)),
                    str(g.judging.verdicts.get("unjudged", 0)),
                    percent(g.judging.pass_rate),
                    *_kept_means(g, g.max_steps_per_request),
                )
                for g in groups
            ],
            note="tool calls, and steps/request (its longest run of steps for one request): mean (max) per kept "
            "dialogue",
            label_columns=2,
        ),
    ]


def overall_tables(stats: RunStatistics) -> list[Table]:
    """The whole run's judge items, failure reasons, guards, usage per role, model calls and their trouble,
    diversity, tool usage, goal reuse, goals per kind and tool faults."""
    overall = stats.overall
    judging = overall.judging
    graded = [(f"rubric {name}", tally) for name, tally in judging.rubric_items.items()]
    if judging.checks.total:
        graded.append(("SQL checks", judging.checks))
    items: list[tuple[str, ...]] = [(name, str(t.passed), str(t.total), percent(t.rate)) for name, t in graded]
    if judging.invalid_rubric_items:
        items.append(("rubric InvalidRubric", MISSING, str(judging.invalid_rubric_items), MISSING))
    diversity = overall.diversity
    return [
        Table(
            "Judge: items passed",
            ("item", "passed", "total", "rate"),
            items,
            note="InvalidRubric items are wrong in themselves: counted, neither passed nor failed",
        ),
        Table(
            "Failure reasons",
            ("reason", "dialogues"),
            [(reason, str(count)) for reason, count in overall.failure_reasons.items()],
        ),
        Table(
            "Truncation reasons",
            ("reason", "dialogues"),
            [(reason, str(count)) for reason, count in overall.truncation_reasons.items()],
        ),
        Table(
            "Usage of the whole run, by role",
            ("phase", "role", "model", "calls", "tokens", "share", "cost (USD)"),
            _spend_rows(stats),
            note="tokens: prompt + completion; preparation is the generator writing tools, policies and goals; "
            "cost where the config's prices name the model",
            label_columns=3,
        ),
        Table(
            "Model calls: retries, failures, output problems",
            ("role", "model", "calls", "retries", "failed calls", "output problems", "repaired"),
            _model_call_rows(stats),
            note=f"every session of the run ({stats.model_calls.sessions}), from its usage.json; retries: requests "
            "sent again (429, 5xx, broken bodies); failed calls gave up; output problems: unusable replies, "
            "repaired when the one repair request got a usable one",
            label_columns=2,
        ),
        Table(
            "Model calls: trouble by kind",
            ("what", "kind", "times"),
            _trouble_rows(stats),
            label_columns=2,
        ),
        Table(
            "Guards fired",
            ("guard", "times", "dialogues"),
            [(name, str(times), str(overall.guard_dialogues.get(name, 0))) for name, times in overall.guards.items()],
        ),
        Table(
            "Usage per dialogue, by role",
            ("role", "calls", "prompt tokens", "completion tokens", "reasoning tokens", "seconds"),
            [
                (
                    role,
                    number(u.calls_per_dialogue),
                    number(u.prompt_tokens_per_dialogue, 1),
                    number(u.completion_tokens_per_dialogue, 1),
                    number(u.reasoning_tokens_per_dialogue, 1),
                    seconds(u.seconds_per_dialogue),
                )
                for role, u in overall.usage.items()
            ],
        ),
        Table(
            "Diversity",
            ("measure", "value"),
            [
                ("distinct tools used", f"{diversity.distinct_tools} of {diversity.tools_offered} offered"),
                (
                    f"near-duplicate first user messages (Jaccard >= {diversity.near_duplicate_threshold})",
                    f"{diversity.near_duplicate_first_user_messages} of {diversity.first_user_messages}",
                ),
                (
                    "distinct tool sequences",
                    f"{diversity.distinct_tool_sequences} of {diversity.dialogues_with_tool_calls}"
                    " dialogues with tool calls",
                ),
            ],
        ),
        Table("Tool usage", ("tool", "calls"), [(name, str(calls)) for name, calls in diversity.tool_usage.items()]),
        *_reuse_tables(stats),
        _spread_table(stats),
        *_unhappy_path_tables(stats),
    ]


def _reuse_tables(stats: RunStatistics) -> list[Table]:
    """Dialogues per goal against the even share, per domain and role, and the goals used more often."""
    return [
        Table(
            "Goal reuse",
            ("domain", "goals", "used", "dialogues per goal", "even share", "over the share"),
            [
                (
                    r.domain,
                    "follow-ups" if r.role == "followup" else "primary",
                    f"{r.goals_used} of {r.goals_available}" if r.goals_available is not None else str(r.goals_used),
                    f"{r.mean:.2f} ({r.max})",
                    str(r.even_share),
                    str(len(r.over_share)),
                )
                for r in stats.reuse
            ],
            note="dialogues per goal: mean (max) over the goals used; even share: ceil(dialogues given a goal / goals "
            "prepared)",
            label_columns=2,
        ),
        Table(
            "Goals used more than the even share",
            ("goal", "dialogues", "even share"),
            [(goal, str(count), str(r.even_share)) for r in stats.reuse for goal, count in r.over_share.items()],
        ),
    ]


def _spread_table(stats: RunStatistics) -> Table:
    """Per goal stage and table: the rows its writers were shown and the shown rows its goals name."""
    return Table(
        "Goals over the data",
        ("domain", "stage", "goals", "table", "rows", "shown to writers", "named by goals"),
        [
            (s.domain, s.stage, str(s.goals), s.table, str(s.rows), str(s.shown), str(s.named))
            for s in stats.goal_spread
        ],
        note="distinct rows shown to the goals' writers over all their requests, and those the goals name by a "
        "distinctive value or by number",
        label_columns=4,
    )


def _unhappy_path_tables(stats: RunStatistics) -> list[Table]:
    """Goals and dialogues per goal kind; injected tool faults per kind, and by handling and verdict."""
    unhappy = stats.unhappy_paths
    verdicts = ("valid", "invalid", "unjudged")
    by_verdict = [
        (handling.replace("_", " "), *(str(counts.get(verdict, 0)) for verdict in verdicts))
        for handling, counts in sorted(unhappy.fault_verdicts.items())
    ]
    if unhappy.dialogues_with_faults:
        by_verdict.append(
            ("dialogues with faults", *(str(unhappy.dialogues_with_faults.get(verdict, 0)) for verdict in verdicts))
        )
    return [
        Table(
            "Goals by kind",
            ("kind", "goals", "completed", "dialogues", "kept", "valid", "invalid", "pass rate"),
            [
                (
                    kind,
                    str(k.goals),
                    str(k.completed),
                    str(k.dialogues),
                    str(k.kept),
                    str(k.valid),
                    str(k.invalid),
                    percent(k.valid / (k.valid + k.invalid) if k.valid + k.invalid else None),
                )
                for kind, k in unhappy.goal_kinds.items()
            ],
            note="ordinary goals can be done as asked, the others cannot (forbidden, constraint, a missing or "
            "ambiguous record); a dialogue counts under each kind its goals have",
        ),
        Table(
            "Tool faults injected",
            ("fault", "injected", "retried", "told the user", "unresolved"),
            [
                (kind, str(f.injected), str(f.retried), str(f.told_user), str(f.unresolved))
                for kind, f in unhappy.faults.items()
            ],
            note="what the agent did next, before the person's next message: the same call again, or an answer "
            "in words",
        ),
        Table(
            "Tool faults by verdict",
            ("handled", *verdicts),
            by_verdict,
            note="faults by what the agent did next and the verdict of their dialogue; then the dialogues that met "
            "a fault",
        ),
    ]


def _kept_means(group: GroupStatistics, *figures: MeanMax) -> tuple[str, ...]:
    """Figures over the group's kept dialogues; none when it kept none (a mean of nothing is not 0)."""
    return tuple(str(figure) if group.kept else MISSING for figure in figures)


def _spend_rows(stats: RunStatistics) -> list[tuple[str, ...]]:
    """One row per phase and role, then the run's total."""
    usage = stats.usage
    rows: list[tuple[str, ...]] = [
        (r.phase, r.role, r.model or MISSING, str(r.calls), str(r.tokens), percent(r.share), usd(r.cost))
        for r in usage.roles
    ]
    if rows:
        calls = sum(r.calls for r in usage.roles)
        rows.append(
            ("all", "", "", str(calls), str(usage.tokens), percent(1.0 if usage.tokens else None), usd(usage.cost))
        )
    return rows


def _model_call_rows(stats: RunStatistics) -> list[tuple[str, ...]]:
    """One row per role and model of the run's ledger, then the run's total."""
    ledger = stats.model_calls
    rows: list[tuple[str, ...]] = [
        (
            m.role,
            m.model,
            str(m.calls),
            str(sum(m.retries.values())),
            str(sum(m.failed_calls.values())),
            str(sum(m.output_problems.values())),
            str(m.repaired),
        )
        for m in ledger.models
    ]
    if rows:
        totals = (ledger.calls, ledger.retries, ledger.failed_calls, ledger.output_problems, ledger.repaired)
        rows.append(("all", "", *map(str, totals)))
    return rows


def _trouble_rows(stats: RunStatistics) -> list[tuple[str, ...]]:
    """Retries, failed calls and output problems of every role and model, by kind, most frequent first."""
    rows: list[tuple[str, ...]] = []
    for what, field in (("retry", "retries"), ("failed call", "failed_calls"), ("output problem", "output_problems")):
        counts: dict[str, int] = {}
        for m in stats.model_calls.models:
            for kind, times in getattr(m, field).items():
                counts[kind] = counts.get(kind, 0) + times
        rows += [(what, kind, str(times)) for kind, times in sorted(counts.items(), key=lambda i: (-i[1], i[0]))]
    return rows


def _groups(stats: RunStatistics) -> list[GroupStatistics]:
    """The (mode, domain) groups, then the whole run unless a single group already is the whole run."""
    return stats.groups if len(stats.groups) == 1 else [*stats.groups, stats.overall]
