"""Every response schema dialforge sends bounds what a model may write: each text has a ``maxLength``, each list a
``maxItems``, and the dry-run model still answers every schema validly."""

from __future__ import annotations

import importlib
import pkgutil
import random
from itertools import product
from typing import Any, get_args

import pytest

import dialforge
from dialforge.actors.generators.tasks import TaskKind, _task_format
from dialforge.actors.judge import judgment_format
from dialforge.config import GenerationConfig
from dialforge.environments.simulated import reply_format
from dialforge.json_schema.bounds import bounded, is_of_type, subschemas
from dialforge.json_schema.checks import schema_violations
from dialforge.json_schema.sampler import sample_json
from dialforge.llm.completion import ResponseSchema
from dialforge.llm.reply_limits import BATCH_ITEMS, GRAMMAR_REPETITIONS, LONG_TEXT_CHARS, RESULT_ITEMS
from dialforge.model.tasks import GoalKind
from dialforge.model.tools import ToolSpec

UNBOUNDED_RETURNS = {
    "type": "object",
    "properties": {
        "note": {"type": "string"},
        "rows": {"type": "array", "items": {"$ref": "#/$defs/row"}},
        "code": {"type": "string", "maxLength": 8},
    },
    "$defs": {"row": {"type": "object", "properties": {"title": {"type": ["string", "null"]}}}},
}


def module_schemas() -> dict[str, ResponseSchema]:
    """Every ResponseSchema a dialforge module defines at its top level (the mock server's own excepted: it
    describes what a client asked for)."""
    found: dict[str, ResponseSchema] = {}
    for info in pkgutil.walk_packages(dialforge.__path__, "dialforge."):
        if info.name.startswith("dialforge.mock_server"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, ResponseSchema) and getattr(module, "__name__", "") == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def every_schema() -> dict[str, ResponseSchema]:
    schemas = module_schemas()
    goal_kinds: tuple[GoalKind, ...] = tuple(k for k in get_args(GoalKind) if k != "ordinary")
    for kind, sql, kinds in product(get_args(TaskKind), (False, True), ((), goal_kinds)):
        schemas[f"tasks {kind} sql={sql} goal_kinds={bool(kinds)}"] = _task_format(kind, sql=sql, goal_kinds=kinds)
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    schemas["tool_response without returns"] = reply_format(ToolSpec(name="t", description="d", parameters=parameters))
    schemas["tool_response"] = reply_format(
        ToolSpec(name="t", description="d", parameters=parameters, returns=UNBOUNDED_RETURNS)
    )
    schemas["judgment for two items"] = judgment_format(["T1.C1 The loan is renewed", "T1.C2 The fee is paid"])
    return schemas


SCHEMAS = every_schema()


def test_the_walk_finds_the_schemas_of_every_role() -> None:
    names = {schema.name for schema in SCHEMAS.values()}
    expected = {"user_turn", "dialogue_judgment", "questions", "domain_policy", "return_schemas", "tool_specs"}
    assert expected | {"sql_tools", "rubric_tasks", "tool_response"} <= names


@pytest.mark.parametrize("where", sorted(SCHEMAS))
def test_every_text_has_a_max_length_and_every_list_a_max_items(where: str) -> None:
    unbounded = [
        node
        for node in subschemas(SCHEMAS[where].json_schema)
        if (is_of_type(node, "string") and "maxLength" not in node)
        or (is_of_type(node, "array") and "maxItems" not in node)
    ]
    assert unbounded == []


@pytest.mark.parametrize("where", sorted(SCHEMAS))
def test_the_dry_run_model_answers_every_bounded_schema_validly(where: str) -> None:
    schema = SCHEMAS[where].json_schema
    for seed in range(5):
        assert schema_violations(sample_json(schema, random.Random(seed)), schema) == []


def test_a_return_schema_keeps_its_tighter_bounds_and_gets_ours_elsewhere() -> None:
    out = bounded(UNBOUNDED_RETURNS, max_length=LONG_TEXT_CHARS, max_items=RESULT_ITEMS)
    assert out["properties"]["code"]["maxLength"] == 8
    assert out["properties"]["note"]["maxLength"] == LONG_TEXT_CHARS
    assert out["properties"]["rows"]["maxItems"] == RESULT_ITEMS
    assert out["$defs"]["row"]["properties"]["title"]["maxLength"] == LONG_TEXT_CHARS
    assert "maxLength" not in UNBOUNDED_RETURNS["properties"]["note"], "the tool's own schema is left as it is"


def test_no_stage_asks_for_more_items_in_one_request_than_a_reply_may_hold() -> None:
    fields = GenerationConfig.model_fields
    for name in ("questions_per_domain", "max_tools_per_domain", "sql_tools_per_domain", "tasks_per_batch"):
        (upper,) = [meta.le for meta in fields[name].metadata if hasattr(meta, "le")]
        assert upper <= BATCH_ITEMS, name


@pytest.mark.parametrize("where", sorted(SCHEMAS))
def test_every_bound_is_one_a_llama_cpp_grammar_can_enforce(where: str) -> None:
    bounds = [
        node[key] for node in subschemas(SCHEMAS[where].json_schema) for key in ("maxLength", "maxItems") if key in node
    ]
    assert all(bound < GRAMMAR_REPETITIONS for bound in bounds)


@pytest.mark.parametrize("where", sorted(SCHEMAS))
def test_no_item_schema_is_a_boolean_which_llama_cpp_refuses(where: str) -> None:
    """llama.cpp's grammar builder answers HTTP 400 "schema must be an object" to ``"items": false``."""
    items = [node["items"] for node in subschemas(SCHEMAS[where].json_schema) if "items" in node]
    assert not any(isinstance(value, bool) for value in items)
