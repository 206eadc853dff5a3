"""The sampler must give values that a strict validator accepts, readably and reproducibly."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dialforge.json_schema.sampler import SchemaSamplingError, sample_json

SEEDS = range(25)

USER_SIMULATOR = {
    "type": "object",
    "properties": {"user_message": {"type": "string"}, "is_task_complete": {"type": "boolean"}},
    "required": ["user_message", "is_task_complete"],
    "additionalProperties": False,
}
GET_WEATHER = {
    "type": "object",
    "properties": {
        "location": {"type": "string", "description": "City and country, e.g. Paris, France"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location", "unit"],
    "additionalProperties": False,
}
BOOK_FLIGHT = {
    "type": "object",
    "properties": {
        "origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "departure_date": {"type": "string", "format": "date"},
        "passengers": {"type": "integer", "minimum": 1, "maximum": 9},
        "cabin": {"type": "string", "enum": ["economy", "business", "first"]},
        "return_date": {"type": ["string", "null"], "format": "date"},
    },
    "required": ["origin", "destination", "departure_date", "passengers"],
    "additionalProperties": False,
}
SEARCH_ORDERS = {
    "type": "object",
    "properties": {
        "customer_email": {"type": "string", "format": "email"},
        "status": {
            "type": "array",
            "items": {"enum": ["pending", "shipped", "delivered"]},
            "uniqueItems": True,
        },
        "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
        "created_after": {"type": "string", "format": "date-time"},
    },
    "required": ["customer_email"],
}
TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                "parent": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
            },
            "required": ["label", "children", "parent"],
        }
    },
    "$ref": "#/$defs/node",
}
LINKED_LIST = {
    "definitions": {
        "item": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "next": {"oneOf": [{"$ref": "#/definitions/item"}, {"type": "null"}]},
            },
            "required": ["value", "next"],
            "additionalProperties": False,
        }
    },
    "$ref": "#/definitions/item",
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "user simulator": USER_SIMULATOR,
    "get_weather tool": GET_WEATHER,
    "book_flight tool": BOOK_FLIGHT,
    "search_orders tool": SEARCH_ORDERS,
    "empty parameters": {"type": "object", "properties": {}},
    "empty schema": {},
    "string bounds": {"type": "string", "minLength": 12, "maxLength": 15},
    "short string": {"type": "string", "maxLength": 2},
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f} for f in ("date", "date-time", "time", "email", "uuid", "uri")
        },
        "required": ["date", "date-time", "time", "email", "uuid", "uri"],
    },
    "pattern with groups": {"type": "string", "pattern": r"^(ORD|INV)-\d{4,6}(-[a-z]{2})?$"},
    "unanchored pattern": {"type": "string", "pattern": r"[0-9]+"},
    "pattern with length": {"type": "string", "pattern": r"^[A-Z0-9]+$", "minLength": 10, "maxLength": 12},
    "negated class": {"type": "string", "pattern": r"^[^,;]{3,8}$"},
    "exclusive integer": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
    "integer multiple": {"type": "integer", "minimum": 10, "maximum": 100, "multipleOf": 7},
    "number multiple": {"type": "number", "minimum": 0, "maximum": 50, "multipleOf": 0.25},
    "price in cents": {"type": "number", "minimum": 0.01, "multipleOf": 0.01},
    "exclusive number": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "negative only": {"type": "integer", "maximum": -5},
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
    "nullable integer": {"type": ["integer", "null"]},
    "const": {"const": {"version": 2}},
    "enum": {"enum": ["red", 1, None, [1, 2]]},
    "anyOf": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "integer", "minimum": 1000}]},
    "oneOf overlapping": {"oneOf": [{"type": "number"}, {"type": "integer"}]},
    "oneOf with shared keywords": {
        "type": "object",
        "properties": {"kind": {"type": "string"}, "size": {"type": "integer"}},
        "oneOf": [{"required": ["kind"]}, {"required": ["size"]}],
        "additionalProperties": False,
    },
    "allOf objects": {
        "allOf": [
            {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
            {"properties": {"age": {"type": "integer", "minimum": 0}}, "required": ["age"]},
        ]
    },
    "allOf enums": {"allOf": [{"enum": ["a", "b", "c"]}, {"enum": ["b", "c", "d"]}]},
    "allOf with closed branch": {
        "allOf": [
            {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
            {"properties": {"b": {"type": "string", "minLength": 3}}, "additionalProperties": False},
        ]
    },
    "ref with siblings": {
        "$defs": {"money": {"properties": {"amount": {"type": "number"}}, "required": ["amount"]}},
        "$ref": "#/$defs/money",
        "properties": {"currency": {"type": "string"}},
        "required": ["currency"],
    },
    "array bounds": {"type": "array", "items": {"type": "string"}, "minItems": 4, "maxItems": 6},
    "prefix items": {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "boolean"}],
        "items": False,
    },
    "unique booleans": {"type": "array", "items": {"type": "boolean"}, "uniqueItems": True, "minItems": 2},
    "min properties": {
        "type": "object",
        "properties": {k: {"type": "integer"} for k in "abcd"},
        "minProperties": 3,
    },
    "required via additionalProperties": {
        "type": "object",
        "required": ["note"],
        "additionalProperties": {"type": "string", "maxLength": 40},
    },
    "pattern properties": {
        "type": "object",
        "patternProperties": {"^x-": {"type": "integer"}},
        "required": ["x-count"],
        "additionalProperties": False,
    },
    "recursive tree": TREE,
    "linked list": LINKED_LIST,
    "inferred types": {
        "properties": {"n": {"minimum": 3}, "tags": {"items": {"type": "string"}}},
        "required": ["n", "tags"],
    },
}


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_sampled_values_satisfy_the_schema(schema: dict[str, Any]) -> None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for seed in SEEDS:
        value = sample_json(schema, random.Random(seed))
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, f"seed {seed}: {value!r} violates the schema: {errors}"


def test_same_seed_gives_same_value() -> None:
    first = sample_json(BOOK_FLIGHT, random.Random(7))
    assert sample_json(BOOK_FLIGHT, random.Random(7)) == first


def test_different_seeds_give_different_values() -> None:
    values = {str(sample_json(SEARCH_ORDERS, random.Random(seed))) for seed in SEEDS}
    assert len(values) > len(SEEDS) // 2


def test_all_required_and_some_optional_properties_are_present() -> None:
    seen: set[str] = set()
    for seed in SEEDS:
        value = sample_json(BOOK_FLIGHT, random.Random(seed))
        assert {"origin", "destination", "departure_date", "passengers"} <= value.keys()
        seen |= value.keys()
    assert {"cabin", "return_date"} <= seen


def test_nullable_types_give_both_null_and_values() -> None:
    values = [sample_json({"type": ["string", "null"]}, random.Random(seed)) for seed in range(60)]
    assert None in values
    assert any(isinstance(v, str) for v in values)


def test_property_names_steer_values_to_readable_ones() -> None:
    names = ("order_id", "email", "ship_date", "created_at", "first_name", "city")
    schema = {"type": "object", "properties": {name: {"type": "string"} for name in names}, "required": names}
    value = sample_json(schema, random.Random(3))
    assert re.fullmatch(r"ORD-\d{5}", value["order_id"])
    assert re.fullmatch(r"[a-z]+\.[a-z]+@example\.com", value["email"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", value["ship_date"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00Z", value["created_at"])
    assert value["first_name"].isalpha()
    assert value["city"][0].isupper()


def test_plain_strings_are_words_not_gibberish() -> None:
    text = sample_json({"type": "string"}, random.Random(1))
    assert re.fullmatch(r"[a-z]+( [a-z]+)*", text)


def test_recursive_refs_end_in_small_values() -> None:
    def depth(node: dict[str, Any] | None) -> int:
        if node is None:
            return 0
        return 1 + max([depth(node["parent"]), *(depth(child) for child in node["children"])])

    for seed in SEEDS:
        assert depth(sample_json(TREE, random.Random(seed))) <= 5


def test_unsupported_pattern_still_gives_a_string() -> None:
    """Lookarounds are not generated: the documented fallback is a plain string."""
    value = sample_json({"type": "string", "pattern": r"^(?=.*\d)[a-z\d]{8}$"}, random.Random(0))
    assert isinstance(value, str)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "minimum": 5, "maximum": 4},
        {"type": "integer", "minimum": 1, "maximum": 5, "multipleOf": 10},
        {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1},
        {"type": "object", "required": ["x"], "additionalProperties": False},
        {"type": "array", "minItems": 3, "maxItems": 1},
        {"allOf": [{"type": "string"}, {"type": "integer"}]},
        {"$ref": "#/$defs/missing"},
        {"$defs": {"never": False}, "$ref": "#/$defs/never"},
        {"$defs": {"loop": {"$ref": "#/$defs/loop"}}, "$ref": "#/$defs/loop"},
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/$defs/node"}},
                    "required": ["next"],
                }
            },
            "$ref": "#/$defs/node",
        },
    ],
    ids=[
        "empty range",
        "no multiple in range",
        "empty open interval",
        "required but closed",
        "too few items allowed",
        "contradictory types",
        "dangling ref",
        "ref to false",
        "ref to itself",
        "endless required recursion",
    ],
)
def test_unsatisfiable_schemas_raise_a_sampling_error(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaSamplingError):
        sample_json(schema, random.Random(0))
