"""What the run's ledger counts reaches the user: ``usage.json`` in the run directory (every session, saved with
the checkpoints), the progress line, the end-of-run summary and ``dialforge stats``; and the records book every
call the ledger counts, those of calls that finally failed included."""

from __future__ import annotations

import html
import io
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from conftest import StartMockServer
from dialforge.cli.main import app
from dialforge.config import load_config
from dialforge.llm import ModelOutputError, ModelUnavailable
from dialforge.llm._transport import HttpTransport, RetryPolicy
from dialforge.llm.accounting import UsageLedger, merge_snapshots
from dialforge.llm.completion import RequestOptions
from dialforge.llm.endpoint_pool import EndpointPool
from dialforge.llm.openai_compatible import OpenAICompatible
from dialforge.llm.scripted import ScriptedModel
from dialforge.llm.settings import ResolvedModelSettings
from dialforge.llm.usage_scope import ScopedUsage, usage_scope
from dialforge.model import UserMessage
from dialforge.model.usage import Usage
from dialforge.report.html import write_report
from dialforge.report.stats import run_dir_statistics
from dialforge.report.text import render_text
from dialforge.runner.progress import LogReporter
from dialforge.runner.run import RunOptions, run
from samples import USER_TURN, write_music_config

runner = CliRunner()
ASK = [UserMessage(content="Where is my order?")]


def saved(run_dir: Path) -> dict[str, Any]:
    return orjson.loads((run_dir / "usage.json").read_bytes())


def calls_per_role(rows: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for row in rows:
        counts[row["role"]] += row["usage"]["calls"]
    return counts


def booked_calls(run_dir: Path) -> Counter[str]:
    """Calls per role as the records and the preparation's stage reports book them."""
    counts: Counter[str] = Counter()
    for line in (run_dir / "dialogues.jsonl").read_bytes().splitlines():
        for role, usage in (orjson.loads(line).get("usage") or {}).items():
            counts[role] += usage["calls"]
    stages = run_dir / "artifacts" / "stage_reports.jsonl"
    for line in stages.read_bytes().splitlines() if stages.is_file() else ():
        for role, usage in (orjson.loads(line).get("usage") or {}).items():
            counts[role] += usage["calls"]
    return counts


def summed(rows: list[dict[str, Any]], field: str) -> int:
    return sum(sum(row[field].values()) for row in rows)


def shown(figure: str) -> int:
    """The count a progress figure starts with (``12 (rate_limited 8, ...)``)."""
    return int(figure.split()[0].rstrip(",").replace(",", ""))


async def test_a_scoped_call_that_fails_after_its_repair_books_both_replies() -> None:
    ledger = UsageLedger()
    model = ScriptedModel(["no json here", "still none"], role="user", ledger=ledger)
    usage: dict[str, Usage] = {}
    with usage_scope(usage), pytest.raises(ModelOutputError):
        await ScopedUsage(model, "user").complete(ASK, RequestOptions(response_format=USER_TURN))
    assert usage["user"].calls == 2 == ledger.stats("user", "scripted").usage.calls


async def test_a_repair_that_the_server_never_answers_books_the_first_reply(
    start_mock_server: StartMockServer,
) -> None:
    server = await start_mock_server()
    await server.queue_faults("empty", "server_error", "server_error")
    transport = HttpTransport(RetryPolicy(backoff_base_s=0.001, backoff_max_s=0.002), seed=0)
    settings = ResolvedModelSettings.model_validate(
        {"role": "agent", "model": "mock-model", "base_urls": [server.base_url], "max_retries": 1}
    )
    ledger = UsageLedger()
    client = OpenAICompatible(settings, EndpointPool([server.base_url], 4), transport, ledger=ledger)
    usage: dict[str, Usage] = {}
    try:
        with usage_scope(usage), pytest.raises(ModelUnavailable):
            await ScopedUsage(client, "agent").complete(ASK)
    finally:
        await transport.close()
    stats = ledger.stats("agent", "mock-model")
    assert usage["agent"].calls == 1 == stats.usage.calls, "the empty reply came and was paid for"
    assert usage["agent"].prompt_tokens == stats.usage.prompt_tokens > 0
    assert sum(stats.retries.values()) == 1 and sum(stats.failures.values()) == 1


async def test_under_faults_the_records_the_ledger_the_progress_and_the_statistics_agree(
    start_mock_server: StartMockServer, chinook_path: Path, tmp_path: Path
) -> None:
    server = await start_mock_server(
        fault_rate=0.3, faults=["rate_limit", "empty", "unknown_tool", "bad_arguments", "length"], seed=5
    )
    config = load_config(
        write_music_config(
            tmp_path,
            chinook_path,
            per_domain=6,
            extra=f"models:\n  default: {{model: mock-model, base_urls: {server.base_url}, max_retries: 1}}\n",
        )
    )
    out = tmp_path / "out"
    reporter = LogReporter(io.StringIO(), every_s=3600)
    await run(config, out, RunOptions(concurrency=1), reporter)

    ledger = saved(out)
    total = ledger["total"]
    assert len(ledger["sessions"]) == 1 and ledger["sessions"][0]["calls"] == total
    assert summed(total, "failures") > 0 and summed(total, "retries") > 0 and summed(total, "output_problems") > 0
    assert booked_calls(out) == calls_per_role(total), "every call the ledger counted is in a record"

    figures = reporter.figures()
    assert shown(figures["retries"]) == summed(total, "retries")
    assert shown(figures["failed calls"]) == summed(total, "failures")
    problems = sum((Counter(row["output_problems"]) for row in total), Counter())
    repaired = problems.pop("repaired", 0)
    assert shown(figures["output problems"]) == sum(problems.values())
    assert all(kind in reporter.line() for row in total for kind in row["retries"])
    assert str(sum(calls_per_role(total).values())) in reporter.summary()

    result = runner.invoke(app, ["stats", str(out), "--json"])
    assert result.exit_code == 0, result.output
    model_calls = orjson.loads(result.stdout)["model_calls"]
    assert model_calls["sessions"] == 1
    assert model_calls["calls"] == sum(calls_per_role(total).values())
    assert model_calls["retries"] == summed(total, "retries")
    assert model_calls["failed_calls"] == summed(total, "failures")
    assert model_calls["output_problems"] == sum(problems.values())
    assert model_calls["repaired"] == repaired
    assert {(m["role"], m["model"]) for m in model_calls["models"]} == {(r["role"], r["model"]) for r in total}
    text = render_text(run_dir_statistics(out))
    page = write_report(out, tmp_path / "report.html").read_text()
    for kind in [*problems, *(kind for row in total for kind in row["retries"])]:
        assert kind in text and f">{html.escape(kind)}</td>" in page


def test_a_resumed_run_adds_its_session_to_the_saved_ones(chinook_path: Path, tmp_path: Path) -> None:
    config = write_music_config(tmp_path, chinook_path, per_domain=6)
    out = tmp_path / "out"
    first = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out), "--limit", "2"])
    assert first.exit_code == 0, first.output
    earlier = saved(out)["sessions"]
    assert len(earlier) == 1
    first_calls = sum(calls_per_role(earlier[0]["calls"]).values())
    assert f"{first_calls:,}" in first.stdout and str(out / "usage.json") in first.stdout

    second = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out)])
    assert second.exit_code == 0, second.output
    after = saved(out)
    assert len(after["sessions"]) == 2 and after["sessions"][0] == earlier[0], "earlier sessions are kept as they were"
    assert after["total"] == merge_snapshots(session["calls"] for session in after["sessions"])
    assert calls_per_role(after["total"]) == booked_calls(out), "the sessions add up to what the records book"

    stats = runner.invoke(app, ["stats", str(out), "--json"])
    assert stats.exit_code == 0, stats.output
    model_calls = orjson.loads(stats.stdout)["model_calls"]
    assert model_calls["sessions"] == 2 and model_calls["calls"] == sum(calls_per_role(after["total"]).values())

    again = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out)])
    assert again.exit_code == 0 and saved(out) == after, "a session that asked nothing adds nothing"


def test_a_usage_file_that_is_not_one_is_named(chinook_path: Path, tmp_path: Path) -> None:
    config = write_music_config(tmp_path, chinook_path, per_domain=1)
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out)]).exit_code == 0
    (out / "usage.json").write_text('{"sessions": "many"}')
    for command in (["stats", str(out)], ["run", str(config), "--dry-run", "--out", str(out)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and str(out / "usage.json") in result.stderr


def test_merged_snapshots_add_up_every_count() -> None:
    one, two = UsageLedger(), UsageLedger()
    for ledger in (one, two):
        ledger.record_call("agent", "m", Usage(calls=1, prompt_tokens=10, seconds=0.5))
        ledger.record_retry("agent", "m", "rate_limited")
        ledger.record_output_problem("agent", "m", "empty")
    two.record_failure("agent", "m", "unavailable")
    two.record_call("user", "m", Usage(calls=1, seconds=2.0))
    merged = {row["role"]: row for row in merge_snapshots([one.snapshot(), two.snapshot()])}
    agent = merged["agent"]
    assert agent["usage"]["calls"] == 2 and agent["usage"]["prompt_tokens"] == 20
    assert (agent["retries"], agent["output_problems"], agent["failures"]) == (
        {"rate_limited": 2},
        {"empty": 2},
        {"unavailable": 1},
    )
    assert merged["user"]["max_seconds"] == 2.0 and one.snapshot()[0]["retries"] == {"rate_limited": 1}
