"""Requests the model server refuses. A refusal no dialogue can get past (a wrong key, an unknown model or URL, a
request format the server does not take) stops the run, names the endpoint, the model and the fix, and marks no
dialogue finished, so the next run continues them; a refusal of one dialogue's request (a prompt over the context
length) fails only that dialogue; ``--retry-failed`` runs failed dialogues again from the start."""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from conftest import ThreadedMockServer
from dialforge.cli.main import app
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.llm import ModelRequestRejected
from dialforge.runner.store import RunStore
from samples import write_music_config
from test_engine import ADD_POLKA, engine_with, user

runner = CliRunner()
KEY_ENV = "DIALFORGE_TEST_JUDGE_KEY"
RIGHT_KEY = "right-key"
DIALOGUES = 3
CONTEXT_REFUSAL = "This model's maximum context length is 4096 tokens. However, you requested 5021 tokens"


def music_config(tmp_path: Path, chinook_path: Path, models: str, *, tasks: bool = True) -> Path:
    path = write_music_config(
        tmp_path, chinook_path, per_domain=DIALOGUES, tasks_per_dialogue=(1, 1), extra=f"models: {models}\n"
    )
    tools = tmp_path / "tools.json"  # only the tools the goals use: checking every scaffolded tool takes seconds
    kept = [tool for tool in orjson.loads(tools.read_bytes()) if tool["name"] in ("get_invoice", "create_genre")]
    tools.write_bytes(orjson.dumps(kept))
    if not tasks:  # the goals are then the generator's to write, in the preparation
        path.write_text(path.read_text().replace(" tasks: tasks.jsonl,", ""))
    return path


def judge_key_config(tmp_path: Path, chinook_path: Path, server: ThreadedMockServer) -> Path:
    """Every role sends the key in DIALFORGE_TEST_KEY, but the judge the one in its own variable (as a judge on
    another account would)."""
    return music_config(
        tmp_path,
        chinook_path,
        f"{{default: {{model: mock-model, base_urls: {server.base_url}, api_key_env: DIALFORGE_TEST_KEY}}, "
        f"judge: {{api_key_env: {KEY_ENV}}}}}",
    )


def records(out: Path) -> list[dict[str, Any]]:
    path = out / "dialogues.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def stored_states(out: Path) -> dict[str, dict[str, Any]]:
    """Every dialogue's latest stored state, finished or not."""
    connection = sqlite3.connect(out / "state.sqlite")
    try:
        return {key: orjson.loads(state) for key, state in connection.execute("SELECT id, state FROM dialogues")}
    finally:
        connection.close()


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Any:
    """The command, a run without the server check: these tests are about refusals met during a run (a key
    revoked, a server restarted another way), and the check's probes would take the faults queued for it."""
    words = [str(arg) for arg in args]
    return runner.invoke(app, [*words, "--skip-server-check"] if words[0] == "run" else words, env=env)


# --- which refusals block every request, and what to do about them ------------------------------------------


@pytest.mark.parametrize(
    ("status", "server_says", "blocks", "fix_names"),
    [
        (401, "incorrect or missing API key", True, KEY_ENV),
        (403, "this key may not use the model", True, KEY_ENV),
        (404, "The model `mock-modle` does not exist.", True, "/models"),
        (400, "Conversation roles must alternate user/assistant/user/assistant/...", True, "--chat-template"),
        (400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set', True, "tool"),
        (400, "Unsupported parameter: 'max_tokens' is not supported with this model.", True, "models.judge"),
        (400, "response_format of type json_schema is not supported by this server", True, "structured_output"),
        (400, f"{CONTEXT_REFUSAL} (4000 in the messages, 1021 in the completion).", False, None),
        (400, "The response was filtered due to the prompt triggering the content management policy.", False, None),
        (413, "request entity too large", False, None),
    ],
)
def test_a_refusal_says_whether_every_request_meets_it_and_what_fixes_it(
    status: int, server_says: str, blocks: bool, fix_names: str | None
) -> None:
    refusal = ModelRequestRejected(
        f"endpoint http://gpu:8000/v1 rejected model 'mock-model': HTTP {status}: {server_says}",
        status=status,
        endpoint="http://gpu:8000/v1",
        model="mock-model",
    )
    refusal.role, refusal.api_key_env = "judge", KEY_ENV
    assert refusal.blocks_every_request is blocks
    if fix_names is None:
        assert refusal.fix is None
    else:
        assert refusal.fix is not None and fix_names in refusal.fix


def test_a_refusal_survives_the_trip_to_another_process() -> None:
    refusal = ModelRequestRejected("HTTP 401: bad key", status=401, endpoint="http://gpu:8000/v1", model="m")
    refusal.role, refusal.api_key_env = "agent", "OPENAI_API_KEY"
    copy = pickle.loads(pickle.dumps(refusal))
    assert (str(copy), copy.status, copy.endpoint, copy.role, copy.fix) == (
        str(refusal),
        401,
        "http://gpu:8000/v1",
        "agent",
        refusal.fix,
    )


# --- the engine: one dialogue's refusal fails it, a refusal of every request stops the caller -----------------


async def test_a_dialogue_specific_refusal_fails_the_dialogue(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(chinook, users=[ModelRequestRejected(CONTEXT_REFUSAL, status=400)])
    state = await engine.run(engine.start("music store", [ADD_POLKA], dialogue_id="d1", seed=1))
    assert state.status == "failed" and "maximum context length" in (state.failure or "")


async def test_a_refusal_of_every_request_propagates_and_leaves_the_state_as_it_was(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(
        chinook,
        users=[user("Please add a genre called Polka.")],
        agents=[ModelRequestRejected("HTTP 401: incorrect or missing API key", status=401)],
    )
    state = await engine.step(engine.start("music store", [ADD_POLKA], dialogue_id="d1", seed=1))
    before = state.model_dump_json()
    with pytest.raises(ModelRequestRejected):
        await engine.step(state)
    assert state.model_dump_json() == before and state.next_actor == "agent" and state.status == "running"


# --- whole runs over HTTP --------------------------------------------------------------------------------------


def test_a_wrong_key_stops_the_run_and_the_right_key_continues_every_dialogue(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Callable[..., ThreadedMockServer]
) -> None:
    server = threaded_mock_server(api_key=RIGHT_KEY)
    config = judge_key_config(tmp_path, chinook_path, server)
    out = tmp_path / "out"
    env = {"DIALFORGE_TEST_KEY": RIGHT_KEY, KEY_ENV: "wrong-key"}

    stopped = invoke("run", config, "--out", out, "--concurrency", str(DIALOGUES), env=env)
    assert stopped.exit_code == 1, stopped.output
    message = stopped.stderr
    assert server.base_url in message and "'mock-model'" in message and "HTTP 401" in message
    assert KEY_ENV in message and "models.judge" in message, "the fix names the key's variable and the role"
    assert f"--out {out}" in message, "and says how to go on"
    assert records(out) == [], "no dialogue the refusal hit is marked finished"
    states = stored_states(out)
    judged_next = {key: state for key, state in states.items() if state["next_actor"] == "judge"}
    assert judged_next, "a dialogue got as far as its judge, and is stored there"
    assert all(state["status"] == "running" for state in states.values())

    env[KEY_ENV] = RIGHT_KEY
    server.reset()
    resumed = invoke("run", config, "--out", out, env=env)
    assert resumed.exit_code == 0, resumed.output
    rows = {row["id"]: row for row in records(out)}
    assert len(rows) == DIALOGUES and f"{DIALOGUES} dialogues finished now" in resumed.stdout
    assert not any("rejected" in (row.get("failure") or "") for row in rows.values())
    for key, state in judged_next.items():  # continued from the stored state, not generated again
        assert rows[key]["messages"] == state["messages"] and rows[key]["judgment"] is not None


def test_a_wrong_key_in_the_preparation_stops_it_with_the_same_help(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Callable[..., ThreadedMockServer]
) -> None:
    server = threaded_mock_server(api_key=RIGHT_KEY)
    models = f"{{default: {{model: mock-model, base_urls: {server.base_url}, api_key_env: {KEY_ENV}}}}}"
    config = music_config(tmp_path, chinook_path, models, tasks=False)
    out = tmp_path / "out"
    stopped = invoke("run", config, "--out", out, env={KEY_ENV: "wrong-key"})
    assert stopped.exit_code == 1, stopped.output
    message = stopped.stderr
    assert server.base_url in message and "'mock-model'" in message and "HTTP 401" in message
    assert KEY_ENV in message and "models.generator" in message
    assert records(out) == []


def test_a_wrong_base_url_says_how_to_list_the_models(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Callable[..., ThreadedMockServer]
) -> None:
    server = threaded_mock_server()
    wrong = server.base_url.removesuffix("/v1") + "/v2"
    config = music_config(tmp_path, chinook_path, f"{{default: {{model: m, base_urls: {wrong}}}}}")
    out = tmp_path / "out"
    stopped = invoke("run", config, "--out", out)
    assert stopped.exit_code == 1, stopped.output
    assert wrong in stopped.stderr and "'m'" in stopped.stderr and "HTTP 404" in stopped.stderr
    assert f"{wrong}/models" in stopped.stderr, "the fix says where to see what the server serves"
    assert records(out) == []


def test_a_refused_request_format_stops_the_run_and_says_what_was_refused(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Callable[..., ThreadedMockServer]
) -> None:
    server = threaded_mock_server()
    config = music_config(tmp_path, chinook_path, f"{{default: {{model: mock-model, base_urls: {server.base_url}}}}}")
    out = tmp_path / "out"
    server.queue_faults("chat_template")
    stopped = invoke("run", config, "--out", out, "--concurrency", "1")
    assert stopped.exit_code == 1, stopped.output
    assert "roles must alternate" in stopped.stderr and "--chat-template" in stopped.stderr
    assert records(out) == []
    resumed = invoke("run", config, "--out", out)
    assert resumed.exit_code == 0 and len(records(out)) == DIALOGUES


def test_one_dialogues_refusal_fails_only_it_and_retry_failed_runs_it_again(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Callable[..., ThreadedMockServer]
) -> None:
    server = threaded_mock_server()
    config = music_config(tmp_path, chinook_path, f"{{default: {{model: mock-model, base_urls: {server.base_url}}}}}")
    out = tmp_path / "out"
    server.queue_faults("context_length")  # the first request: the first dialogue's first user turn
    first = invoke("run", config, "--out", out, "--concurrency", "1")
    assert first.exit_code == 0, first.output
    rows = {row["id"]: row for row in records(out)}
    refused = [key for key, row in rows.items() if "maximum context length" in (row.get("failure") or "")]
    assert len(rows) == DIALOGUES and len(refused) == 1 and rows[refused[0]]["status"] == "failed"
    assert "--retry-failed" in first.stdout, "the summary says how to run failed dialogues again"
    failed_before = {key for key, row in rows.items() if row["status"] == "failed"}

    plain = invoke("run", config, "--out", out)
    assert plain.exit_code == 0 and "0 dialogues finished now" in plain.stdout
    assert {row["id"]: row for row in records(out)} == rows, "a plain resume leaves failed dialogues failed"

    retried = invoke("run", config, "--out", out, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert f"{len(failed_before)} dialogues finished now" in retried.stdout
    after = {row["id"]: row for row in records(out)}
    assert after.keys() == rows.keys()
    assert "maximum context length" not in (after[refused[0]].get("failure") or "")
    assert after[refused[0]]["seed"] == rows[refused[0]]["seed"]
    for key in rows.keys() - failed_before:
        assert after[key] == rows[key], "a dialogue that did not fail is left alone"


def test_only_failed_records_count_as_failed_truncated_ones_completed_their_kept_goals(
    tmp_path: Path, chinook: SQLDatabase
) -> None:
    engine, _ = engine_with(chinook)
    store = RunStore(tmp_path / "run")
    try:
        for key, status, truncated in (
            ("whole", "completed", False),
            ("cut", "completed", True),
            ("bad", "failed", False),
        ):
            state = engine.start("music store", [ADD_POLKA], dialogue_id=key, seed=1)
            state = state.model_copy(update={"status": status, "truncated": truncated, "next_actor": "done"})
            store.save(state, engine.record(state))
        store.save(engine.start("music store", [ADD_POLKA], dialogue_id="open", seed=1))
        store.flush()
        assert store.failed_ids() == {"bad"}
        assert store.finished_ids() == {"whole", "cut", "bad"}
    finally:
        store.close()
