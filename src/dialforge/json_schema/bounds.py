"""Upper bounds on a schema's texts and lists: what keeps a model writing under a grammar from running on."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

_ONE_SCHEMA = ("additionalProperties", "items", "not", "contains", "if", "then", "else", "propertyNames")
_SCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """``schema`` and every schema inside it (properties, items, branches, definitions), depth first."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key in _ONE_SCHEMA:
        yield from subschemas(schema.get(key))
    for key in _SCHEMA_LISTS:
        for part in schema.get(key) or ():
            yield from subschemas(part)
    for key in _SCHEMA_MAPS:
        for part in (schema.get(key) or {}).values():
            yield from subschemas(part)


def is_of_type(schema: dict[str, Any], kind: str) -> bool:
    """Whether ``schema`` declares ``kind`` among its types (``enum`` and ``const`` values bound themselves)."""
    declared = schema.get("type")
    named = declared == kind or (isinstance(declared, list) and kind in declared)
    return named and "enum" not in schema and "const" not in schema


def bounded(schema: dict[str, Any], *, max_length: int, max_items: int) -> dict[str, Any]:
    """A copy of ``schema`` in which every text has a ``maxLength`` and every list a ``maxItems``: these where it
    sets none or a larger one, never below its own ``minLength``/``minItems``."""
    out = copy.deepcopy(schema)
    for node in subschemas(out):
        if is_of_type(node, "string"):
            node["maxLength"] = max(min(node.get("maxLength", max_length), max_length), node.get("minLength", 0))
        if is_of_type(node, "array"):
            node["maxItems"] = max(min(node.get("maxItems", max_items), max_items), node.get("minItems", 0))
    return out
