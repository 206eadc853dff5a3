"""Checking JSON schemas (draft 2020-12) and values against them, with readable reasons."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError


@lru_cache(maxsize=512)
def _validator(schema_json: bytes) -> Draft202012Validator:
    """One validator per distinct schema: building one is costlier than validating with it."""
    return Draft202012Validator(orjson.loads(schema_json))


OVER_LIMIT_KEYWORDS = frozenset(("maxLength", "maxItems"))
"""The keywords a value breaks by being too long: a text past its ``maxLength``, a list past its ``maxItems``."""
_REASON_CHARS = 300
"""A reason is cut to this: jsonschema's messages quote the whole value, which may be pages of repeated text."""


@dataclass(frozen=True)
class Violation:
    """One reason a value does not satisfy a schema: where, why, and the keyword that failed."""

    where: str
    reason: str
    keyword: str

    def __str__(self) -> str:
        return f"at {self.where}: {self.reason}"


def violations(value: Any, schema: dict[str, Any]) -> list[Violation]:
    """Why ``value`` does not satisfy ``schema`` (empty when it does), in path order.

    Of an ``anyOf``/``oneOf`` that no branch satisfies, the reason is the one found deepest in the value: the
    branch that matched furthest, rather than "is not valid under any of the given schemas".
    """
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [_violation(_deepest(error)) for error in errors]


def schema_violations(value: Any, schema: dict[str, Any]) -> list[str]:
    """Human-readable reasons ``value`` does not satisfy ``schema`` (empty when it does)."""
    return [str(violation) for violation in violations(value, schema)]


def _deepest(error: ValidationError) -> ValidationError:
    while error.validator in ("anyOf", "oneOf") and error.context:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return error


def _violation(error: ValidationError) -> Violation:
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    keyword = str(error.validator)
    value: Any = error.instance
    if keyword == "maxLength":
        reason = f"the text is {len(value)} characters long, more than the {error.validator_value} allowed"
    elif keyword == "maxItems":
        reason = f"the list has {len(value)} items, more than the {error.validator_value} allowed"
    else:
        reason = error.message if len(error.message) <= _REASON_CHARS else error.message[:_REASON_CHARS] + "…"
    return Violation(where, reason, keyword)


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
