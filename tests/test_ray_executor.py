"""``--executor ray`` on a local Ray instance with 2 workers: the local executor's dataset, sharded, resumed
per shard, and complete after a worker is killed mid-run. Slow (Ray starts in a few seconds): ``-m slow``."""

from __future__ import annotations

import importlib.util
import io
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from conftest import ThreadedMockServer
from dialforge.cli.main import app
from dialforge.config import load_config
from dialforge.runner.progress import Reporter
from dialforge.runner.ray_executor import KILL_AFTER_ENV, run_on_ray, shard_of
from dialforge.runner.run import RunOptions, run
from samples import write_music_config
from test_call_accounting import booked_calls, calls_per_role

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'dialforge[ray]')"
)


def write_config(tmp_path: Path, chinook_path: Path, per_domain: int) -> Path:
    return write_music_config(tmp_path, chinook_path, per_domain=per_domain, extra="ray: {workers: 2}\n")


def content(out: Path) -> list[dict[str, Any]]:
    rows = [orjson.loads(line) for line in (out / "dialogues.jsonl").read_bytes().splitlines()]
    for row in rows:
        row.pop("usage")  # wall-clock seconds differ between runs; everything else must not
    return rows


def shard_ids(out: Path, shard: int) -> set[str]:
    connection = sqlite3.connect(out / "shards" / str(shard) / "state.sqlite")
    try:
        return {row[0] for row in connection.execute("SELECT id FROM dialogues WHERE finished = 1")}
    finally:
        connection.close()


def quiet() -> Reporter:
    return Reporter(io.StringIO())


@pytest.mark.slow
@needs_ray
async def test_ray_shards_give_the_local_dataset_and_resume_per_shard(tmp_path: Path, chinook_path: Path) -> None:
    config = load_config(write_config(tmp_path, chinook_path, per_domain=12))
    local = await run(config, tmp_path / "local", RunOptions(dry_run=True), quiet())
    assert local.finished == 12

    out = tmp_path / "ray"
    first = await run_on_ray(config, out, RunOptions(dry_run=True, limit=5), quiet(), address=None, workers=2)
    assert (first.finished, first.skipped) == (5, 0) and len(content(out)) == 5
    second = await run_on_ray(config, out, RunOptions(dry_run=True), quiet(), address=None, workers=2)
    assert (second.finished, second.skipped, second.planned) == (7, 5, 12), "only unfinished work is launched"

    expected, got = content(tmp_path / "local"), content(out)
    assert [row["id"] for row in got] == sorted(row["id"] for row in expected)
    assert got == expected
    zero, one = shard_ids(out, 0), shard_ids(out, 1)
    assert zero and one and not zero & one and zero | one == {row["id"] for row in got}
    assert all(shard_of(key, 2) == 0 for key in zero) and all(shard_of(key, 2) == 1 for key in one)

    third = await run_on_ray(config, out, RunOptions(dry_run=True), quiet(), address=None, workers=2)
    assert (third.finished, third.skipped) == (0, 12) and content(out) == expected
    ledger = orjson.loads((out / "usage.json").read_bytes())
    assert len(ledger["sessions"]) == 2, "each session that made calls, its shards' calls merged in"
    assert calls_per_role(ledger["total"]) == booked_calls(out), "the saved ledger counts what the records book"


@pytest.mark.slow
@needs_ray
async def test_a_worker_killed_mid_run_is_retried_and_the_dataset_is_complete(
    tmp_path: Path, chinook_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(tmp_path, chinook_path, per_domain=30))
    await run(config, tmp_path / "local", RunOptions(dry_run=True), quiet())

    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_AFTER_ENV, f"3:{marker}")  # the first worker to finish 3 dialogues dies (SIGKILL)
    out = tmp_path / "ray"
    summary = await run_on_ray(config, out, RunOptions(dry_run=True, concurrency=2), quiet(), address=None, workers=2)

    assert marker.is_file(), "a worker must really have been killed mid-run"
    got = content(out)
    assert summary.finished == len(got) == 30 and len({row["id"] for row in got}) == 30
    assert got == content(tmp_path / "local")


def test_without_ray_the_ray_executor_says_how_to_install_it(
    tmp_path: Path, chinook_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like to imports
    config = write_config(tmp_path, chinook_path, per_domain=2)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(config), "--dry-run", "--executor", "ray", "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("pip install 'dialforge[ray]'") and len(result.stderr.splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
@needs_ray
def test_a_wrong_key_in_a_shard_stops_the_run_the_right_key_continues_it_and_failed_ones_are_retried(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Callable[..., ThreadedMockServer]
) -> None:
    server = threaded_mock_server(api_key="right-key")
    models = (
        f"models: {{default: {{model: mock-model, base_urls: {server.base_url}, api_key_env: DIALFORGE_TEST_KEY}}, "
        "judge: {api_key_env: DIALFORGE_TEST_JUDGE_KEY}}\n"  # DIALFORGE_ variables reach the workers
    )
    config = write_music_config(tmp_path, chinook_path, per_domain=6, extra="ray: {workers: 2}\n" + models)
    out = tmp_path / "ray"
    command = ["run", str(config), "--executor", "ray", "--out", str(out), "--skip-server-check"]  # refused in shards
    env = {"DIALFORGE_TEST_KEY": "right-key", "DIALFORGE_TEST_JUDGE_KEY": "wrong-key"}

    stopped = CliRunner().invoke(app, command, env=env)
    assert stopped.exit_code == 1, stopped.output
    assert server.base_url in stopped.stderr and "HTTP 401" in stopped.stderr
    assert "DIALFORGE_TEST_JUDGE_KEY" in stopped.stderr and "models.judge" in stopped.stderr
    assert not (out / "dialogues.jsonl").read_bytes(), "no dialogue is marked finished in any shard"

    env["DIALFORGE_TEST_JUDGE_KEY"] = "right-key"
    server.queue_faults("context_length")  # one dialogue's request is over the context length: it alone fails
    resumed = CliRunner().invoke(app, command, env=env)
    assert resumed.exit_code == 0, resumed.output
    rows = {row["id"]: row for row in content(out)}
    refused = [key for key, row in rows.items() if "maximum context length" in (row.get("failure") or "")]
    assert len(rows) == 6 and len(refused) == 1

    retried = CliRunner().invoke(app, [*command, "--retry-failed"], env=env)
    assert retried.exit_code == 0, retried.output
    after = {row["id"]: row for row in content(out)}
    assert after.keys() == rows.keys() and "maximum context length" not in (after[refused[0]].get("failure") or "")
    assert {k: v for k, v in after.items() if k != refused[0]} == {k: v for k, v in rows.items() if k != refused[0]}
