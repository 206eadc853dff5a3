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
    """Why ``schema`` is not a valid JSON schema (draft 2020-12), or ``None``; never raises. A schema is checked
    once per content: a run builds the same tool specs in preparation, in the engine and in the store, and checking
    a schema takes milliseconds."""
    try:
        content = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # not JSON, or nested past orjson's limit: checked as it is
        problem = _schema_problem(schema)
    else:
        problem = _schema_problem_of(content)
    return None if problem is None else f"{what} {problem}"


@lru_cache(maxsize=4096)
def _schema_problem_of(content: bytes) -> str | None:
    return _schema_problem(orjson.loads(content))


def _schema_problem(schema: Any) -> str | None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"is not a valid JSON schema: {exc.message}"
    except RecursionError:
        return "is nested too deeply to check"
    return None
