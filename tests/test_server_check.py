"""The server check: a few tiny real requests per endpoint and model say what a server does, and a run whose roles
need what their server cannot do is refused before anything is generated. The mock server plays a server with
tool support and one whose chat template has none (as llama.cpp serves it: tools dropped from the prompt,
tool_choice ignored, a tool message in the history refused)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from typer.testing import CliRunner

from conftest import MockServerHandle, StartMockServer, ThreadedMockServer
from dialforge.cli.main import app
from dialforge.llm.server_check import CHECKS, check_servers
from dialforge.llm.settings import ModelsConfig, ModelSettings
from samples import write_music_config

runner = CliRunner()
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]
TOOL_HISTORY = [
    *ASK,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "cloudy"}'},
]


def models_at(base_url: str, **roles: ModelSettings) -> ModelsConfig:
    return ModelsConfig(default=ModelSettings(model="mock-model", base_urls=[base_url]), **roles)


def closed_port_url() -> str:
    """A base URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def chat(server: MockServerHandle, **body: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/chat/completions", json={"model": "mock-model", **body}) as response,
    ):
        return response.status, await response.json()


# --- the mock server's two kinds of chat template ----------------------------------------------------------


async def test_a_template_with_tools_counts_them_in_the_prompt_and_one_without_drops_them(
    start_mock_server: StartMockServer,
) -> None:
    with_tools, without_tools = await start_mock_server(), await start_mock_server(template_without_tools=True)
    for server, rendered in ((with_tools, True), (without_tools, False)):
        _, plain = await chat(server, messages=ASK)
        _, offered = await chat(server, messages=ASK, tools=[TOOL])
        assert (offered["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]) is rendered
        assert offered["usage"]["prompt_tokens"] >= plain["usage"]["prompt_tokens"]


async def test_a_template_without_tools_ignores_tool_choice_and_refuses_a_tool_message(
    start_mock_server: StartMockServer,
) -> None:
    server = await start_mock_server(template_without_tools=True)
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        status, body = await chat(server, messages=ASK, tools=[TOOL], tool_choice=choice)
        assert status == 200
        assert body["choices"][0]["message"]["content"]
        assert not body["choices"][0]["message"].get("tool_calls")
    status, body = await chat(server, messages=TOOL_HISTORY, tools=[TOOL])
    assert status == 400
    assert "roles must alternate" in body["error"]["message"]


# --- what the check finds ------------------------------------------------------------------------------------


async def test_a_server_with_tool_support_meets_every_roles_needs(mock_server: MockServerHandle) -> None:
    result = await check_servers(models_at(mock_server.base_url))
    assert result.ok, result.problems
    [endpoint] = result.endpoints  # five roles, one base URL and model: probed once
    assert sorted(endpoint.roles) == sorted(["generator", "user", "agent", "tool", "judge"])
    assert endpoint.server == "dialforge"
    holds = {check: endpoint.findings[check].holds for check in CHECKS}
    assert holds == {
        "reachable": True,
        "model_listed": True,
        "tools_rendered": True,
        "tool_choice_required": True,
        "tool_choice_named": True,
        "tool_messages": True,
        "json_schema": True,
        "reasoning": False,
        "cached_tokens": False,
    }


async def test_the_probes_are_few_and_small(mock_server: MockServerHandle) -> None:
    await check_servers(models_at(mock_server.base_url))
    sent = await mock_server.requests()
    assert len(sent) <= 8
    assert all(body["max_tokens"] <= 64 for body in sent)


async def test_a_template_without_tools_fails_the_agent_only_and_says_how_to_turn_tools_on(
    start_mock_server: StartMockServer,
) -> None:
    server = await start_mock_server(template_without_tools=True)
    result = await check_servers(models_at(server.base_url))
    assert not result.ok
    [problem] = result.problems
    assert problem.roles == ["agent"]
    assert problem.base_url == server.base_url
    assert {"tools_rendered", "tool_messages"} <= set(problem.checks)
    assert "--jinja" in problem.fix
    assert "--tool-call-parser" in problem.fix
    findings = result.endpoints[0].findings
    assert findings["tool_choice_required"].holds is False
    assert findings["tool_choice_named"].holds is False
    assert findings["tool_messages"].refused
    assert "roles must alternate" in findings["tool_messages"].detail


async def test_a_tool_choice_answered_in_text_is_a_note_when_the_tools_are_rendered(
    start_mock_server: StartMockServer, tmp_path: Path
) -> None:
    """As llama.cpp serves a template with tools: they are rendered, but a forced choice may come back as text."""
    script = tmp_path / "replies.jsonl"
    script.write_text('{"content": "It is cloudy in Oslo."}\n' * 7)
    server = await start_mock_server(script=script)
    result = await check_servers(
        ModelsConfig(default=ModelSettings(model="mock-model", base_urls=[server.base_url], structured_output="prompt"))
    )
    findings = result.endpoints[0].findings
    assert findings["tools_rendered"].holds is True
    assert findings["tool_choice_required"].holds is False
    assert findings["json_schema"].holds is False  # ignored: the roles ask in the prompt, so no problem
    assert result.ok, result.problems
    [note] = result.notes
    assert "agent" in note and server.base_url in note


async def test_a_server_that_is_down_is_reported_for_its_endpoint_alone(mock_server: MockServerHandle) -> None:
    down = closed_port_url()
    result = await check_servers(models_at(mock_server.base_url, judge=ModelSettings(base_urls=[down])), timeout_s=5)
    [problem] = result.problems
    assert problem.roles == ["judge"]
    assert problem.base_url == down
    assert problem.checks == ["reachable"]
    assert "start the server" in problem.fix
    by_url = {endpoint.base_url: endpoint for endpoint in result.endpoints}
    assert by_url[down].findings["reachable"].holds is False
    assert by_url[mock_server.base_url].findings["tools_rendered"].holds is True


async def test_a_refused_json_schema_is_fine_for_auto_and_a_problem_for_native(
    start_mock_server: StartMockServer,
) -> None:
    server = await start_mock_server(reject_json_schema=True)
    auto = await check_servers(models_at(server.base_url))
    assert auto.ok  # structured_output auto falls back to the prompt by itself
    assert auto.endpoints[0].findings["json_schema"].holds is False
    native = await check_servers(models_at(server.base_url, judge=ModelSettings(structured_output="native")))
    [problem] = native.problems
    assert problem.roles == ["judge"]
    assert "models.judge.structured_output: prompt" in problem.fix


async def test_reasoning_is_seen_when_the_server_returns_it(start_mock_server: StartMockServer) -> None:
    server = await start_mock_server(reasoning="field")
    result = await check_servers(models_at(server.base_url))
    assert result.endpoints[0].findings["reasoning"].holds is True


async def test_roles_sending_different_keys_are_probed_apart_and_a_wrong_key_is_named(
    start_mock_server: StartMockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await start_mock_server(api_key="right-key")
    monkeypatch.setenv("CHECK_KEY", "right-key")
    monkeypatch.setenv("CHECK_JUDGE_KEY", "wrong-key")
    models = models_at(server.base_url, judge=ModelSettings(api_key_env="CHECK_JUDGE_KEY"))
    models.default.api_key_env = "CHECK_KEY"
    result = await check_servers(models)
    assert len(result.endpoints) == 2
    [problem] = result.problems
    assert problem.roles == ["judge"]
    assert "CHECK_JUDGE_KEY" in problem.fix


# --- the command line: check-server, and run refusing before any dialogue --------------------------------


def music_config(tmp_path: Path, chinook_path: Path, server: ThreadedMockServer) -> Path:
    models = f"models: {{default: {{model: mock-model, base_urls: {server.base_url}}}}}\n"
    return write_music_config(tmp_path, chinook_path, per_domain=1, tasks_per_dialogue=(1, 1), extra=models)


def test_check_server_prints_what_holds_and_exits_0(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Any
) -> None:
    config = music_config(tmp_path, chinook_path, threaded_mock_server())
    shown = runner.invoke(app, ["check-server", str(config)], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "tools rendered in the prompt" in shown.output
    as_json = runner.invoke(app, ["check-server", str(config), "--json"])
    assert as_json.exit_code == 0
    report = orjson.loads(as_json.stdout)
    assert report["ok"] is True
    assert report["endpoints"][0]["findings"]["tool_messages"]["holds"] is True


def test_check_server_refuses_a_template_without_tools_naming_the_role_and_endpoint(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Any
) -> None:
    server = threaded_mock_server(template_without_tools=True)
    config = music_config(tmp_path, chinook_path, server)
    shown = runner.invoke(app, ["check-server", str(config)], terminal_width=200)
    assert shown.exit_code == 1
    assert f"agent at {server.base_url}" in shown.output
    assert "--jinja" in shown.output
    report = orjson.loads(runner.invoke(app, ["check-server", str(config), "--json"]).stdout)
    assert report["ok"] is False
    assert report["problems"][0]["roles"] == ["agent"]


def test_run_refuses_a_template_without_tools_before_any_dialogue_and_skipping_the_check_goes_on(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Any
) -> None:
    server = threaded_mock_server(template_without_tools=True)
    config, out = music_config(tmp_path, chinook_path, server), tmp_path / "out"
    refused = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert refused.exit_code == 2
    assert f"agent at {server.base_url}" in refused.stderr
    assert "--jinja" in refused.stderr
    assert "--skip-server-check" in refused.stderr
    assert not out.exists()  # no run directory, so no dialogue record either
    probes = server.stats()["requests"]
    runner.invoke(app, ["run", str(config), "--out", str(out), "--skip-server-check"])
    assert server.stats()["requests"] > probes  # the run went on to ask the server
    assert (out / "state.sqlite").exists()


def test_run_against_a_server_with_tool_support_checks_it_and_generates(
    tmp_path: Path, chinook_path: Path, threaded_mock_server: Any
) -> None:
    config, out = music_config(tmp_path, chinook_path, threaded_mock_server()), tmp_path / "out"
    done = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "server check" in done.stderr
    assert (out / "dialogues.jsonl").read_bytes().count(b"\n") == 1


def test_a_dry_run_contacts_no_server(tmp_path: Path, chinook_path: Path, threaded_mock_server: Any) -> None:
    server = threaded_mock_server()
    config = music_config(tmp_path, chinook_path, server)
    done = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "out"), "--dry-run"])
    assert done.exit_code == 0, done.output
    assert server.stats()["requests"] == 0
