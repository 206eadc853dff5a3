"""``dialforge extend``: existing conversations continued offline, kept as given, with the tools they brought."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.config import DialogueConfig, load_config
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironments
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm import ScriptedModel
from dialforge.llm.completion import ROLES
from dialforge.llm.role_models import RoleModels
from dialforge.model import AssistantMessage, DialogueState, Task, ToolCall, ToolMessage, ToolSpec, UserMessage
from dialforge.pipeline.conversations import load_conversations
from dialforge.pipeline.engine import DialogueEngine, DomainSetup
from dialforge.pipeline.preparation import python_environments
from dialforge.prompts import render_section
from prompt_checks import filled_in
from samples import verdict, whole_goal

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
runner = CliRunner()

INVOICE = {"type": "object", "properties": {"invoice_id": {"type": "integer"}}, "required": ["invoice_id"]}
GET_INVOICE = SQLTool(
    name="get_invoice",
    description="One invoice by id; returns InvoiceId, CustomerId and Total.",
    parameters=INVOICE,
    sql='SELECT "InvoiceId", "CustomerId", "Total" FROM "Invoice" WHERE "InvoiceId" = :invoice_id',
    returns={"type": "object"},
)
FORECAST = ToolSpec(
    name="get_weather_forecast",
    description="The weather forecast for a city and day.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TOTAL = Task(id="total", description="You are customer 58 and want to know the total of invoice 412.", tools=[])
BROUGHT_HISTORY = [
    UserMessage(content="  Will it rain in Oslo?  "),
    AssistantMessage(tool_calls=[ToolCall.make("w1", "get_weather_forecast", '{"city":"Oslo"}')]),
    ToolMessage(tool_call_id="w1", name="get_weather_forecast", content='{"forecast": "rain"}'),
    AssistantMessage(content="Yes, rain is expected in Oslo."),
    UserMessage(content="OK. Also, what is the total of invoice 412?"),
]  # fmt: skip


def run_cli(*args: Any) -> Any:
    return runner.invoke(app, [str(arg) for arg in args])


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (run_dir / "dialogues.jsonl").read_bytes().splitlines()]


def test_the_readmes_extend_command_continues_every_example_conversation_offline(tmp_path: Path) -> None:
    chats = EXAMPLES / "chats.jsonl"
    out = tmp_path / "extended"
    result = run_cli("extend", chats, "--config", EXAMPLES / "quickstart.yaml", "--dry-run", "--out", out)
    assert result.exit_code == 0, result.output

    given = load_conversations(chats).conversations
    made = records(out)
    assert [record["id"] for record in made] == [f"extend-{index:06d}" for index in range(len(given))]
    for record, conversation in zip(made, given, strict=True):
        assert record["tasks"], f"{conversation.where}: no goal was written: {record['failure']}"
        assert record["tasks"][0]["continuation"]["how"] in ("continues", "new_need")
        count = record["prefix_messages"]
        assert count == len(conversation.messages)
        continued = [message.model_dump(mode="json", exclude_none=True) for message in conversation.messages]
        kept = [{k: v for k, v in m.items() if v is not None} for m in record["messages"][1 : 1 + count]]
        assert kept == continued, "the conversation is kept as given"
        assert len(record["messages"]) > 1 + count, "the dialogue went on"
    assert made[1]["messages"][0]["content"].endswith("\n\nYou are a helpful assistant.\n"), "its system prompt is kept"
    weather = made[2]
    assert "get_weather_forecast" in [tool["function"]["name"] for tool in weather["tools"]]


def test_a_continuation_goal_is_written_again_only_when_what_shapes_it_changes(tmp_path: Path) -> None:
    config = tmp_path / "quickstart.yaml"
    data = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    for key in ("database", "tools", "tasks"):
        data["domains"][0][key] = str(EXAMPLES / data["domains"][0][key])
    config.write_text(yaml.safe_dump(data))
    chats = tmp_path / "chats.jsonl"
    chats.write_bytes((EXAMPLES / "chats.jsonl").read_bytes().splitlines()[0] + b"\n")
    out = tmp_path / "run"

    def goal_requests() -> int:
        sessions = orjson.loads((out / "usage.json").read_bytes())["sessions"]
        return sum(row["usage"]["calls"] for s in sessions for row in s["calls"] if row["role"] == "generator")

    assert run_cli("extend", chats, "--config", config, "--dry-run", "--out", out).exit_code == 0
    first = goal_requests()
    assert first >= 1
    assert run_cli("extend", chats, "--config", config, "--dry-run", "--out", out).exit_code == 0
    assert goal_requests() == first, "the stored goal is used again"

    data["domains"][0]["policy"] += "\n- Gift wrapping is free."
    config.write_text(yaml.safe_dump(data))
    changed = run_cli("extend", chats, "--config", config, "--dry-run", "--out", out, "--force-new-config")
    assert changed.exit_code == 0, changed.output
    assert goal_requests() > first, "a changed policy shapes the goal, so it is written again"


def brought_tools_engine(
    chinook: SQLDatabase, agents: list[Any], tool_replies: list[str]
) -> tuple[DialogueEngine, dict[str, ScriptedModel]]:
    models = {
        "user": ScriptedModel([orjson.dumps({"user_message": "Thanks!", "is_task_complete": True}).decode()]),
        "agent": ScriptedModel(agents, role="agent"),
        "judge": ScriptedModel([verdict(whole_goal(1))], role="judge"),
        "tool": ScriptedModel(tool_replies, role="tool"),
        "generator": ScriptedModel([], role="generator"),
    }
    engine = DialogueEngine(models, mode="user+exec", settings=DialogueConfig(), personas=[])
    engine.add_domain(
        DomainSetup(
            name="music store", tools=[GET_INVOICE.to_spec()], environments=SQLEnvironments(chinook, [GET_INVOICE])
        )
    )
    return engine, models


async def test_tools_a_conversation_brought_stay_its_tools_and_a_model_plays_them_across_a_restart(
    chinook: SQLDatabase,
) -> None:
    agents = [
        {"tool_calls": [{"name": "get_weather_forecast", "arguments": {"city": "Bergen"}}]},
        {"tool_calls": [{"name": "get_invoice", "arguments": {"invoice_id": 412}}]},
        {"content": "Invoice 412 totals 1.99, and Bergen will be dry."},
    ]
    forecast = orjson.dumps({"result": {"forecast": "dry"}}).decode()
    first, first_models = brought_tools_engine(chinook, agents, [forecast])
    state = first.start(
        "music store",
        [TOTAL],
        dialogue_id="x1",
        seed=3,
        messages=BROUGHT_HISTORY,
        instructions="Answer in one sentence.",
        tools=[FORECAST],
    )
    assert state.next_actor == "agent" and state.status == "running"
    state = await first.step(state)  # the agent asks for the forecast again
    state = await first.step(state)  # a model plays the brought tool
    assert state.messages[-1].content == '{"forecast":"dry"}'
    log = filled_in(first_models["tool"].requests[0].messages[0].content, "tool_simulator")["log"]
    assert '"city":"Oslo"' in log and '"forecast":"rain"' in log, "the model playing it sees what it said before"

    second, second_models = brought_tools_engine(chinook, agents[1:], [])  # a new process, from what was stored
    state = await second.run(DialogueState.model_validate_json(state.model_dump_json()))
    assert state.status == "completed", state.failure
    assert '"Total":1.99' in next(m.content for m in reversed(state.messages) if isinstance(m, ToolMessage))
    record = second.record(state)
    assert [tool["function"]["name"] for tool in record.tools] == ["get_invoice", "get_weather_forecast"]
    assert record.prefix_messages == len(BROUGHT_HISTORY)
    assert record.messages[1 : 1 + len(BROUGHT_HISTORY)] == BROUGHT_HISTORY
    assert record.messages[0].content.endswith("\n\nAnswer in one sentence.\n")
    assert "tool_simulator" in record.generator["prompts"], "the brought tool was played by a model"
    judged = second_models["judge"].requests[0].messages[0].content
    assert render_section("judge_parts", "brought_tools", names="get_weather_forecast") in judged, "and the judge knows"


async def test_the_calls_of_a_continued_conversation_are_not_run_again_when_a_dialogue_resumes() -> None:
    domain = load_config(EXAMPLES / "library" / "library.yaml").domains[0]

    def library_engine(agents: list[Any]) -> DialogueEngine:
        models = {
            "user": ScriptedModel([orjson.dumps({"user_message": "Thanks!", "is_task_complete": True}).decode()]),
            "agent": ScriptedModel(agents, role="agent"),
            "judge": ScriptedModel([verdict(whole_goal(1))], role="judge"),
            "tool": ScriptedModel([], role="tool"),
            "generator": ScriptedModel([], role="generator"),
        }
        engine = DialogueEngine(models, mode="user+exec", settings=DialogueConfig(), personas=[])
        environments = python_environments(domain)
        engine.add_domain(DomainSetup(name="library", tools=environments.tools(), environments=environments))
        return engine

    history = [
        UserMessage(content="Do you have Middlemarch?"),
        AssistantMessage(tool_calls=[ToolCall.make("s1", "search_books", {"query": "Middlemarch"})]),
        ToolMessage(tool_call_id="s1", name="search_books", content="[]"),  # another day's answer
        AssistantMessage(content="I could not find it."),
        UserMessage(content="Then what about Persuasion?"),
    ]
    agents = [
        {"tool_calls": [{"name": "search_books", "arguments": {"query": "Persuasion"}}]},
        {"content": "Here is what I found."},
    ]
    first = library_engine(agents)
    find = Task(id="find", description="You want to know whether the library has Persuasion.", tools=[])
    state = first.start("library", [find], dialogue_id="l1", seed=1, messages=history)
    state = await first.step(state)
    state = await first.step(state)  # the search runs on this dialogue's records
    stored = state.model_dump_json()

    second = library_engine(agents[1:])
    resumed = await second.run(DialogueState.model_validate_json(stored))
    assert resumed.status == "completed", resumed.failure


@pytest.mark.parametrize("train_on", ["all", "continuation"])
def test_an_extended_run_exports_with_or_without_its_prefix(tmp_path: Path, train_on: str) -> None:
    out = tmp_path / "extended"
    chats = EXAMPLES / "chats.jsonl"
    assert run_cli("extend", chats, "--config", EXAMPLES / "quickstart.yaml", "--dry-run", "--out", out).exit_code == 0
    exported = tmp_path / "train.jsonl"
    result = run_cli("export", out, "--format", "openai", "--output", exported, "--train-on", train_on)
    assert result.exit_code == 0, result.output
    exported_records = [orjson.loads(line) for line in exported.read_bytes().splitlines()]
    weather = next(r for r in exported_records if r["messages"][1]["content"].startswith("Is it going to rain"))
    prefix_answer = weather["messages"][2]  # system, the imported user message, its imported answer
    assert prefix_answer["role"] == "assistant"
    assert prefix_answer.get("weight", 1) == (0 if train_on == "continuation" else 1)


async def test_the_person_of_a_continued_conversation_keeps_their_own_voice(chinook: SQLDatabase) -> None:
    agents = [{"content": "Invoice 412 totals 1.99."}]
    engine, models = brought_tools_engine(chinook, agents, [])
    state = engine.start("music store", [TOTAL], dialogue_id="v1", seed=3, messages=BROUGHT_HISTORY, tools=[FORECAST])
    assert state.persona is None, "no persona over the voice the conversation already has"
    state = await engine.run(state)
    brief = models["user"].requests[0].messages[0].content
    assert render_section("user_simulator_parts", "earlier_voice") in brief
    judged = models["judge"].requests[0].messages[0].content
    assert render_section("judge_parts", "continued", count=len(BROUGHT_HISTORY)) in judged, "the judge knows"


def test_the_report_marks_where_a_continued_conversation_ends(tmp_path: Path) -> None:
    out = tmp_path / "extended"
    chats = EXAMPLES / "chats.jsonl"
    assert run_cli("extend", chats, "--config", EXAMPLES / "quickstart.yaml", "--dry-run", "--out", out).exit_code == 0
    page = tmp_path / "report.html"
    assert run_cli("report", out, "-o", page).exit_code == 0
    found = re.search(r'<script type="application/json" id="dialogues-data">(.*?)</script>', page.read_text(), re.S)
    assert found is not None
    shown = {dialogue["id"]: dialogue["prefix_messages"] for dialogue in json.loads(found.group(1))}
    assert shown == {record["id"]: record["prefix_messages"] for record in records(out)}
    assert all(shown.values())


def test_the_goal_writer_sees_the_tools_a_conversation_brought(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weather = load_conversations(EXAMPLES / "chats.jsonl").entries[2]
    chats = tmp_path / "weather.jsonl"
    chats.write_bytes((EXAMPLES / "chats.jsonl").read_bytes().splitlines()[2] + b"\n")
    goal = {
        "description": "You are Keiko Morita (keiko.morita@example.com). You want Sunday's forecast for Portland "
        "and to know whether order 1106 has shipped. You are done once you know both.",
        "difficulty": "medium",
        "subtasks": ["Ask for Sunday's forecast in Portland", "Ask whether order 1106 has shipped"],
        "success_criteria": ["The user is told Sunday's forecast", "The user is told whether order 1106 shipped"],
        "tools": ["get_weather_forecast", "get_order"],
        "asks_to_see": ["status"],
        "continuation": {"how": "continues", "why": "She asked about the weather and her order."},
        "kind": "ordinary",
        "entities": [{"table": "orders", "column": "order_id", "value": 1106}],
        "checks": [],
    }
    writer = ScriptedModel([orjson.dumps({"tasks": [goal]}).decode()], role="generator")

    def scripted_writer(config: Any, *, dry_run: bool, ledger: Any) -> RoleModels:
        models = RoleModels.dry_run(seed=config.seed, ledger=ledger)
        return RoleModels({**{role: models[role] for role in ROLES}, "generator": writer}, ledger)

    monkeypatch.setattr("dialforge.runner.run.open_models", scripted_writer)
    out = tmp_path / "run"
    result = run_cli("extend", chats, "--config", EXAMPLES / "quickstart.yaml", "--dry-run", "--out", out)
    assert result.exit_code == 0, result.output
    [record] = records(out)
    assert record["tasks"][0]["tools"] == ["get_weather_forecast", "get_order"], record["failure"]
    listed = filled_in(writer.requests[0].messages[0].content, "tasks_continuation")["tools"]
    assert all(tool.name in listed for tool in weather.tools)
