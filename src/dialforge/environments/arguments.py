"""Checking a call's arguments against the tool's parameter schema, for every environment alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dialforge.environments.base import ToolResult
from dialforge.json_schema.checks import schema_violations
from dialforge.model.tools import ToolSpec


def call_problem(name: str, arguments: Any, specs: Mapping[str, ToolSpec]) -> ToolResult | None:
    """Why a call cannot reach any tool, as the error a real API gives: unknown tool, or bad arguments."""
    spec = specs.get(name)
    if spec is None:
        return ToolResult.failure(
            "unknown_tool", f"there is no tool {name!r}; the tools are {sorted(specs)}", tools=sorted(specs)
        )
    if not isinstance(arguments, dict):
        return ToolResult.failure("invalid_arguments", f"{name}: arguments must be a JSON object")
    return argument_problem(spec, arguments)


def argument_problem(spec: ToolSpec, arguments: dict[str, Any]) -> ToolResult | None:
    """A structured ``invalid_arguments`` error naming missing, unexpected and mistyped arguments."""
    properties = spec.parameters.get("properties", {})
    missing = [name for name in spec.parameters.get("required", []) if name not in arguments]
    unexpected = sorted(set(arguments) - set(properties))
    violations = [] if missing or unexpected else schema_violations(arguments, spec.parameters)
    if not (missing or unexpected or violations):
        return None
    parts = []
    if missing:
        parts.append(f"missing required argument(s) {missing}")
    if unexpected:
        parts.append(f"unexpected argument(s) {unexpected}; {spec.name} takes {sorted(properties)}")
    parts.extend(violations)
    return ToolResult.failure(
        "invalid_arguments",
        f"{spec.name}: " + "; ".join(parts),
        missing=missing,
        unexpected=unexpected,
        violations=violations,
    )
