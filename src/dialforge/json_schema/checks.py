"""Checking JSON schemas (draft 2020-12) and values against them, with readable reasons."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


@lru_cache(maxsize=512)
def _validator(schema_json: bytes) -> Draft202012Validator:
    """One validator per distinct schema: building one is costlier than validating with it."""
    return Draft202012Validator(orjson.loads(schema_json))


def schema_violations(value: Any, schema: dict[str, Any]) -> list[str]:
    """Human-readable reasons ``value`` does not satisfy ``schema`` (empty when it does)."""
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    problems = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"at {where}: {error.message}")
    return problems


def json_schema_problem(schema: Any, what: str) -> str | None:
    """Why ``schema`` is not a valid JSON schema (draft 2020-12), or ``None``; never raises."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"{what} is not a valid JSON schema: {exc.message}"
    except RecursionError:
        return f"{what} is nested too deeply to check"
    return None
