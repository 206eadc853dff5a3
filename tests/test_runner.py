"""``dialforge run`` and ``extend``: whole runs offline, resumed without duplicates or losses."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app
from samples import write_music_config

runner = CliRunner()


@pytest.fixture
def music_config(tmp_path: Path, chinook_path: Path) -> Path:
    return write_music_config(tmp_path, chinook_path)


def records(run_dir: Path) -> list[dict]:
    return [orjson.loads(line) for line in (run_dir / "dialogues.jsonl").read_bytes().splitlines()]


def test_a_dry_run_writes_the_run_directory_and_a_rerun_resumes_without_duplicates(
    music_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out), "--limit", "5"])
    assert first.exit_code == 0, first.output
    assert "DRY RUN" in first.stderr
    assert "sets no dialogue.today" in first.stderr, "a database domain without a pinned date is pointed out"
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "state.sqlite", "dialogues.jsonl", "artifacts"}
    assert len(records(out)) == 5

    second = runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out)])
    assert second.exit_code == 0, second.output
    rows = records(out)
    assert len(rows) == 8 and len({row["id"] for row in rows}) == 8
    assert "3 dialogues finished now" in second.stdout and "5 earlier" in second.stdout

    third = runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out)])
    assert "0 dialogues finished now" in third.stdout and len(records(out)) == 8
    for row in rows:
        assert row["messages"][0]["role"] == "system" and row["generator"]["models"]["agent"] == "dry-run"


def test_a_changed_config_is_refused_with_the_difference(music_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out), "--limit", "1"]).exit_code == 0
    music_config.write_text(music_config.read_text().replace("per_domain: 8", "per_domain: 9"))
    refused = runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out)])
    assert refused.exit_code == 2
    assert "-  per_domain: 8" in refused.stderr and "+  per_domain: 9" in refused.stderr
    assert "--force-new-config" in refused.stderr
    forced = runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out), "--force-new-config"])
    assert forced.exit_code == 0 and len(records(out)) == 9


def test_without_an_endpoint_the_run_says_how_to_configure_one(music_config: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(music_config), "--out", str(tmp_path / "out")], env={})
    assert result.exit_code == 2
    assert "no model endpoint is configured" in result.stderr and "--dry-run" in result.stderr
    assert not (tmp_path / "out").exists(), "nothing starts before the configuration is usable"


def test_a_broken_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("dialogue: {per_domain: zero}\n")
    result = runner.invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 2 and "dialogue.per_domain" in result.stderr


def test_extend_continues_existing_conversations(music_config: Path, tmp_path: Path) -> None:
    chats = tmp_path / "chats.jsonl"
    chat = {"messages": [{"role": "user", "content": "Hi! I love jazz."}, {"role": "assistant", "content": "Me too!"}]}
    chats.write_bytes(orjson.dumps(chat) + b"\n" + orjson.dumps(chat) + b"\n")
    out = tmp_path / "extended"
    result = runner.invoke(app, ["extend", str(chats), "--config", str(music_config), "--dry-run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = records(out)
    assert len(rows) == 2
    for row in rows:
        kept = [m for m in row["messages"] if m["role"] != "system"][:2]
        assert [m["content"] for m in kept] == ["Hi! I love jazz.", "Me too!"]
        assert row["status"] == "completed" or row["failure"]
    reports = [orjson.loads(line) for line in (out / "artifacts" / "stage_reports.jsonl").read_bytes().splitlines()]
    continuations = next(report for report in reports if report["stage"] == "continuations")
    assert continuations["usage"]["generator"]["calls"] >= 2, "a goal asked for each conversation"


def test_a_store_that_cannot_be_written_stops_the_run_with_a_way_to_resume(
    music_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from dialforge.runner.store import RunStore

    real_flush = RunStore.flush
    calls = {"n": 0}

    def failing_flush(store: RunStore) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database or disk is full")
        real_flush(store)

    def full_disk(store: RunStore) -> None:
        try:
            failing_flush(store)
        except sqlite3.OperationalError as exc:
            from dialforge.pipeline.artifacts import StoreError

            raise StoreError(f"cannot write the checkpoint store: {exc}") from None

    out = tmp_path / "out"
    monkeypatch.setattr(RunStore, "flush", full_disk)
    stopped = runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out)])
    assert stopped.exit_code == 1
    assert "database or disk is full" in stopped.stderr and "resume with: dialforge run" in stopped.stderr
    monkeypatch.setattr(RunStore, "flush", real_flush)
    resumed = runner.invoke(app, ["run", str(music_config), "--dry-run", "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    rows = records(out)
    assert len(rows) == 8 and len({row["id"] for row in rows}) == 8


def test_a_task_oriented_run_over_a_database_runs_the_tools_and_checks_on_it(
    chinook_path: Path, tmp_path: Path
) -> None:
    config = write_music_config(tmp_path, chinook_path, per_domain=3, tasks_per_dialogue=(1, 1), mode="task")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out)])
    assert result.exit_code == 0, result.output

    rows = records(out)
    assert len(rows) == 3 and {row["mode"] for row in rows} == {"task"}
    assert {row["env"]["kind"] for row in rows} == {"sql"}, "the database's tools, not a simulator"
    judged = [row for row in rows if row["judgment"] is not None]
    assert judged and all(row["judgment"]["verification"] is not None for row in judged)


def test_a_user_mode_run_over_a_database_says_its_tools_are_simulated_and_its_checks_not_run(
    chinook_path: Path, tmp_path: Path
) -> None:
    config = write_music_config(tmp_path, chinook_path, per_domain=1, tasks_per_dialogue=(1, 1), mode="user")
    result = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "music store" in result.stderr and "user+exec" in result.stderr
    rows = records(tmp_path / "out")
    assert {row["env"]["kind"] for row in rows} == {"simulated"}

    exec_config = write_music_config(tmp_path, chinook_path, per_domain=1, tasks_per_dialogue=(1, 1))
    executed = runner.invoke(app, ["run", str(exec_config), "--dry-run", "--out", str(tmp_path / "exec")])
    assert executed.exit_code == 0 and "music store" not in executed.stderr


def test_the_preparations_usage_is_in_the_statistics_and_stays_there_on_resume(
    chinook_path: Path, tmp_path: Path
) -> None:
    config = write_music_config(tmp_path, chinook_path, per_domain=2)
    text = config.read_text()
    config.write_text(text.replace(", policy: Confirm with the customer before changing anything.", ""))
    out = tmp_path / "out"

    def preparation() -> dict:
        stats = runner.invoke(app, ["stats", str(out), "--json"])
        assert stats.exit_code == 0, stats.output
        return next(row for row in orjson.loads(stats.stdout)["usage"]["roles"] if row["phase"] == "preparation")

    assert runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out)]).exit_code == 0
    first = preparation()  # the generator wrote the policy
    assert (first["role"], first["model"]) == ("generator", "dry-run")
    assert first["calls"] >= 1 and 0 < first["share"] < 1
    again = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out)])
    assert "0 dialogues finished now" in again.stdout, "nothing was asked again"
    assert preparation() == first, "a resumed run still counts what its preparation cost"
