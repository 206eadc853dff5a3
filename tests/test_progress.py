"""What a person watching a run sees: preparation stage by stage, rates that are never a rounded 0.0, counts
that include an earlier session's failures, and the final line once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dialforge.config import DialforgeConfig, load_config
from dialforge.llm import DryRunModel
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.preparation import Preparation, StageProgress
from dialforge.runner.progress import LogReporter, duration, rate
from dialforge.runner.run import RunOptions, run
from samples import write_music_config

SMALL = {"questions_per_domain": 3, "expansion_tools": 2, "tasks_per_domain": 3, "tasks_per_batch": 2}


@pytest.mark.parametrize(
    ("count", "seconds", "shown"),
    [(730, 1, "730/s"), (3.44, 1, "3.4/s"), (1, 25, "2.4/min"), (1, 1000, "0.060/min"), (0, 60, "0/min")],
)
def test_a_rate_keeps_two_significant_digits_and_goes_per_minute_below_one_a_second(
    count: float, seconds: float, shown: str
) -> None:
    assert rate(count, seconds) == shown


def test_a_duration_reads_in_the_units_a_person_uses() -> None:
    assert [duration(s) for s in (4.4, 1083, 7500)] == ["4 s", "18 min 3 s", "2 h 5 min"]


async def test_preparation_tells_each_stage_its_start_its_requests_and_its_report(tmp_path: Path) -> None:
    settings = DialforgeConfig.model_validate(
        {"generation": SMALL, "domains": [{"name": "bookstore", "description": "An online bookstore: orders, books."}]}
    )
    told: list[StageProgress] = []
    (plan,) = await Preparation(
        settings, DryRunModel(seed=1, role="generator"), ArtifactStore(tmp_path), on_stage=told.append
    ).run()

    stages = [p.stage for p in told if p.report is not None]
    assert stages == [report.stage for report in plan.reports], "every stage's end is told, with its own report"
    assert [p.report for p in told if p.report is not None] == plan.reports
    for stage in stages:
        steps = [p for p in told if p.stage == stage]
        assert steps[0].done == 0 and steps[0].report is None, f"{stage} is told when it starts"
        assert [p.done for p in steps] == sorted(p.done for p in steps) and steps[-1].done == steps[-1].parts
    specs = [p for p in told if p.stage == "tool_specs"]
    assert [p.done for p in specs] == list(range(len(plan.questions) + 1)), "one step per question answered"


async def test_the_progress_lines_show_each_stage_with_its_counts_and_time(tmp_path: Path) -> None:
    settings = DialforgeConfig.model_validate(
        {"generation": SMALL, "domains": [{"name": "bookstore", "description": "An online bookstore: orders, books."}]}
    )
    stream = io.StringIO()
    reporter = LogReporter(stream, every_s=0)
    (plan,) = await Preparation(
        settings, DryRunModel(seed=1, role="generator"), ArtifactStore(tmp_path), on_stage=reporter.preparing
    ).run()
    lines = stream.getvalue().splitlines()
    for report in plan.reports:
        shown = [line for line in lines if f"bookstore: {report.stage} " in line]
        assert len(shown) >= 2, f"{report.stage}: its start and its end"
        assert f"{report.produced} produced" in shown[-1] and " s" in shown[-1]
        if report.rejected:
            assert f"{len(report.rejected)} rejected" in shown[-1]
    answered = [line for line in lines if "bookstore: tool_specs " in line][1]
    assert f"1/{len(plan.questions)}" in answered


async def test_a_resumed_run_counts_the_failures_of_the_earlier_session_and_ends_with_one_line(
    chinook_path: Path, tmp_path: Path
) -> None:
    config = load_config(write_music_config(tmp_path, chinook_path, per_domain=3, max_turns=2))  # each one fails
    out = tmp_path / "out"
    first = await run(config, out, RunOptions(dry_run=True, limit=1), LogReporter(io.StringIO()))
    assert (first.finished, first.failed) == (1, 1)

    stream = io.StringIO()
    reporter = LogReporter(stream, every_s=0)
    second = await run(config, out, RunOptions(dry_run=True, limit=2), reporter)
    assert (second.finished, second.failed, second.skipped) == (1, 1, 1)
    assert reporter.figures()["dialogues"].startswith("2/2 done, 2 failed")
    lines = stream.getvalue().splitlines()
    assert sum("2/2 done" in line for line in lines) == 1, "the final line is shown once"
