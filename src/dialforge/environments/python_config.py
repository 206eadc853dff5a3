"""A domain's Python environments from the config's references (``domains[].python``): the tools, the initial
state, the error rules. Anything that cannot be followed is a ``ValueError`` naming the key and the fix, which
the preparation turns into a ``ConfigError`` naming the domain."""

from __future__ import annotations

import builtins
import inspect
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dialforge.environments.base import ToolErrorKind
from dialforge.environments.forked_state import canonical_json
from dialforge.environments.python_env import PythonEnvironment, PythonEnvironments, Toolset, module_functions
from dialforge.environments.python_errors import ErrorRule
from dialforge.environments.references import UnresolvedReference
from dialforge.environments.references import resolve as resolve_reference


@dataclass(frozen=True)
class ErrorRuleSpec:
    """An error rule as written in the config: an exception class by reference or builtin name, a pattern."""

    kind: ToolErrorKind
    exception: str | None = None
    message: str | None = None


def load_environments(
    *,
    name: str,
    tools: str,
    state: str | None = None,
    state_parameter: str | None = "state",
    errors: Sequence[ErrorRuleSpec] = (),
    base_dir: Path | None = None,
) -> PythonEnvironments[Any]:
    """A domain's Python environments from the config's references; ``ValueError`` naming the key and the fix
    when one cannot be followed or names nothing usable as tools."""
    rules = tuple(_error_rule(spec, index, base_dir) for index, spec in enumerate(errors))
    try:
        target = resolve_reference(tools, base_dir=base_dir)
    except UnresolvedReference as exc:
        raise ValueError(f"python.tools: {exc}") from None
    try:
        initial = _load_state(state, base_dir) if state is not None else None
    except UnresolvedReference as exc:
        raise ValueError(f"python.state: {exc}") from None
    try:
        if isinstance(target, type):
            toolset = Toolset.of_toolkit(target, name=name, errors=rules, base_dir=base_dir)
        elif _is_toolkit_object(target):
            if initial is not None:
                raise ValueError(
                    f"{tools!r} is a toolkit object, which carries its own state; name its class instead to build "
                    "it on python.state, or leave python.state out"
                )
            toolset = Toolset.of_toolkit(type(target), name=name, errors=rules, base_dir=base_dir, stateful=True)
            initial = target
        else:
            toolset = Toolset.of_functions(
                _functions(tools, target), name=name, state_parameter=state_parameter, errors=rules, base_dir=base_dir
            )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"python.tools: {exc}") from None
    try:
        canonical_json(initial)
    except TypeError as exc:
        raise ValueError(
            f"python.state: a {type(initial).__name__} has no JSON form ({exc}), which the digest and the diff of "
            "each dialogue's state are made from: make it plain data, a dataclass or a pydantic model"
        ) from None
    try:
        root = PythonEnvironment(toolset, initial)
    except Exception as exc:
        raise ValueError(f"python.tools: {tools}(state) raised {type(exc).__name__}: {exc}") from None
    try:
        root.fork()  # found now rather than in the first dialogue
    except Exception as exc:
        raise ValueError(
            f"python.state: a {type(initial).__name__} cannot be copied for each dialogue ({type(exc).__name__}: "
            f"{exc}); give it a fork() method that returns an independent copy"
        ) from None
    return PythonEnvironments(root)


def _is_toolkit_object(target: Any) -> bool:
    """An instance of a class of its own whose public methods are the tools (not a module, function or list)."""
    kind = type(target)
    return kind.__module__ not in ("builtins", "types") and any(
        key[:1] != "_" and inspect.isfunction(value) for key, value in vars(kind).items()
    )


def _functions(reference: str, target: Any) -> list[Any]:
    if isinstance(target, types.ModuleType):
        functions = module_functions(target)
        if not functions:
            raise ValueError(f"{reference!r} defines no public functions to use as tools")
        return functions
    if isinstance(target, list | tuple) and target and all(callable(item) for item in target):
        return list(target)
    if inspect.isfunction(target) or inspect.ismethod(target):
        return [target]
    raise ValueError(
        f"{reference!r} is a {type(target).__name__}, not a toolkit class or object, a module, a function or a list "
        "of functions; name one of those (a toolkit class is built per dialogue as Toolkit(state))"
    )


def _load_state(reference: str, base_dir: Path | None) -> Any:
    """A ``.json`` file's data, or what a ``module:function`` reference returns when called (its value, if it is
    not callable)."""
    if reference.endswith(".json"):
        path = Path(reference) if Path(reference).is_absolute() or base_dir is None else base_dir / reference
        try:
            return orjson.loads(path.read_bytes())
        except FileNotFoundError:
            missing = f"no such file: {path} (relative paths start at the config file's folder)"
            raise UnresolvedReference(missing) from None
        except orjson.JSONDecodeError as exc:
            raise UnresolvedReference(f"{path} is not valid JSON: {exc}") from None
    value = resolve_reference(reference, base_dir=base_dir)
    if not callable(value):
        return value
    try:
        return value()
    except Exception as exc:
        raise UnresolvedReference(f"{reference}() raised {type(exc).__name__}: {exc}") from None


def _error_rule(spec: ErrorRuleSpec, index: int, base_dir: Path | None) -> ErrorRule:
    where = f"python.errors[{index}]"
    exception: Any = None
    if spec.exception is not None:
        builtin = getattr(builtins, spec.exception, None)
        try:
            exception = builtin if builtin is not None else resolve_reference(spec.exception, base_dir=base_dir)
        except UnresolvedReference as exc:
            raise ValueError(f"{where}.exception: {exc}") from None
        if not (isinstance(exception, type) and issubclass(exception, BaseException)):
            raise ValueError(f"{where}.exception: {spec.exception!r} is not an exception class")
    try:
        message = re.compile(spec.message, re.IGNORECASE) if spec.message is not None else None
    except re.error as exc:
        raise ValueError(f"{where}.message: not a regular expression: {exc}") from None
    return ErrorRule(spec.kind, exception, message)
