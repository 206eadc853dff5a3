"""The dialogue engine: one action per step, three pipelines, multi-task handover, guards, resume."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson
import pytest

from dialforge.actors.agent import agent_system_prompt
from dialforge.actors.judge import render_tasks
from dialforge.config import DialogueConfig
from dialforge.environments.base import CheckOutcome, StateDiff, Verification
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironments
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.model import DialogueState, SQLCheck, Task, ToolMessage, UserMessage
from dialforge.pipeline.engine import DialogueEngine, DomainSetup, EngineError
from dialforge.prompts import prompt_examples, render_section
from dialforge.report.stats import failure_reason
from prompt_checks import assert_mentions, filled_in, prompt_of
from samples import DATE_INVOICE, verdict, whole_goal

INVOICE = {"type": "object", "properties": {"invoice_id": {"type": "integer"}}, "required": ["invoice_id"]}
NAME = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
TOOLS = [
    SQLTool(
        name="get_invoice",
        description="One invoice by id; returns InvoiceId, CustomerId and Total.",
        parameters=INVOICE,
        sql='SELECT "InvoiceId", "CustomerId", "Total" FROM "Invoice" WHERE "InvoiceId" = :invoice_id',
        returns={"type": "object"},
    ),
    SQLTool(
        name="refund_invoice",
        description="Set an invoice's total to zero; returns rows_affected.",
        kind="write",
        parameters=INVOICE,
        sql='UPDATE "Invoice" SET "Total" = 0 WHERE "InvoiceId" = :invoice_id',
    ),
    SQLTool(
        name="add_genre",
        description="Create a genre; returns rows_affected and last_row_id.",
        kind="write",
        parameters=NAME,
        sql='INSERT INTO "Genre" ("Name") VALUES (:name)',
    ),
    SQLTool(
        name="find_genres",
        description="Genres whose name contains the text; returns GenreId and Name.",
        parameters=NAME,
        sql='SELECT "GenreId", "Name" FROM "Genre" WHERE "Name" LIKE \'%\' || :name || \'%\' ORDER BY "GenreId"',
    ),
]
REFUND = Task(
    id="refund",
    description="You are customer 2 and want invoice 412 refunded; check its total first, then have it refunded.",
    subtasks=["Ask for the total of invoice 412", "Have invoice 412 refunded"],
    tools=["get_invoice", "refund_invoice"],
    checks=[
        SQLCheck(description="invoice 412 is refunded", sql='SELECT "Total" = 0 FROM "Invoice" WHERE "InvoiceId" = 412')
    ],
)
ADD_POLKA = Task(id="add", description="You want a new genre called Polka added to the catalogue.", tools=["add_genre"])
FIND_POLKA = Task(id="find", description="You want to see that the Polka genre is now listed.", tools=["find_genres"])
VALID = verdict(whole_goal(1))
"""The judge's verdict on a dialogue that completed one goal (without a rubric: one item, the goal as a whole)."""
VALID_TWO = verdict(whole_goal(1), whole_goal(2))


def user(message: str, complete: bool = False) -> str:
    return orjson.dumps({"user_message": message, "is_task_complete": complete}).decode()


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": tool, "arguments": arguments}]}


def engine_with(
    chinook: SQLDatabase, *, users: list[Any] = (), agents: list[Any] = (), judges: list[Any] = (), **settings: Any
) -> tuple[DialogueEngine, dict[str, ScriptedModel]]:
    models = {
        "user": ScriptedModel(users, role="user"),
        "agent": ScriptedModel(agents, role="agent"),
        "judge": ScriptedModel(judges, role="judge"),
        "tool": ScriptedModel([], role="tool"),
        "generator": ScriptedModel([], role="generator"),
    }
    engine = DialogueEngine(models, mode="user+exec", settings=DialogueConfig(**settings), personas=[])
    engine.add_domain(
        DomainSetup(
            name="music store",
            tools=[tool.to_spec() for tool in TOOLS],
            policy="Confirm before changing anything.",
            environments=SQLEnvironments(chinook, TOOLS),
        )
    )
    return engine, models


def tool_results(state: DialogueState) -> list[str]:
    return [m.content for m in state.messages if isinstance(m, ToolMessage)]


async def test_a_user_oriented_dialogue_runs_real_sql_and_is_verified(chinook: SQLDatabase) -> None:
    engine, models = engine_with(
        chinook,
        users=[
            user("Hi, what is the total of invoice 412?"),
            user("Please refund it."),
            user("Yes, go ahead."),
            user("Thanks, that is all.", complete=True),
        ],
        agents=[
            call("get_invoice", invoice_id=412),
            {"content": "Invoice 412 totals 1.99."},
            {"content": "Shall I refund invoice 412?"},
            call("refund_invoice", invoice_id=412),
            {"content": "Invoice 412 is refunded."},
        ],
        judges=[VALID],
    )
    state = engine.start("music store", [REFUND], dialogue_id="d1", seed=7)
    assert state.messages[0].role == "system" and "Confirm before changing anything." in state.messages[0].content
    state = await engine.run(state)

    assert (state.status, state.tasks_done, state.closing_message) == ("completed", 1, "Thanks, that is all.")
    assert state.judgment.judgment == "valid" and state.judgment.checks == {"invoice 412 is refunded": True}
    assert state.judgment.verification["diff"]["tables"]["Invoice"]["updated"][0]["after"]["Total"] == 0
    assert tool_results(state)[0] == '{"InvoiceId":412,"CustomerId":58,"Total":1.99}'
    # 3 user messages (the closing one is kept apart), 3 agent replies, 2 calls, 2 results
    assert (state.stats.turns, state.stats.steps, state.stats.tool_calls, state.stats.tasks_completed) == (10, 2, 2, 1)
    assert {role: usage.calls for role, usage in state.usage.items()} == {"user": 4, "agent": 5, "judge": 1}
    record = engine.record(state)
    assert record.status == "completed" and record.generator["models"]["agent"] == "scripted"
    assert models["agent"].requests[0].options.tool_choice == "auto"


async def test_the_next_goal_follows_without_a_farewell_and_sees_what_the_first_one_wrote(
    chinook: SQLDatabase,
) -> None:
    opening, moving_on = "Could you add a genre called Polka?", "Lovely. While I have you, is Polka listed now?"
    engine, models = engine_with(
        chinook,
        users=[
            user(opening),
            user("Great, thanks.", complete=True),
            user(moving_on),
            user("Perfect, bye.", complete=True),
        ],
        agents=[
            call("add_genre", name="Polka"),
            {"content": "Polka is added."},
            call("find_genres", name="Polka"),
            {"content": "Yes, Polka is genre 26."},
        ],
        judges=[VALID_TWO],
    )
    state = await engine.run(engine.start("music store", [ADD_POLKA, FIND_POLKA], dialogue_id="d2", seed=1))
    assert state.status == "completed" and state.tasks_done == 2
    assert tool_results(state)[-1] == '[{"GenreId":26,"Name":"Polka"}]'
    record = engine.record(state)
    assert [m.role for m in record.messages[1:]] == ["user", "assistant", "tool", "assistant"] * 2
    assert [m.content for m in record.messages if isinstance(m, UserMessage)] == [opening, moving_on]
    assert record.messages[-1].content == "Yes, Polka is genre 26.", "the agent's last reply ends the record"
    assert len(models["agent"].requests) == 4, "the agent is not asked to answer the acknowledgement"
    briefs = [filled_in(request.messages[0].content, "user_simulator") for request in models["user"].requests]
    instructions = [
        filled_in(prompt_of(models["user"], i), "user_simulator_parts", "turn")["instruction"] for i in range(4)
    ]
    assert [brief["goal"] for brief in briefs] == [ADD_POLKA.description] * 2 + [FIND_POLKA.description] * 2
    assert [brief["after"] for brief in briefs] == [render_section("user_simulator_parts", "more_goals")] * 2 + [
        render_section("user_simulator_parts", "last_goal")
    ] * 2, "the person knows that more is to come, not what"
    assert instructions[2] == render_section("user_simulator_parts", "handover"), "thanks and the next goal in one"


async def test_concurrent_dialogues_on_one_database_are_isolated(chinook: SQLDatabase) -> None:
    def script(genre: str) -> dict[str, list[Any]]:
        return {
            "users": [user(f"Please add {genre}."), user("Thanks.", complete=True),
                      user(f"Which {genre} genres exist?"), user("Good.", complete=True)],
            "agents": [call("add_genre", name=genre), {"content": "Added."},
                       call("find_genres", name="a"), {"content": "Here they are."}],
            "judges": [VALID],
        }  # fmt: skip

    first, _ = engine_with(chinook, **script("Salsa"))
    second, _ = engine_with(chinook, **script("Samba"))
    one, two = await asyncio.gather(
        first.run(first.start("music store", [ADD_POLKA, FIND_POLKA], dialogue_id="a", seed=1)),
        second.run(second.start("music store", [ADD_POLKA, FIND_POLKA], dialogue_id="b", seed=2)),
    )
    assert "Salsa" in tool_results(one)[-1] and "Samba" not in tool_results(one)[-1]
    assert "Samba" in tool_results(two)[-1] and "Salsa" not in tool_results(two)[-1]


async def test_the_agent_is_made_to_answer_after_too_many_steps(chinook: SQLDatabase) -> None:
    engine, models = engine_with(
        chinook,
        users=[user("What is the total of invoice 412?"), user("Thanks.", complete=True)],
        agents=[call("get_invoice", invoice_id=412), call("get_invoice", invoice_id=411), {"content": "It is 1.99."}],
        judges=[VALID],
        max_steps_per_turn=2,
    )
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="d3", seed=1))
    assert state.guards == {"max_steps_per_turn": 1}
    assert [r.options.tool_choice for r in models["agent"].requests] == ["auto", "auto", "none"]
    assert state.stats.max_steps_per_request == 2


async def test_a_repeated_tool_call_ends_the_dialogue_as_failed(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(
        chinook,
        users=[user("What is the total of invoice 412?")],
        agents=[call("get_invoice", invoice_id=412), call("get_invoice", invoice_id=412)],
        max_repeated_calls=1,
    )
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="d4", seed=1))
    assert state.status == "failed" and state.guards == {"repeated_tool_call": 1}
    assert 'get_invoice({"invoice_id":412})' in state.failure
    record = engine.record(state)
    assert record.messages[-1].role == "tool", "the unanswered repeated call is left out of the record"


@pytest.mark.parametrize(
    ("users", "agents", "party", "calls"),
    [
        ([user("Hello?"), user("Anyone?"), user("Still there?")], [{"content": "One moment please."}] * 3, "agent", 6),
        ([user("Hello?")] * 3, [{"content": "Hi!"}, {"content": "Yes?"}, {"content": "?"}], "user", 5),
    ],
)
async def test_the_same_message_said_again_and_again_stops_the_dialogue(
    chinook: SQLDatabase, users: list[Any], agents: list[Any], party: str, calls: int
) -> None:
    engine, models = engine_with(chinook, users=users, agents=agents, max_repeated_messages=2)
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="r1", seed=1))
    assert state.status == "failed" and state.guards == {"repeated_message": 1}
    assert failure_reason(state.failure) == "repeated_message" and party in state.failure
    assert sum(len(m.requests) for m in models.values()) == calls, "nothing is asked after the third repetition"


async def test_a_user_who_keeps_copying_the_prompts_placeholder_fails_the_dialogue_with_a_guard(
    chinook: SQLDatabase,
) -> None:
    placeholder = sorted(prompt_examples().placeholders)[0]
    engine, _ = engine_with(chinook, users=[user(placeholder), user(placeholder)])
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="c1", seed=1))
    assert state.status == "failed" and state.guards == {"user_copied_text": 1}
    assert state.conversation == [], "the copy never became a message"


HI = {"content": "Hi!"}


async def test_a_message_said_again_after_another_one_is_no_repetition(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(
        chinook,
        users=[user("Hello?"), user("Hello?"), user("Invoice 412?"), user("Hello?"), user("Thanks.", complete=True)],
        agents=[HI, HI, call("get_invoice", invoice_id=412), {"content": "1.99"}, HI],
        judges=[VALID],
        max_repeated_messages=2,
    )
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="r2", seed=1))
    assert state.status == "completed" and "repeated_message" not in state.guards


async def test_a_dialogue_that_runs_too_long_is_cut_and_kept_as_failed(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(
        chinook,
        users=[user("Hello?"), user("Hello again?")],
        agents=[{"content": "Hi!"}, {"content": "Hi again!"}],
        max_turns=4,
    )
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="d5", seed=1))
    assert state.status == "failed" and "reached 4 turns" in state.failure and state.guards == {"max_turns": 1}
    assert len(engine.record(state).messages) == 5


async def test_the_turn_budget_counts_turns_as_the_statistics_do(chinook: SQLDatabase) -> None:
    """A message with two tool calls is two turns for the guard as for Table 1, and the record's figures are
    those of the messages it keeps."""
    engine, _ = engine_with(
        chinook,
        users=[user("Totals of invoices 411 and 412?")],
        agents=[{"tool_calls": [{"name": "get_invoice", "arguments": {"invoice_id": n}} for n in (411, 412)]}],
        max_turns_per_task=4,
    )
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="b1", seed=1))
    assert [m.role for m in state.conversation] == ["user", "assistant", "tool"], "3 messages, 4 turns"
    assert state.status == "failed" and "reached 4 turns" in state.failure and state.stats.turns == 4
    record = engine.record(state)
    assert [m.role for m in record.messages] == ["system", "user"], "the half-answered step is left out"
    assert (record.stats.turns, record.stats.steps, record.stats.tool_calls) == (1, 0, 0)
    assert (record.stats.tasks_assigned, record.stats.tasks_completed) == (1, 0)


def test_the_turn_budget_grows_with_the_goals_up_to_the_overall_cap() -> None:
    assert [DialogueConfig(max_turns_per_task=20).turn_budget(n) for n in (1, 3)] == [20, 60]
    assert [DialogueConfig(max_turns_per_task=20, max_turns=50).turn_budget(n) for n in (1, 3)] == [20, 50]


SECOND_POLKA = Task(id="again", description="You want a second genre entry named Polka, for folk dances.")
ONE_POLKA = ADD_POLKA.model_copy(
    update={
        "checks": [
            SQLCheck(description="one Polka genre", sql='SELECT COUNT(*) = 1 FROM "Genre" WHERE "Name" = \'Polka\'')
        ]
    }
)


async def test_a_dialogue_out_of_turns_keeps_its_completed_goals_and_is_judged_on_them(chinook: SQLDatabase) -> None:
    engine, models = engine_with(
        chinook,
        users=[
            user("Could you add a genre called Polka?"),
            user("Great, thanks.", complete=True),
            user("Is Polka listed now?"),
            user("Perfect.", complete=True),
            user("And please add a second Polka genre."),
            user("Hmm, is it there?"),
            user("Could you look again?"),
            user("Still nothing?"),
        ],
        agents=[
            call("add_genre", name="Polka"),
            {"content": "Polka is added."},
            call("find_genres", name="Polka"),
            {"content": "Yes, Polka is genre 26."},
            call("add_genre", name="Polka"),
            {"content": "Another Polka is added."},
            {"content": "Let me look."},
            {"content": "One moment."},
            {"content": "Still looking."},
        ],
        judges=[VALID_TWO],
        max_turns_per_task=6,
    )
    goals = [ONE_POLKA, FIND_POLKA, SECOND_POLKA]
    state = await engine.run(engine.start("music store", goals, dialogue_id="b2", seed=1))

    assert state.guards == {"max_turns": 1} and "reached 18 turns" in state.failure, "6 turns per goal, 3 goals"
    assert (state.status, state.truncated, state.judgment.judgment) == ("completed", True, "valid")
    assert state.conversation[-1].content == "Yes, Polka is genre 26.", "cut at the answer that ended goal 2"
    record = engine.record(state)
    assert (record.tasks, record.tasks_dropped, record.truncated) == ([ONE_POLKA, FIND_POLKA], [SECOND_POLKA], True)
    assert (record.stats.tasks_assigned, record.stats.tasks_completed, record.stats.turns) == (3, 2, 8)
    judged = prompt_of(models["judge"])
    assert_mentions(judged, ONE_POLKA.description, FIND_POLKA.description, "Yes, Polka is genre 26.")
    assert SECOND_POLKA.description not in judged and "second Polka" not in judged, "the dropped goal is not judged"
    # goal 3 inserted a second Polka on the live database; the checks see the database as goal 2 left it
    assert state.judgment.checks == {"one Polka genre": True}
    assert len(state.judgment.verification["diff"]["tables"]["Genre"]["inserted"]) == 1


@pytest.mark.parametrize(
    ("agents", "reason"),
    [
        ([ModelUnavailable("server down", kind="server_error")], "agent: server_error"),
        ([call("find_genres", name="Polka")] * 2, "the agent repeated the call"),
    ],
)
async def test_a_dialogue_that_cannot_go_on_after_a_goal_keeps_that_goal(
    chinook: SQLDatabase, agents: list[Any], reason: str
) -> None:
    engine, _ = engine_with(
        chinook,
        users=[user("Could you add a genre called Polka?"), user("Great.", complete=True), user("Is it listed?")],
        agents=[call("add_genre", name="Polka"), {"content": "Added."}, *agents],
        judges=[VALID],
        max_repeated_calls=1,
    )
    state = await engine.run(engine.start("music store", [ADD_POLKA, FIND_POLKA], dialogue_id="b3", seed=1))
    assert (state.status, state.truncated, state.failure.startswith(reason)) == ("completed", True, True)
    assert engine.record(state).tasks_dropped == [FIND_POLKA]


@pytest.mark.parametrize(
    ("users", "agents", "reason"),
    [
        ([user("Hi")], [{"content": ""}, {"content": "  "}], "agent: empty"),
        (["{not json", "still not json"], [], "user: invalid_json"),
        ([user("Hi")], [ModelUnavailable("server down", kind="server_error")], "agent: server_error: server down"),
    ],
)
async def test_model_trouble_fails_the_dialogue_with_its_reason(
    chinook: SQLDatabase, users: list[Any], agents: list[Any], reason: str
) -> None:
    engine, _ = engine_with(chinook, users=users, agents=agents)
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="d6", seed=1))
    assert state.status == "failed" and state.failure.startswith(reason)
    assert engine.record(state).failure == state.failure


async def test_a_mistyped_argument_reaches_the_agent_as_a_tool_error(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(
        chinook,
        users=[user("What is the total of invoice 412?"), user("Thanks.", complete=True)],
        agents=[
            call("get_invoice", invoice_id="four hundred"),
            call("get_invoice", invoice_id=412),
            {"content": "1.99"},
        ],
        judges=[VALID],
    )
    state = await engine.run(engine.start("music store", [REFUND], dialogue_id="d7", seed=1))
    assert '"invalid_arguments"' in tool_results(state)[0]
    assert state.stats.tool_errors == 1 and state.status == "completed"


def test_real_execution_without_an_environment_is_refused_up_front() -> None:
    models = {role: ScriptedModel([]) for role in ("user", "agent", "judge", "tool", "generator")}
    engine = DialogueEngine(models, mode="user+exec", personas=[])
    with pytest.raises(EngineError, match="needs a database"):
        engine.add_domain(DomainSetup(name="shop", tools=[]))


async def test_the_task_oriented_baseline_sends_each_task_as_a_direct_request() -> None:
    tool_reply = orjson.dumps({"result": {"InvoiceId": 412, "Total": 1.99}}).decode()
    models = {
        "agent": ScriptedModel([call("get_invoice", invoice_id=412), {"content": "Invoice 412 totals 1.99."},
                                {"content": "Polka added."}]),
        "tool": ScriptedModel([tool_reply]),
        "judge": ScriptedModel([VALID_TWO]),
        "user": ScriptedModel([]),
        "generator": ScriptedModel([]),
    }  # fmt: skip
    engine = DialogueEngine(models, mode="task", personas=[])
    engine.add_domain(DomainSetup(name="music store", tools=[tool.to_spec() for tool in TOOLS]))
    state = await engine.run(engine.start("music store", [REFUND, ADD_POLKA], dialogue_id="t1", seed=3))
    assert state.status == "completed" and state.tasks_done == 2
    users = [m.content for m in state.messages if isinstance(m, UserMessage)]
    assert users == [REFUND.description, ADD_POLKA.description]
    assert state.env["kind"] == "simulated"
    assert state.messages[0].content == agent_system_prompt("music store", "", today=state.today, direct_requests=True)


async def test_the_task_oriented_baseline_over_a_database_runs_its_tools_and_checks_on_it(chinook: SQLDatabase) -> None:
    """Tasks written against a domain's data meet that data: no model invents other prices or stock."""
    request = REFUND.model_copy(update={"description": "Hi, I'm customer 58: what is the total of invoice 412? "
                                        "Please refund it."})  # fmt: skip
    models = {
        "agent": ScriptedModel([call("get_invoice", invoice_id=412), call("refund_invoice", invoice_id=412),
                                {"content": "Invoice 412 (1.99) is refunded."}]),
        "tool": ScriptedModel([]),
        "judge": ScriptedModel([VALID]),
        "user": ScriptedModel([]),
        "generator": ScriptedModel([]),
    }  # fmt: skip
    engine = DialogueEngine(models, mode="task", personas=[])
    engine.add_domain(
        DomainSetup(
            name="music store", tools=[t.to_spec() for t in TOOLS], environments=SQLEnvironments(chinook, TOOLS)
        )
    )
    state = await engine.run(engine.start("music store", [request], dialogue_id="t2", seed=3))

    assert state.status == "completed" and state.env["kind"] == "sql" and models["tool"].requests == []
    assert tool_results(state)[0] == '{"InvoiceId":412,"CustomerId":58,"Total":1.99}', "the row as stored"
    assert state.judgment is not None and state.judgment.checks == {"invoice 412 is refunded": True}
    assert state.judgment.verification["diff"]["tables"]["Invoice"]["updated"][0]["after"]["Total"] == 0
    assert render_section("judge_parts", "executed_tools") in prompt_of(models["judge"])


async def test_a_state_read_back_from_storage_continues_exactly_like_an_uninterrupted_run(
    chinook: SQLDatabase,
) -> None:
    def dry_engine() -> DialogueEngine:
        models = {role: DryRunModel(seed=5, role=role) for role in ("user", "agent", "judge", "tool", "generator")}
        engine = DialogueEngine(models, mode="user+exec", settings=DialogueConfig(max_turns=30), personas=[])
        engine.add_domain(
            DomainSetup(
                name="music store", tools=[t.to_spec() for t in TOOLS], environments=SQLEnvironments(chinook, TOOLS)
            )
        )
        return engine

    uninterrupted = dry_engine()
    tasks = [ADD_POLKA, FIND_POLKA]
    whole = uninterrupted.start("music store", tasks, dialogue_id="r", seed=9)
    steps = 0
    while whole.next_actor != "done":
        whole = await uninterrupted.step(whole)
        steps += 1

    first = dry_engine()
    state = first.start("music store", tasks, dialogue_id="r", seed=9)
    for _ in range(steps // 2):  # stop halfway, as a crash would
        state = await first.step(state)
    stored = state.model_dump_json()
    second = dry_engine()  # a new process: no live environment, only what was stored
    resumed = await second.run(DialogueState.model_validate_json(stored))

    def without_timings(state: DialogueState) -> dict[str, Any]:
        data = state.model_dump()
        for usage in data["usage"].values():
            usage.pop("seconds")  # wall time, the only thing allowed to differ
        return data

    assert without_timings(resumed) == without_timings(whole)
    assert steps >= 4, "the dialogue is long enough for the halfway point to matter"


def test_a_conversation_to_continue_sets_who_speaks_next_or_fails_cleanly(chinook: SQLDatabase) -> None:
    from dialforge.model import AssistantMessage, ToolCall

    engine, _ = engine_with(chinook)
    asked = engine.start("music store", [REFUND], dialogue_id="h1", seed=1, messages=[UserMessage(content="Hi")])
    assert asked.next_actor == "agent" and asked.history_length == 1
    pending = [
        UserMessage(content="Total of 412?"),
        AssistantMessage(tool_calls=[ToolCall.make("c1", "get_invoice", {"invoice_id": 412})]),
    ]
    assert engine.start("music store", [REFUND], dialogue_id="h2", seed=1, messages=pending).next_actor == "tool"
    foreign = [UserMessage(content="Hi"), AssistantMessage(tool_calls=[ToolCall.make("c1", "teleport", {})])]
    broken = engine.start("music store", [REFUND], dialogue_id="h3", seed=1, messages=foreign)
    assert broken.status == "failed" and "unknown tool 'teleport'" in broken.failure
    assert engine.record(broken).status == "failed"


async def test_stepping_the_same_tool_state_twice_does_not_run_the_write_twice(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(chinook, users=[user("Add Polka please.")], agents=[call("add_genre", name="Polka")])
    state = engine.start("music store", [ADD_POLKA], dialogue_id="s1", seed=1)
    state = await engine.step(await engine.step(state))
    assert state.next_actor == "tool"
    once, again = await engine.step(state), await engine.step(state)
    assert tool_results(once) == tool_results(again) == ['{"rows_affected":1,"last_row_id":26}']


async def test_a_goal_cannot_be_completed_before_anything_was_asked(chinook: SQLDatabase) -> None:
    engine, _ = engine_with(
        chinook,
        users=[user("All done, thanks!", complete=True), user("Thanks.", complete=True)],
        agents=[{"content": "Happy to help. Anything you need?"}],
        judges=[VALID],
    )
    state = await engine.run(engine.start("music store", [ADD_POLKA], dialogue_id="p1", seed=1))
    assert state.guards == {"premature_completion": 1}
    assert [m.role for m in state.conversation] == ["user", "assistant"] and state.status == "completed"


async def test_the_dialogues_today_is_sqls_now_and_the_users_date(chinook: SQLDatabase) -> None:
    stamp = DATE_INVOICE
    models = {
        "user": ScriptedModel([user("Please date invoice 1 today."), user("Thanks!", complete=True)], role="user"),
        "agent": ScriptedModel([call("date_invoice", invoice_id=1), {"content": "Done."}, {"content": "Bye!"}]),
        "judge": ScriptedModel([VALID], role="judge"),
        "tool": ScriptedModel([], role="tool"),
        "generator": ScriptedModel([], role="generator"),
    }
    today = datetime(2025, 11, 21, 10, 0)
    engine = DialogueEngine(models, mode="user+exec", settings=DialogueConfig(today=today), personas=[])
    engine.add_domain(
        DomainSetup(name="music store", tools=[stamp.to_spec()], environments=SQLEnvironments(chinook, [stamp]))
    )
    task = Task(id="date", description="You want invoice 1 dated today.", tools=["date_invoice"])
    state = await engine.run(engine.start("music store", [task], dialogue_id="d", seed=1))

    assert state.status == "completed" and state.today == "2025-11-21T10:00:00"
    restored = chinook.environment([stamp]).restore(state.env)
    dated = restored.query("SELECT InvoiceDate FROM Invoice WHERE InvoiceId = 1").content
    assert dated == [{"InvoiceDate": "2025-11-21 10:00:00"}]
    assert_mentions(models["user"].requests[0].messages[0].content, "Friday", "2025-11-21", "10:00")
    assert_mentions(state.messages[0].content, "Friday", "2025-11-21T10:00:00")


async def test_a_goal_said_done_whose_checks_fail_is_not_called_completed_later(chinook: SQLDatabase) -> None:
    polka_added = SQLCheck(description="Polka exists", sql='SELECT COUNT(*) = 1 FROM "Genre" WHERE "Name" = \'Polka\'')
    add = ADD_POLKA.model_copy(update={"checks": [polka_added]})
    engine, models = engine_with(
        chinook,
        users=[
            user("Could you add a genre called Polka?"),
            user("Great, thanks.", complete=True),
            user("Thanks. Is Polka listed now?"),
            user("OK, bye.", complete=True),
        ],
        agents=[
            {"content": "Polka is added."},  # said, never done
            call("find_genres", name="Polka"),
            {"content": "No genre called Polka."},
        ],
        judges=[verdict(whole_goal(1), whole_goal(2), judgment="invalid")],
    )
    state = await engine.run(engine.start("music store", [add, FIND_POLKA], dialogue_id="u1", seed=1))
    assert state.goals_unconfirmed == [0]
    before, after = (models["user"].requests[i].messages[0].content for i in (1, 2))
    marker = render_section("user_simulator_parts", "not_confirmed")
    assert marker not in before and marker in after, "the person's brief no longer calls the first goal plain done"

    def first_header(passed: bool | None) -> str:
        outcome = CheckOutcome.of(polka_added, passed=bool(passed), detail="")
        verification = Verification(initial_digest="a", final_digest="b", diff=StateDiff(), checks=[outcome])
        return render_tasks(state, None if passed is None else verification).split("\n")[0]

    assert first_header(None) == first_header(True) != first_header(False)
    assert first_header(False) in models["judge"].requests[0].messages[0].content, "the judge is told too"
