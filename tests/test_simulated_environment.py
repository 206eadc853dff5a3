"""SimulatedEnvironment: a model plays the backend, kept consistent by the call log it is shown."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import orjson
import pytest

from dialforge.environments.base import Environment, RestoreError, StateDiff, TableDiff
from dialforge.environments.simulated import SimulatedEnvironment, SimulatedEnvironments, random_reference_time
from dialforge.json_schema.bounds import bounded
from dialforge.json_schema.checks import schema_violations
from dialforge.json_schema.sampler import sample_json
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.llm.reply_limits import LONG_TEXT_CHARS, RESULT_ITEMS
from dialforge.model.messages import AssistantMessage, UserMessage
from dialforge.model.tools import ToolSpec
from prompt_checks import assert_mentions, filled_in, prompt_of

ORDER = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "status": {"type": "string", "enum": ["placed", "shipped", "cancelled"]},
        "total": {"type": "number"},
    },
    "required": ["order_id", "status", "total"],
}
GET_ORDER = ToolSpec(
    name="get_order",
    description="Get one order by its id.",
    parameters={"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    returns=ORDER,
)
CREATE_ORDER = ToolSpec(
    name="create_order",
    description="Place an order for a book.",
    parameters={
        "type": "object",
        "properties": {"book_id": {"type": "integer"}, "quantity": {"type": "integer", "minimum": 1}},
        "required": ["book_id", "quantity"],
    },
    returns=ORDER,
)
SEARCH_BOOKS = ToolSpec(
    name="search_books",
    description="Find books by title.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    returns={
        "$defs": {"book": {"type": "object", "properties": {"book_id": {"type": "integer"}}, "required": ["book_id"]}},
        "type": "array",
        "items": {"$ref": "#/$defs/book"},
    },
)
GET_STORE_HOURS = ToolSpec(name="get_store_hours", description="Opening hours of the shop.")
TOOLS = [GET_ORDER, CREATE_ORDER, SEARCH_BOOKS, GET_STORE_HOURS]
NOW = "2024-03-14T10:27:00"
SHIPPED = {"order_id": "ORD-20417", "status": "shipped", "total": 23.5}


def result(value: Any) -> str:
    return orjson.dumps({"result": value}).decode()


def error(kind: str, message: str) -> str:
    return orjson.dumps({"error": {"kind": kind, "message": message}}).decode()


def environment(model: Any, *, seed: int = 100) -> SimulatedEnvironment:
    return SimulatedEnvironment(model, TOOLS, domain="Online bookshop", reference_time=NOW, seed=seed)


async def test_a_valid_reply_becomes_the_result_and_is_logged() -> None:
    model = ScriptedModel([result(SHIPPED)])
    env = environment(model)

    outcome = await env.call("get_order", {"order_id": "ORD-20417"})

    assert isinstance(env, Environment)
    assert outcome.ok and outcome.content == SHIPPED
    assert env.log == ({"name": "get_order", "arguments": {"order_id": "ORD-20417"}, "result": SHIPPED},)
    options = model.requests[0].options
    assert options.seed == 100 and options.tools is None
    assert options.response_format is not None
    bounded_order = bounded(ORDER, max_length=LONG_TEXT_CHARS, max_items=RESULT_ITEMS)
    assert options.response_format.json_schema["anyOf"][0]["properties"]["result"] == bounded_order
    prompt = prompt_of(model, -1)
    call = '{"name":"get_order","arguments":{"order_id":"ORD-20417"}}'
    assert_mentions(prompt, "Online bookshop", call, orjson.dumps(ORDER).decode())
    assert "$" not in prompt.replace("$defs", "")


async def test_a_reply_outside_the_return_schema_is_repaired_with_the_next_reply() -> None:
    lost = result({"order_id": "ORD-20417", "status": "lost"})
    model = ScriptedModel([lost, result(SHIPPED)])
    env = environment(model)

    outcome = await env.call("get_order", {"order_id": "ORD-20417"})

    assert outcome.content == SHIPPED and len(model.requests) == 2
    rejected, correction = model.requests[1].messages[-2:]
    assert rejected.content == lost
    assert "'lost'" in correction.content, "the schema error names the value that broke it"


async def test_two_bad_replies_give_a_structured_execution_error_not_an_exception() -> None:
    model = ScriptedModel([result({"order_id": 7}), "not json at all"])
    env = environment(model)

    outcome = await env.call("get_order", {"order_id": "ORD-20417"})

    assert outcome.error is not None and outcome.error.kind == "execution_error"
    assert outcome.error.message.startswith("the service returned an invalid response")
    assert env.log == ()


async def test_model_unavailable_propagates_to_the_engine() -> None:
    with pytest.raises(ModelUnavailable):
        await environment(ScriptedModel([ModelUnavailable("down")])).call("get_order", {"order_id": "ORD-1"})


async def test_the_second_call_sees_the_first_call_and_its_result() -> None:
    created = {"order_id": "ORD-90001", "status": "placed", "total": 12.0}
    model = ScriptedModel([result(created), result(created)])
    env = environment(model)

    await env.call("create_order", {"book_id": 3, "quantity": 1})
    await env.call("get_order", {"order_id": "ORD-90001"})

    first_entry = orjson.dumps(env.log[0]).decode()
    assert (
        first_entry
        == '{"name":"create_order","arguments":{"book_id":3,"quantity":1},"result":'
        + orjson.dumps(created).decode()
        + "}"
    )
    assert first_entry in prompt_of(model, 1)
    assert first_entry not in prompt_of(model, 0)
    assert model.requests[1].options.seed == 101


async def test_the_reference_time_and_what_the_user_said_are_in_the_prompt() -> None:
    model = ScriptedModel([result(SHIPPED)])
    env = environment(model)
    conversation = [
        UserMessage(content="Today is 2 June 2025. Where is order ORD-20417?"),
        AssistantMessage(content="Let me check that for you."),
    ]

    await env.call("get_order", {"order_id": "ORD-20417"}, conversation=conversation)

    prompt = prompt_of(model, -1)
    assert_mentions(filled_in(prompt, "tool_simulator")["now"], "Thursday", NOW)
    assert_mentions(prompt, "Today is 2 June 2025. Where is order ORD-20417?")
    assert "Let me check that for you." not in prompt


async def test_a_simulated_not_found_becomes_a_not_found_tool_error() -> None:
    model = ScriptedModel([error("not_found", "No order with id ORD-1 exists.")])
    env = environment(model)

    outcome = await env.call("get_order", {"order_id": "ORD-1"})

    assert outcome.error is not None
    assert (outcome.error.kind, outcome.error.message) == ("not_found", "No order with id ORD-1 exists.")
    assert env.log[0]["error"] == {"kind": "not_found", "message": "No order with id ORD-1 exists."}
    assert outcome.to_text() == '{"error":{"kind":"not_found","message":"No order with id ORD-1 exists."}}'


async def test_an_error_kind_the_engine_does_not_know_is_repaired() -> None:
    model = ScriptedModel(
        [error("conflict", "Order ORD-1 changed."), error("constraint_violation", "Order ORD-1 changed.")]
    )

    outcome = await environment(model).call("get_order", {"order_id": "ORD-1"})

    assert outcome.error is not None and outcome.error.kind == "constraint_violation"
    assert len(model.requests) == 2


@pytest.mark.parametrize(
    ("name", "arguments", "kind"),
    [
        ("cancel_order", {"order_id": "ORD-1"}, "unknown_tool"),
        ("get_order", {}, "invalid_arguments"),
        ("get_order", {"order_id": 17}, "invalid_arguments"),
        ("get_order", {"order_id": "ORD-1", "force": True}, "invalid_arguments"),
    ],
)
async def test_calls_a_real_api_would_reject_never_reach_the_model(
    name: str, arguments: dict[str, Any], kind: str
) -> None:
    model = ScriptedModel([])
    env = environment(model)

    outcome = await env.call(name, arguments)

    assert outcome.error is not None and outcome.error.kind == kind
    assert model.requests == [] and env.log == ()
    if kind == "unknown_tool":
        assert "get_order" in outcome.error.message


async def test_each_dialogue_has_its_own_log() -> None:
    model = ScriptedModel([result(SHIPPED), result(SHIPPED)])
    factory = SimulatedEnvironments(model, TOOLS, domain="Online bookshop")
    parent = factory.new(seed=100, clock=NOW)
    await parent.call("get_order", {"order_id": "ORD-20417"})
    before = parent.digest()

    child = await factory.restore(parent.snapshot(), seed=100, calls=[])
    await child.call("get_order", {"order_id": "ORD-20417"})

    assert len(parent.log) == 1 and len(child.log) == 2
    assert parent.digest() == before != child.digest()
    assert child.diff(parent) == StateDiff(tables={"calls": TableDiff(inserted=[child.log[1]])})
    assert parent.diff(child) == StateDiff(tables={"calls": TableDiff(deleted=[child.log[1]])})
    assert factory.new(seed=1, clock=NOW).diff(factory.new(seed=2, clock=NOW)).empty
    assert parent.verify([]) is None, "a model played the tools: nothing real to check"


def test_the_digest_depends_on_the_log_only_not_on_key_order() -> None:
    entry = {"name": "get_order", "arguments": {"order_id": "ORD-1"}, "result": SHIPPED}
    reordered = {"result": dict(reversed(SHIPPED.items())), "arguments": {"order_id": "ORD-1"}, "name": "get_order"}

    def digest(log: list[dict[str, Any]]) -> str:
        return SimulatedEnvironment(ScriptedModel([]), TOOLS, domain="x", reference_time=NOW, log=log).digest()

    assert digest([entry]) == digest([reordered]) == digest([entry])
    assert digest([entry]) != digest([]) != digest([entry, entry])


async def test_snapshot_and_restore_round_trip_and_continue_the_log() -> None:
    model = ScriptedModel([result(SHIPPED), error("not_found", "No order ORD-2."), result(SHIPPED)])
    env = environment(model)
    await env.call("get_order", {"order_id": "ORD-20417"})
    await env.call("get_order", {"order_id": "ORD-2"})

    stored = orjson.loads(orjson.dumps(env.snapshot()))
    factory = SimulatedEnvironments(model, TOOLS, domain="Online bookshop")
    restored = await factory.restore(stored, seed=100, calls=[])

    assert stored["kind"] == "simulated" and stored["reference_time"] == NOW
    assert restored.digest() == env.digest() and restored.log == env.log
    await restored.call("get_order", {"order_id": "ORD-20417"})
    assert model.requests[2].options.seed == 102
    assert orjson.dumps(env.log[1]).decode() in prompt_of(model, 2)
    assert len(restored.log) == 3 and len(env.log) == 2
    with pytest.raises(RestoreError):
        await factory.restore({"kind": "sql"}, seed=100, calls=[])


async def test_dry_run_results_satisfy_the_return_schemas() -> None:
    env = environment(DryRunModel(seed=3))
    rng = random.Random(5)
    outcomes = []
    for round_ in range(6):
        for tool in TOOLS:
            outcome = await env.call(tool.name, sample_json(tool.parameters, rng))
            outcomes.append(outcome)
            if outcome.ok:
                assert schema_violations(outcome.content, tool.returns or {"type": ["object", "array"]}) == [], round_
            else:
                assert outcome.error is not None and outcome.error.message
    assert any(o.ok for o in outcomes) and not all(o.ok for o in outcomes)
    assert len(env.log) == len(outcomes)


def test_random_reference_time_is_seeded_and_plausible() -> None:
    times = [random_reference_time(seed) for seed in range(200)]

    assert times == [random_reference_time(seed) for seed in range(200)]
    assert len(set(times)) > 190
    for text in times:
        moment = datetime.fromisoformat(text)
        assert datetime(2023, 1, 1) <= moment <= datetime(2026, 12, 31, 23, 59)
        assert 9 <= moment.hour <= 18


async def test_the_service_description_is_in_the_prompt_only_when_there_is_one() -> None:
    described = ScriptedModel([result(SHIPPED)])
    about = "A small online bookshop; orders can be cancelled only before they ship."
    env = SimulatedEnvironment(described, TOOLS, domain="Online bookshop", reference_time=NOW, description=about)
    await env.call("get_order", {"order_id": "ORD-20417"})
    assert about in filled_in(prompt_of(described, -1), "tool_simulator")["service"]
    factory = SimulatedEnvironments(described, TOOLS, domain="Online bookshop", description=about)
    restored = await factory.restore(env.snapshot(), seed=0, calls=[])
    assert restored.description == about

    plain = ScriptedModel([result(SHIPPED)])
    await environment(plain).call("get_order", {"order_id": "ORD-20417"})
    assert filled_in(prompt_of(plain, -1), "tool_simulator")["service"] == "", "no empty section without a description"
