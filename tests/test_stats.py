"""Run statistics: the paper's Table 1 per (mode, domain) and overall, judge, failures, usage, diversity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.llm.accounting import Price
from dialforge.model.dialogue import Dialogue
from dialforge.model.usage import Usage
from dialforge.report.stats import Goals, MeanMax, failure_reason, near_duplicate_pairs, run_statistics
from dialforge.report.text import render_text

runner = CliRunner()


def record(
    id: str,
    *,
    mode: str = "user",
    domain: str = "shop",
    first_user: str = "hello there",
    calls: tuple[str, ...] = (),
    turns: int = 0,
    steps: int = 0,
    tasks: int = 1,
    assigned: int | None = None,
    dropped: int = 0,
    tool_errors: int = 0,
    verdict: str | None = "valid",
    status: str = "completed",
    failure: str | None = None,
    truncated: bool = False,
    guards: dict[str, int] | None = None,
    usage: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A canonical record: one user message, then one assistant message per tool call with its result."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "policy"}, {"role": "user", "content": first_user}]
    for index, name in enumerate(calls):
        call_id = f"call_{index}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": "{}"})
    messages.append({"role": "assistant", "content": "done"})
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in ("a", "b", "c")]
    return {
        "id": id,
        "mode": mode,
        "domain": domain,
        "status": status,
        "failure": failure,
        "truncated": truncated,
        "tools": tools,
        "messages": messages,
        "tasks": [],
        "tasks_dropped": [{"id": f"{id}-dropped-{n}", "description": "a goal given up"} for n in range(dropped)],
        "judgment": None
        if verdict is None
        else {"judgment": verdict, "reasoning": "because", "items": [], "checks": {}},
        "stats": {
            "turns": turns,
            "steps": steps,
            "max_steps_per_request": steps,
            "tasks_assigned": tasks + dropped if assigned is None else assigned,
            "tasks_completed": tasks,
            "tool_calls": len(calls),
            "tool_errors": tool_errors,
        },
        "usage": usage or {},
        "env": {},
        "seed": 0,
        "persona": None,
        "guards": guards or {},
        "generator": {},
    }


def sample_records() -> list[dict[str, Any]]:
    return [
        record(
            "u1",
            first_user="Show me order 1234 please",
            calls=("a", "b"),
            turns=6,
            steps=2,
            tasks=1,
            tool_errors=1,
            usage={"agent": {"calls": 3, "prompt_tokens": 300, "completion_tokens": 30, "seconds": 1.5}},
        ),
        record(
            "u2",
            first_user="show me ORDER 5678, please!",
            calls=("a", "b"),
            turns=10,
            steps=4,
            tasks=3,
            verdict="invalid",
            usage={"agent": {"calls": 1, "prompt_tokens": 100, "completion_tokens": 10, "seconds": 0.5}},
        ),
        record("u3", first_user="What is the weather like in Oslo tomorrow", calls=("c",), turns=2, steps=1, tasks=2),
        record(
            "t1",
            mode="task",
            domain="shop",
            first_user="Cancel my subscription right now",
            calls=("a",),
            turns=4,
            steps=1,
            tasks=1,
            verdict=None,
            status="failed",
            failure="agent: timeout: the server did not answer in 60 s",
            guards={"agent_timeout": 2},
        ),
        record(
            "t2",
            mode="task",
            domain="bank",
            first_user="Transfer 50 dollars to savings",
            turns=3,
            steps=0,
            tasks=0,
            assigned=2,
            verdict=None,
            status="failed",
            failure="the dialogue reached 40 turns without finishing its tasks",
            guards={"max_turns": 1, "max_steps_per_turn": 3},
        ),
        record(
            "t3",
            mode="task",
            domain="bank",
            first_user="Transfer 75 dollars to savings",
            calls=("b", "a"),
            turns=8,
            steps=5,
            tasks=2,
            dropped=1,
            truncated=True,
            failure="the dialogue reached 60 turns without finishing its tasks",
            guards={"max_turns": 1},
        ),
    ]


def group(stats: Any, mode: str, domain: str) -> Any:
    return next(g for g in stats.groups if (g.mode, g.domain) == (mode, domain))


def test_table_1_per_mode_and_domain_and_overall() -> None:
    stats = run_statistics(sample_records())

    assert stats.dialogues == 6
    assert [(g.mode, g.domain, g.dialogues) for g in stats.groups] == [
        ("task", "bank", 2),
        ("task", "shop", 1),
        ("user", "shop", 3),
    ]
    user = group(stats, "user", "shop")
    assert (user.turn.mean, user.turn.max) == (6.0, 10)
    assert (user.step.mean, user.step.max) == (pytest.approx(7 / 3), 4)
    assert (user.task.mean, user.task.max) == (2.0, 3)
    assert str(user.turn) == "6.00 (10)"
    bank = group(stats, "task", "bank")  # the failed t2 (3 turns) is not in its Table 1; the truncated t3 is
    assert (bank.turn.mean, bank.turn.max, bank.step.mean, bank.step.max, bank.task.mean) == (8, 8, 5, 5, 2)
    assert group(stats, "task", "shop").turn == MeanMax(), "nothing kept"
    overall = stats.overall
    assert (overall.turn.mean, overall.turn.max) == (pytest.approx(26 / 4), 10)
    assert (overall.step.total, overall.task.max) == (12, 3)
    assert stats.histograms["turn"] == {2: 1, 6: 1, 8: 1, 10: 1}


def test_failed_and_truncated_dialogues_and_every_goal_are_counted_beside_table_1() -> None:
    stats = run_statistics(sample_records())
    overall, bank = stats.overall, group(stats, "task", "bank")

    assert (overall.dialogues, overall.kept, overall.truncated, overall.failed) == (6, 4, 1, 2)
    assert (overall.failed_turn.mean, overall.failed_turn.max) == (3.5, 4)
    assert overall.goals == Goals(assigned=12, completed=8, dropped=1, in_failed=3)
    assert bank.goals == Goals(assigned=5, completed=2, dropped=1, in_failed=2)
    assert overall.truncation_reasons == {"max_turns": 1}
    text = render_text(stats)
    beside = text[text.index("Beside Table 1") :].splitlines()
    assert beside[3].split() == ["task", "bank", "1", "1", "1", "3.00", "(3)", "5", "2", "1", "2"]


def test_tool_calls_errors_and_judge() -> None:
    stats = run_statistics(sample_records())
    user = group(stats, "user", "shop")

    assert (user.tool_calls.mean, user.tool_calls.max, user.tool_errors) == (pytest.approx(5 / 3), 2, 1)
    assert user.tool_error_rate == pytest.approx(1 / 5)
    assert user.judging.verdicts == {"invalid": 1, "valid": 2}
    assert user.judging.pass_rate == pytest.approx(2 / 3)
    overall = stats.overall.judging
    assert overall.verdicts == {"invalid": 1, "unjudged": 2, "valid": 3}
    assert (overall.judged, overall.pass_rate) == (4, 0.75)
    assert group(stats, "task", "shop").judging.pass_rate is None  # nothing judged


def test_failure_reasons_are_grouped_and_guards_counted() -> None:
    stats = run_statistics(sample_records())

    assert stats.overall.failed == 2 and stats.overall.kept == 4
    assert stats.overall.failure_reasons == {"agent_timeout": 1, "max_turns": 1}
    assert stats.overall.guards == {"max_steps_per_turn": 3, "agent_timeout": 2, "max_turns": 2}
    assert stats.overall.guard_dialogues == {"agent_timeout": 1, "max_turns": 2, "max_steps_per_turn": 1}
    assert failure_reason('the agent repeated the call a({"x": 1}) more than 3 times') == "repeated_tool_call"
    assert (
        failure_reason("the conversation to continue is not usable: x") == "the conversation to continue is not usable"
    )
    assert failure_reason(None) == "unknown"


def test_usage_per_dialogue_per_role() -> None:
    usage = run_statistics(sample_records()).groups[2].usage["agent"]

    assert (usage.calls, usage.prompt_tokens, usage.seconds) == (4, 400, 2.0)
    assert usage.prompt_tokens_per_dialogue == pytest.approx(400 / 3)
    assert usage.seconds_per_dialogue == pytest.approx(2 / 3)


def test_invalid_rubric_items_are_counted_not_graded() -> None:
    judged = record("j1")
    judged["judgment"]["items"] = [
        {"item": "the order ships from Mars", "category": "InvalidRubric", "passed": None},
        {"item": "the refund is confirmed", "category": "Critical", "passed": True},
        {"item": "a polite tone", "category": "NonCritical", "passed": False},
    ]
    judging = run_statistics([judged]).overall.judging

    assert judging.invalid_rubric_items == 1
    assert set(judging.rubric_items) == {"Critical", "NonCritical"}, "no pass rate for InvalidRubric"
    line = next(line for line in render_text(run_statistics([judged])).splitlines() if line.startswith("rubric Inv"))
    assert line.split() == ["rubric", "InvalidRubric", "-", "1", "-"]


def test_usage_of_the_whole_run_has_every_role_with_its_share_and_cost() -> None:
    preparation = {"generator": Usage(calls=2, prompt_tokens=250, completion_tokens=50)}
    prices = {"big": Price(prompt_per_million=2, completion_per_million=8)}
    records = sample_records()
    records[0]["generator"] = {"models": {"agent": "big", "generator": "big"}}

    usage = run_statistics(records, preparation=preparation, prices=prices).usage

    rows = {(row.phase, row.role): row for row in usage.roles}
    assert set(rows) == {("preparation", "generator"), ("dialogues", "agent")}
    generator = rows[("preparation", "generator")]
    assert (generator.tokens, usage.tokens, generator.share) == (300, 740, pytest.approx(300 / 740))
    assert generator.cost == pytest.approx((250 * 2 + 50 * 8) / 1e6)
    assert usage.cost == pytest.approx((250 * 2 + 50 * 8 + 400 * 2 + 40 * 8) / 1e6)


def test_diversity() -> None:
    stats = run_statistics(sample_records())
    diversity = stats.overall.diversity

    assert (diversity.distinct_tools, diversity.tools_offered) == (3, 3)
    assert diversity.tool_usage == {"a": 4, "b": 3, "c": 1}
    # "order 1234" ~ "ORDER 5678" and "Transfer 50" ~ "Transfer 75": numbers and case do not matter
    assert diversity.near_duplicate_first_user_messages == 2
    assert diversity.near_duplicate_examples == [("u2", "u1"), ("t3", "t2")]
    # sequences: (a, b) twice, (c), (a), (b, a); t2 calls nothing
    assert (diversity.distinct_tool_sequences, diversity.dialogues_with_tool_calls) == (4, 5)
    assert group(stats, "task", "bank").diversity.near_duplicate_first_user_messages == 1


def test_near_duplicates_match_the_pairwise_definition() -> None:
    texts = [
        "where is my parcel",
        "Where is my parcel?",
        "where is my parcel now",
        "completely different question about refunds",
        "",
        "a different question about refunds, completely",
        "where is my parcel",
    ]

    pairs = near_duplicate_pairs(texts)

    assert [later for later, _ in pairs] == [1, 2, 5, 6]
    assert dict(pairs)[6] == 0 and dict(pairs)[1] == 0


def test_near_duplicates_are_found_among_ten_thousand_texts() -> None:
    words = [f"w{i}" for i in range(3000)]
    texts = [" ".join(words[(i * 7 + k * 13) % 3000] for k in range(12)) + f" order {i}" for i in range(10_000)]
    texts += texts[:50]

    pairs = near_duplicate_pairs(texts)

    assert {later for later, _ in pairs} >= set(range(10_000, 10_050))


def test_dialogue_objects_count_like_dicts() -> None:
    records = sample_records()
    dialogues = [Dialogue.model_validate(r) for r in records]

    assert run_statistics(dialogues) == run_statistics(records)


def test_text_and_json_agree() -> None:
    stats = run_statistics(sample_records())
    text = render_text(stats)
    data = json.loads(stats.model_dump_json())

    assert text.startswith("6 dialogues")
    for g in data["groups"]:
        line = next(line for line in text.splitlines() if line.split()[:2] == [g["mode"], g["domain"]])
        assert line.split()[-1] == str(g["kept"])
        if not g["kept"]:
            assert line.split()[2:5] == ["-", "-", "-"], "no mean over no kept dialogue"
            continue
        assert f"{g['step']['mean']:.2f} ({g['step']['max']})" in line
        assert f"{g['turn']['mean']:.2f} ({g['turn']['max']})" in line
        assert f"{g['task']['mean']:.2f} ({g['task']['max']})" in line
    assert "75.0%" in text  # overall pass rate
    assert "agent_timeout" in text and "max_turns" in text
    assert "2 of 6" in text  # near-duplicate first user messages


def write_run(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "dialogues.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def test_cli_stats_text_and_json(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, sample_records())

    text = runner.invoke(app, ["stats", str(run_dir)], terminal_width=200)
    as_json = runner.invoke(app, ["stats", str(run_dir), "--json"])

    assert text.exit_code == 0 and as_json.exit_code == 0
    assert text.stdout == render_text(run_statistics(sample_records()))
    assert json.loads(as_json.stdout) == json.loads(run_statistics(sample_records()).model_dump_json())


def test_cli_stats_reads_the_preparations_usage_and_the_prices_of_the_run(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, sample_records())
    (run_dir / "artifacts").mkdir()
    reports = [
        {"stage": "questions", "domain": "shop", "usage": {"generator": {"calls": 1, "prompt_tokens": 100}}},
        {"stage": "policy", "domain": "shop", "usage": {"generator": {"calls": 1, "completion_tokens": 60}}},
        {"stage": "sql_tools_scaffolded", "domain": "shop"},
    ]
    (run_dir / "artifacts" / "stage_reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reports))
    (run_dir / "config.yaml").write_text("prices:\n  m: {prompt_per_million: 1.0, completion_per_million: 1.0}\n")

    result = runner.invoke(app, ["stats", str(run_dir), "--json"])

    assert result.exit_code == 0, result.output
    roles = {(row["phase"], row["role"]): row for row in json.loads(result.stdout)["usage"]["roles"]}
    assert (roles[("preparation", "generator")]["calls"], roles[("preparation", "generator")]["tokens"]) == (2, 160)
    assert roles[("preparation", "generator")]["share"] == pytest.approx(160 / 600)
    text = runner.invoke(app, ["stats", str(run_dir)], terminal_width=200).stdout
    assert "preparation  generator" in text and "26.7%" in text


@pytest.mark.parametrize("make_dir", [False, True])
def test_cli_stats_exits_2_without_a_run(tmp_path: Path, make_dir: bool) -> None:
    run_dir = tmp_path / "run"
    if make_dir:
        run_dir.mkdir()

    result = runner.invoke(app, ["stats", str(run_dir), "--json"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert ("dialogues.jsonl" if make_dir else "no run directory") in result.stderr


def test_cli_stats_names_a_line_that_is_not_json(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, sample_records()[:1])
    with (run_dir / "dialogues.jsonl").open("a") as handle:
        handle.write("{not json\n")

    result = runner.invoke(app, ["stats", str(run_dir)])

    assert result.exit_code == 2
    assert "dialogues.jsonl:2: not a JSON record" in result.stderr


def test_a_record_written_before_goals_were_counted_apart_still_loads_and_counts() -> None:
    old = record("old", tasks=2, status="failed", failure="out of turns", verdict=None)
    old["tasks"] = [{"id": f"g{n}", "description": f"goal {n}"} for n in range(3)]
    stats = old["stats"]
    old["stats"] = {key: stats[key] for key in ("turns", "steps", "tool_calls", "tool_errors")} | {"tasks": 2}
    del old["truncated"], old["tasks_dropped"]

    loaded = Dialogue.model_validate(old).stats
    assert (loaded.tasks_assigned, loaded.tasks_completed) == (3, 2)
    goals = run_statistics([old]).overall.goals
    assert (goals.assigned, goals.in_failed) == (3, 3)


def with_goals(dialogue: dict[str, Any], *goals: dict[str, Any]) -> dict[str, Any]:
    return {**dialogue, "tasks": [{"description": "a goal", **goal} for goal in goals]}


def reused_records() -> list[dict[str, Any]]:
    """Four dialogues of three primary goals; one follow-up joins three of them, another one."""
    often = {"id": "often", "asked_by": ["p1", "p2"]}
    return [
        with_goals(record("d1"), {"id": "p1"}, often),
        with_goals(record("d2"), {"id": "p2"}, often),
        with_goals(record("d3"), {"id": "p1"}, often),
        with_goals(record("d4", status="failed", verdict=None), {"id": "p3"}, {"id": "once", "follows": "p3"}),
    ]


def test_goal_reuse_counts_the_dialogues_of_each_goal_against_the_even_share() -> None:
    available = {("shop", "primary"): ["p1", "p2", "p3", "p4"], ("shop", "followup"): ["often", "once", "never"]}

    stats = run_statistics(reused_records(), goals=available)

    primary, followup = sorted(stats.reuse, key=lambda reuse: reuse.role, reverse=True)
    assert (primary.role, primary.goals_used, primary.goals_available) == ("primary", 3, 4)
    assert (primary.dialogues, primary.max, primary.even_share) == ({"p1": 2, "p2": 1, "p3": 1}, 2, 1)
    assert primary.over_share == {"p1": 2} and primary.mean == pytest.approx(4 / 3)
    assert (followup.dialogues, followup.even_share, followup.over_share) == ({"often": 3, "once": 1}, 2, {"often": 3})
    text = render_text(stats)
    assert "Goal reuse" in text and "Goals used more than the even share" in text
    assert "often" in text.split("Goals used more than the even share")[1]


def test_cli_stats_reads_the_goals_the_run_prepared(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, reused_records())
    (run_dir / "artifacts").mkdir()
    prepared = [{"domain": "shop", "role": "followup", "id": name} for name in ("often", "once", "never", "x")]
    (run_dir / "artifacts" / "tasks.jsonl").write_text("".join(json.dumps(row) + "\n" for row in prepared))

    result = runner.invoke(app, ["stats", str(run_dir), "--json"])

    assert result.exit_code == 0, result.output
    reuse = {row["role"]: row for row in json.loads(result.stdout)["reuse"]}
    assert (reuse["followup"]["goals_available"], reuse["followup"]["even_share"]) == (4, 1)
    assert reuse["primary"]["goals_available"] is None, "not in the file: the goals used stand in"
