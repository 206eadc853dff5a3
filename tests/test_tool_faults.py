"""Transient tool faults: injected at the configured rate from the seed alone, recorded, changing nothing, in every
kind of environment, and met again identically by a resumed dialogue."""

from __future__ import annotations

from collections import Counter
from typing import Any, get_args

import orjson
import pytest

from dialforge.config import DialogueConfig
from dialforge.environments.faults import injected_fault
from dialforge.environments.python_env import PythonEnvironment, PythonEnvironments
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironments
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm import DryRunModel, ScriptedModel
from dialforge.model import DialogueState, Task, ToolMessage
from dialforge.model.dialogue import ToolFault, ToolFaultKind
from dialforge.pipeline.engine import DialogueEngine, DomainSetup
from samples import verdict, whole_goal

ROLES = ("user", "agent", "judge", "tool", "generator")
INVOICE = {"type": "object", "properties": {"invoice_id": {"type": "integer"}}, "required": ["invoice_id"]}
TOOLS = [
    SQLTool(
        name="get_invoice",
        description="One invoice by id; returns InvoiceId and Total.",
        parameters=INVOICE,
        sql='SELECT "InvoiceId", "Total" FROM "Invoice" WHERE "InvoiceId" = :invoice_id',
    ),
    SQLTool(
        name="refund_invoice",
        description="Set an invoice's total to zero; returns rows_affected.",
        kind="write",
        parameters=INVOICE,
        sql='UPDATE "Invoice" SET "Total" = 0 WHERE "InvoiceId" = :invoice_id',
    ),
]
REFUND = Task(id="refund", description="You want invoice 412 refunded.", tools=["refund_invoice"])
VALID = verdict(whole_goal(1))
KINDS: list[ToolFaultKind] = list(get_args(ToolFaultKind))


def user(message: str, complete: bool = False) -> str:
    return orjson.dumps({"user_message": message, "is_task_complete": complete}).decode()


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": tool, "arguments": arguments}]}


def engine(
    setup: DomainSetup, mode: Any = "user+exec", models: dict[str, Any] | None = None, **settings: Any
) -> DialogueEngine:
    chosen = {role: ScriptedModel([], role=role) for role in ROLES} | (models or {})
    built = DialogueEngine(chosen, mode=mode, settings=DialogueConfig(**settings), personas=[])
    built.add_domain(setup)
    return built


def sql_setup(chinook: SQLDatabase) -> DomainSetup:
    return DomainSetup("music store", [tool.to_spec() for tool in TOOLS], environments=SQLEnvironments(chinook, TOOLS))


def errors(state: DialogueState) -> list[dict[str, Any]]:
    return [orjson.loads(m.content)["error"] for m in state.messages if isinstance(m, ToolMessage)]


def first_calls(rate: float, faulted: list[bool], *, dialogue_id: str) -> int:
    """A seed whose first calls fault (or not) as ``faulted`` says, found by trying seeds in order."""
    return next(
        seed
        for seed in range(10_000)
        if [
            injected_fault(rate, KINDS, seed=seed, dialogue_id=dialogue_id, call_index=index) is not None
            for index in range(len(faulted))
        ]
        == faulted
    )


# The decision


def test_faults_come_at_the_configured_rate_and_depend_only_on_seed_dialogue_and_call() -> None:
    draws = [injected_fault(0.2, KINDS, seed=3, dialogue_id=f"d{n % 50}", call_index=n // 50) for n in range(20_000)]
    again = [injected_fault(0.2, KINDS, seed=3, dialogue_id=f"d{n % 50}", call_index=n // 50) for n in range(20_000)]
    kinds = Counter(kind for kind in draws if kind is not None)

    assert draws == again
    assert 0.19 < sum(kinds.values()) / len(draws) < 0.21
    assert set(kinds) == set(KINDS) and min(kinds.values()) > 0.3 * sum(kinds.values()) / len(KINDS)
    assert injected_fault(0.0, KINDS, seed=3, dialogue_id="d", call_index=0) is None
    assert all(injected_fault(1.0, ["timeout"], seed=s, dialogue_id="d", call_index=0) == "timeout" for s in range(50))


def test_the_fault_kinds_are_chosen_once_each() -> None:
    with pytest.raises(ValueError, match="listed once"):
        DialogueConfig(tool_faults=0.1, tool_fault_kinds=["timeout", "timeout"])


# In the engine


async def test_a_faulted_write_changes_nothing_and_is_recorded(chinook: SQLDatabase) -> None:
    models = {
        "user": ScriptedModel([user("Please refund invoice 412."), user("Thanks.", complete=True)]),
        "agent": ScriptedModel([call("refund_invoice", invoice_id=412), {"content": "The service is down."}]),
        "judge": ScriptedModel([VALID]),
    }
    faulty = engine(sql_setup(chinook), models=models, tool_faults=1.0, tool_fault_kinds=["unavailable"])
    state = await faulty.run(faulty.start("music store", [REFUND], dialogue_id="f1", seed=1))

    (call_id,) = [m.tool_call_id for m in state.messages if isinstance(m, ToolMessage)]
    assert [error["kind"] for error in errors(state)] == ["unavailable"]
    assert state.faults == [ToolFault(call_id=call_id, tool="refund_invoice", kind="unavailable")]
    assert state.judgment is not None and state.judgment.verification is not None
    assert state.judgment.verification["diff"] == {"tables": {}}, "the refund never ran"
    assert faulty.record(state).faults == state.faults
    assert state.stats.tool_errors == 1


async def test_a_model_playing_the_tools_is_not_asked_for_a_faulted_call() -> None:
    tool = ScriptedModel([], role="tool")  # any request would fail the dialogue: it has no reply
    models = {
        "user": ScriptedModel([user("Please refund invoice 412."), user("Thanks.", complete=True)]),
        "agent": ScriptedModel([call("refund_invoice", invoice_id=412), {"content": "Please try later."}]),
        "judge": ScriptedModel([VALID]),
        "tool": tool,
    }
    setup = DomainSetup("music store", [t.to_spec() for t in TOOLS])
    simulated = engine(setup, mode="user", models=models, tool_faults=1.0, tool_fault_kinds=["timeout"])
    state = await simulated.run(simulated.start("music store", [REFUND], dialogue_id="f2", seed=1))

    assert state.status == "completed" and tool.requests == []
    assert [error["kind"] for error in errors(state)] == ["timeout"]
    assert state.env["log"] == []


async def test_trying_a_call_again_after_a_fault_is_not_a_repeated_call(chinook: SQLDatabase) -> None:
    seed = first_calls(0.5, [True, False], dialogue_id="f3")
    models = {
        "user": ScriptedModel([user("What is the total of invoice 412?"), user("Thanks.", complete=True)]),
        "agent": ScriptedModel(
            [call("get_invoice", invoice_id=412), call("get_invoice", invoice_id=412), {"content": "It is 1.99."}]
        ),
        "judge": ScriptedModel([VALID]),
    }
    faulty = engine(sql_setup(chinook), models=models, tool_faults=0.5, max_repeated_calls=1)
    state = await faulty.run(faulty.start("music store", [REFUND], dialogue_id="f3", seed=seed))

    assert state.status == "completed" and state.guards == {}
    faulted, answered = [m for m in state.messages if isinstance(m, ToolMessage)]
    assert state.faults == [ToolFault(call_id=faulted.tool_call_id, tool="get_invoice", kind=state.faults[0].kind)]
    assert '"Total":1.99' in answered.content


def add_note(state: dict[str, Any], text: str) -> dict[str, int]:
    """Add a note.

    Args:
        text: The note.
    """
    state["notes"].append(text)
    return {"notes": len(state["notes"])}


async def test_python_tools_rebuilt_after_a_restart_skip_the_calls_a_fault_stopped() -> None:
    seed = first_calls(0.5, [True, False], dialogue_id="f4")
    note = Task(id="note", description="You want two notes kept.", tools=["add_note"])
    root: PythonEnvironment[dict[str, Any]] = PythonEnvironment([add_note], {"notes": []})
    setup = DomainSetup("notes", root.tools(), environments=PythonEnvironments(root))
    models = {"user": ScriptedModel([user("Note 'milk'.")]), "agent": ScriptedModel([call("add_note", text="milk")])}
    first = engine(setup, models=models, tool_faults=0.5)
    state = first.start("notes", [note], dialogue_id="f4", seed=seed)
    for _ in range(3):  # user, agent, the faulted tool call
        state = await first.step(state)
    assert len(state.faults) == 1

    models = {"agent": ScriptedModel([call("add_note", text="milk")])}
    second = engine(setup, models=models, tool_faults=0.5)  # a new process: the notes are rebuilt by replay
    state = DialogueState.model_validate_json(state.model_dump_json())
    state = await second.step(await second.step(state))

    assert [m.content for m in state.messages if isinstance(m, ToolMessage)][-1] == '{"notes":1}'
    assert state.status == "running"


async def test_a_resumed_dialogue_meets_exactly_the_faults_it_met_before(chinook: SQLDatabase) -> None:
    def dry_engine() -> DialogueEngine:
        models = {role: DryRunModel(seed=5, role=role) for role in ROLES}
        return engine(sql_setup(chinook), models=models, tool_faults=0.5, max_turns=40)

    uninterrupted = dry_engine()
    whole = uninterrupted.start("music store", [REFUND, REFUND], dialogue_id="r", seed=11)
    steps = 0
    while whole.next_actor != "done":
        whole = await uninterrupted.step(whole)
        steps += 1

    first = dry_engine()
    state = first.start("music store", [REFUND, REFUND], dialogue_id="r", seed=11)
    for _ in range(steps // 2):
        state = await first.step(state)
    resumed = await dry_engine().run(DialogueState.model_validate_json(state.model_dump_json()))

    assert whole.faults, "the dialogue met faults to reproduce"
    assert resumed.faults == whole.faults
    assert resumed.messages == whole.messages
