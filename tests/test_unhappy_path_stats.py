"""The statistics of the unhappy paths: goals and dialogues per goal kind, injected tool faults per kind, and what
the agent did after each fault, by the verdict of its dialogue; from records the engine really wrote."""

from __future__ import annotations

from typing import Any

import orjson

from dialforge.config import DialogueConfig
from dialforge.environments.faults import injected_fault
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironments
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm import ScriptedModel
from dialforge.model import Task
from dialforge.model.dialogue import Dialogue
from dialforge.pipeline.engine import DialogueEngine, DomainSetup
from dialforge.report.stats import run_statistics
from dialforge.report.tables import Table, overall_tables
from dialforge.report.unhappy_paths import fault_handling
from samples import verdict as verdict_on
from samples import whole_goal

INVOICE = {"type": "object", "properties": {"invoice_id": {"type": "integer"}}, "required": ["invoice_id"]}
GET_INVOICE = SQLTool(
    name="get_invoice",
    description="One invoice by id; returns InvoiceId and Total.",
    parameters=INVOICE,
    sql='SELECT "InvoiceId", "Total" FROM "Invoice" WHERE "InvoiceId" = :invoice_id',
)
LOOK_UP = Task(id="look", description="You want the total of invoice 412.", tools=["get_invoice"])
FORBIDDEN = LOOK_UP.model_copy(update={"id": "other", "kind": "forbidden"})


def verdict(judgment: str) -> str:
    return verdict_on(whole_goal(1), judgment=judgment)


def user(message: str, complete: bool = False) -> str:
    return orjson.dumps({"user_message": message, "is_task_complete": complete}).decode()


CALL = {"tool_calls": [{"name": "get_invoice", "arguments": {"invoice_id": 412}}]}


async def dialogue(
    chinook: SQLDatabase, task: Task, agent: list[Any], judgment: str, *, seed: int = 1, **faults: Any
) -> Dialogue:
    models: dict[Any, Any] = {
        "user": ScriptedModel([user("What is the total of invoice 412?"), user("Thanks.", complete=True)]),
        "agent": ScriptedModel(agent),
        "judge": ScriptedModel([verdict(judgment)]),
        "tool": ScriptedModel([]),
        "generator": ScriptedModel([]),
    }
    engine = DialogueEngine(models, mode="user+exec", settings=DialogueConfig(**faults), personas=[])
    engine.add_domain(
        DomainSetup("music store", [GET_INVOICE.to_spec()], environments=SQLEnvironments(chinook, [GET_INVOICE]))
    )
    state = await engine.run(engine.start("music store", [task], dialogue_id=f"d-{task.id}-{seed}", seed=seed))
    return engine.record(state)


def table(stats: Any, title: str) -> list[tuple[str, ...]]:
    found: Table = next(t for t in overall_tables(stats) if t.title == title)
    return found.rows


async def test_goals_per_kind_and_faults_per_kind_handling_and_verdict(chinook: SQLDatabase) -> None:
    retry_seed = next(
        seed
        for seed in range(10_000)
        if injected_fault(0.5, ["unavailable"], seed=seed, dialogue_id=f"d-other-{seed}", call_index=0)
        and not injected_fault(0.5, ["unavailable"], seed=seed, dialogue_id=f"d-other-{seed}", call_index=1)
    )
    retried = await dialogue(
        chinook,
        FORBIDDEN,
        [CALL, CALL, {"content": "It is 1.99."}],
        "valid",
        seed=retry_seed,
        tool_faults=0.5,
        tool_fault_kinds=["unavailable"],
    )
    told = await dialogue(
        chinook,
        LOOK_UP,
        [CALL, {"content": "The service timed out, so I could not look it up. Please try again later."}],
        "invalid",
        tool_faults=1.0,
        tool_fault_kinds=["timeout"],
    )
    clean = await dialogue(chinook, LOOK_UP, [CALL, {"content": "It is 1.99."}], "valid")

    stats = run_statistics([retried, told, clean])

    kinds = stats.unhappy_paths.goal_kinds
    assert list(kinds) == ["ordinary", "forbidden"]
    assert (kinds["ordinary"].goals, kinds["ordinary"].completed, kinds["ordinary"].dialogues) == (2, 2, 2)
    assert (kinds["ordinary"].valid, kinds["ordinary"].invalid) == (1, 1)
    assert (kinds["forbidden"].goals, kinds["forbidden"].valid, kinds["forbidden"].invalid) == (1, 1, 0)
    faults = stats.unhappy_paths.faults
    assert (faults["unavailable"].injected, faults["unavailable"].retried) == (1, 1)
    assert (faults["timeout"].injected, faults["timeout"].told_user) == (1, 1)
    assert stats.unhappy_paths.fault_verdicts == {"retried": {"valid": 1}, "told_user": {"invalid": 1}}
    assert stats.unhappy_paths.dialogues_with_faults == {"valid": 1, "invalid": 1}
    assert table(stats, "Goals by kind")[1] == ("forbidden", "1", "1", "1", "1", "1", "0", "100.0%")
    assert ("dialogues with faults", "1", "1", "0") in table(stats, "Tool faults by verdict")


def test_a_fault_the_transcript_leaves_unanswered_is_unresolved() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_invoice", "arguments": '{"invoice_id": 412}'}}
    retry = {**call, "id": "c2", "function": {"name": "get_invoice", "arguments": '{"invoice_id":412}'}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Total of 412?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "name": "get_invoice", "content": '{"error": {}}'},
    ]

    assert fault_handling(messages, "c1") == "unresolved"
    assert fault_handling([*messages, {"role": "assistant", "tool_calls": [retry]}], "c1") == "retried"
    assert fault_handling([*messages, {"role": "user", "content": "Hello?"}], "c1") == "unresolved"


def test_records_written_before_kinds_and_faults_count_as_ordinary_without_faults() -> None:
    old = {"id": "x", "mode": "user", "domain": "shop", "messages": [], "tasks": [{"id": "t", "description": "d"}]}

    stats = run_statistics([old])

    assert stats.unhappy_paths.goal_kinds["ordinary"].goals == 1
    assert stats.unhappy_paths.faults == {}
