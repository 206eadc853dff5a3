"""Tools that are plain Python functions, acting on a state object that forks per dialogue.

This is how users plug an existing environment in: each function becomes a tool whose spec is read from its
signature and docstring. A function whose first parameter is named ``state`` receives the environment's state
object (hidden from the agent); ``fork()`` gives each dialogue its own copy of that state.

Schemas come from type hints: ``int``, ``float``, ``str``, ``bool``, ``None``, unions (``X | None``),
``list[T]``/``tuple``/``set``, ``dict[str, T]``, ``Literal[...]`` and ``Enum`` (enums of values); anything else
(pydantic models, ``typing_extensions.TypedDict``, dataclasses, ``datetime``...) gets pydantic's JSON schema, with
its ``$defs`` inlined. Arguments are validated against the schema, then converted by pydantic, so a model
parameter receives a model instance and an ``Enum`` parameter a member.

Sync functions run on the event loop: a slow one holds up other dialogues, so wrap blocking work in an async
function (``asyncio.to_thread``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import re
import types
from collections import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError
from pydantic_core import to_jsonable_python

from dialforge.environments.arguments import call_problem
from dialforge.environments.base import (
    CheckOutcome,
    ExecutedCall,
    RestoreError,
    StateDiff,
    TableDiff,
    ToolResult,
    Verification,
)
from dialforge.model.messages import Message
from dialforge.model.tasks import SQLCheck
from dialforge.model.tools import ToolSpec

S = TypeVar("S")

_JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
_ARRAYS = {list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet}
_SETS = {set, frozenset, abc.Set, abc.MutableSet}
_OBJECTS = {dict, abc.Mapping, abc.MutableMapping}


# --- JSON values ---------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """orjson's fallback: sets sorted (so digests are stable), then whatever pydantic can serialise.

    That covers pydantic models (``mode="json"``), ``Decimal``, ``Path``, iterators...; orjson itself handles
    dicts, lists, tuples, dataclasses, enums, ``datetime`` and ``UUID``.
    """
    if isinstance(value, set | frozenset):
        return sorted(value, key=_canonical_json)
    try:
        return to_jsonable_python(value)
    except ValueError:
        raise TypeError(f"{type(value).__qualname__} is not JSON-serialisable") from None


def _dumps(value: Any, option: int) -> bytes:
    try:
        return orjson.dumps(value, default=_jsonable, option=option | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:  # orjson rewords the fallback's message: keep the one naming the type
        raise TypeError(str(exc.__cause__ or exc)) from None


def _canonical_json(value: Any) -> bytes:
    """Keys sorted and stringified, so equal values give equal bytes whatever their insertion order."""
    return _dumps(value, orjson.OPT_SORT_KEYS)


def _to_json(value: Any) -> Any:
    """Plain JSON data (dicts, lists, scalars), keeping the key order the function chose."""
    return orjson.loads(_dumps(value, 0))


# --- docstrings ----------------------------------------------------------------------------------------------

_GOOGLE_ARGS = re.compile(r"^(\s*)(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$")
_GOOGLE_ANY_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\(.*?\))?\s*:(.*)$")
_REST_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and per-parameter descriptions from Google ``Args:`` or reST ``:param:``."""
    lines = doc.splitlines()
    summary = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith(":") or _GOOGLE_ANY_SECTION.match(line):
            break
        summary.append(line.strip())

    params: dict[str, str] = {}
    current: str | None = None
    args_indent: int | None = None  # indentation of the Google "Args:" header while inside that section
    entry_indent: int | None = None
    for line in lines:
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        if not text:
            if args_indent is None:
                current = None
            continue
        if header := _GOOGLE_ARGS.match(line):
            args_indent, entry_indent, current = len(header[1]), None, None
            continue
        if args_indent is not None:
            if indent > args_indent:
                entry_indent = indent if entry_indent is None else entry_indent
                if indent == entry_indent and (entry := _GOOGLE_ENTRY.match(text)):
                    current = entry[1]
                    params[current] = entry[2].strip()
                elif current is not None:
                    params[current] = f"{params[current]} {text}".strip()
                continue
            args_indent, current = None, None
        if field := _REST_PARAM.match(text):
            current = field[1]
            params[current] = field[2].strip()
        elif current is not None and indent > 0 and not text.startswith(":"):
            params[current] = f"{params[current]} {text}".strip()
        else:
            current = None
    return " ".join(summary), params


# --- schemas -------------------------------------------------------------------------------------------------


def _enum_schema(values: Sequence[Any], what: str) -> dict[str, Any]:
    kinds = {_JSON_TYPES.get(type(value)) for value in values}
    if None in kinds:
        raise TypeError(f"{what} has values that are not JSON scalars: {list(values)!r}")
    schema: dict[str, Any] = {"enum": list(values)}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    return schema


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's schema with each ``$ref`` replaced by its definition, so a property stands on its own."""
    definitions = schema.get("$defs", {})

    def resolve_object(node: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
        rest = {key: resolve(value, seen) for key, value in node.items() if key not in ("$ref", "$defs")}
        if "$ref" not in node:
            return rest
        name = node["$ref"].removeprefix("#/$defs/")
        if name in seen:
            raise TypeError(f"{name} refers to itself, so its schema cannot be inlined")
        return {**resolve_object(definitions[name], seen | {name}), **rest}

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        return resolve_object(node, seen) if isinstance(node, dict) else node

    return resolve_object(schema, frozenset())


def _schema_for(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint; ``TypeError`` saying why when there is none."""
    if hint is Any or hint is object:
        return {}
    if hint is None or hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[type(None) if hint is None else hint]}
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return _enum_schema(args, f"{hint!r}")
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_schema([member.value for member in hint], hint.__qualname__)
    if origin in (Union, types.UnionType):
        members = [_schema_for(arg) for arg in args]
        if all(list(member) == ["type"] and isinstance(member["type"], str) for member in members):
            return {"type": list(dict.fromkeys(member["type"] for member in members))}
        return {"anyOf": members}
    base = origin or hint
    if base in _ARRAYS:
        schema: dict[str, Any] = {"type": "array"}
        if base is tuple and args and args[-1] is not Ellipsis:
            schema |= {"prefixItems": [_schema_for(arg) for arg in args], "minItems": len(args), "items": False}
        elif args and (items := _schema_for(args[0])):
            schema["items"] = items
        if base in _SETS:
            schema["uniqueItems"] = True
        return schema
    if base in _OBJECTS:
        if args and args[0] is not str:
            raise TypeError(f"{hint!r} has non-string keys, which JSON objects cannot have")
        schema = {"type": "object"}
        if args and (values := _schema_for(args[1])):
            schema["additionalProperties"] = values
        return schema
    try:
        return _inline_refs(TypeAdapter(hint).json_schema())
    except PydanticUserError as exc:
        raise TypeError(f"{hint!r} has no JSON schema: {str(exc).splitlines()[0]}") from None


# --- tools ---------------------------------------------------------------------------------------------------


class _ConversionError(Exception):
    """Arguments that satisfy the JSON schema but not the function's types (e.g. a pydantic validator)."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class _Parameter:
    name: str
    adapter: TypeAdapter[Any] | None  # converts validated JSON into what the function expects
    positional_only: bool
    default: Any


@dataclass(frozen=True)
class _Tool:
    spec: ToolSpec
    function: Callable[..., Any]
    parameters: tuple[_Parameter, ...]
    state: Literal["positional", "keyword"] | None  # how the function takes the state, if it does

    def bind(self, arguments: dict[str, Any], state: Any) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for the function, converted by pydantic (``_ConversionError`` if not)."""
        args: list[Any] = [state] if self.state == "positional" else []
        kwargs: dict[str, Any] = {"state": state} if self.state == "keyword" else {}
        reasons: list[str] = []
        for parameter in self.parameters:
            if parameter.name in arguments:
                value = arguments[parameter.name]
                if parameter.adapter is not None:
                    try:
                        value = parameter.adapter.validate_python(value)
                    except ValidationError as exc:
                        reasons += [
                            f"at {'/'.join(map(str, (parameter.name, *error['loc'])))}: {error['msg']}"
                            for error in exc.errors()
                        ]
            elif parameter.positional_only:
                value = parameter.default
            else:
                continue
            if parameter.positional_only:
                args.append(value)
            else:
                kwargs[parameter.name] = value
        if reasons:
            raise _ConversionError(reasons)
        return args, kwargs


def _resolve(function: Callable[..., Any], annotation: Any) -> Any:
    """An annotation, evaluated when it is a string (``from __future__ import annotations``).

    One at a time, unlike ``typing.get_type_hints``: an unresolvable ``state`` or return annotation (a class
    defined inside a function, say) must not stop the tool from being built.
    """
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, inspect.unwrap(function).__globals__)
    except Exception as exc:
        raise NameError(f"cannot resolve the annotation {annotation!r}: {exc}") from None


def _tool_from_function(function: Callable[..., Any]) -> _Tool:
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"{function!r} has no __name__: a tool is named after its function, so pass a def")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: cannot read its signature: {exc}") from None
    summary, descriptions = _parse_docstring(inspect.getdoc(function) or "")

    declared = list(signature.parameters.values())
    state_kind: Literal["positional", "keyword"] | None = None
    if declared and declared[0].name == "state":
        state_kind = "keyword" if declared.pop(0).kind is inspect.Parameter.KEYWORD_ONLY else "positional"

    properties: dict[str, Any] = {}
    required: list[str] = []
    bound: list[_Parameter] = []
    for parameter in declared:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            stars = "*" if parameter.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise TypeError(
                f"{name}: {stars}{parameter.name} is not supported; a tool needs named parameters "
                "so that the agent knows what to pass"
            )
        try:
            hint = _resolve(function, parameter.annotation)
            schema = {} if hint is inspect.Parameter.empty else _schema_for(hint)
            adapter = None if hint is inspect.Parameter.empty else TypeAdapter(hint)
        except (TypeError, NameError, PydanticUserError) as exc:
            raise TypeError(f"{name}: parameter {parameter.name!r}: {exc}") from None
        if parameter.name in descriptions:
            schema["description"] = descriptions[parameter.name]
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
        else:
            with contextlib.suppress(TypeError):  # a default the agent cannot be told about still applies
                schema["default"] = _to_json(parameter.default)
        properties[parameter.name] = schema
        bound.append(
            _Parameter(parameter.name, adapter, parameter.kind is inspect.Parameter.POSITIONAL_ONLY, parameter.default)
        )

    object_schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        object_schema["required"] = required
    returns = None
    if signature.return_annotation is not inspect.Signature.empty:
        with contextlib.suppress(TypeError, NameError):  # the return schema is optional
            returns = _schema_for(_resolve(function, signature.return_annotation))
    spec = ToolSpec(name=name, description=summary, parameters=object_schema, returns=returns)
    return _Tool(spec, function, tuple(bound), state_kind)


def _failure_from(tool: str, exc: Exception) -> ToolResult:
    """An exception raised by a tool, as the error an agent would get from a real API."""
    keyed = isinstance(exc, KeyError) and len(exc.args) == 1  # str(KeyError) would quote its argument
    text = str(exc.args[0]) if keyed else str(exc) or type(exc).__name__
    exception = type(exc).__name__
    if isinstance(exc, LookupError):
        return ToolResult.failure("not_found", f"{tool}: {text}", exception=exception)
    if isinstance(exc, PermissionError):
        return ToolResult.failure("refused", f"{tool}: {text}", exception=exception)
    if isinstance(exc, ValueError):
        return ToolResult.failure("invalid_arguments", f"{tool}: {text}", exception=exception)
    return ToolResult.failure("execution_error", f"{tool} failed with {exception}: {text}", exception=exception)


# --- state diffs ---------------------------------------------------------------------------------------------


def _rows(value: Any) -> dict[Any, Any] | None:
    """A table's rows by key, or None when ``value`` is not a table.

    A table is a list of objects with unique scalar ``id`` fields, or an object whose values are all objects (keyed
    by the object's keys). An absent entry counts as an empty table.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return value if all(isinstance(row, dict) for row in value.values()) else None
    if isinstance(value, list) and all(isinstance(row, dict) and isinstance(row.get("id"), str | int) for row in value):
        keyed = {row["id"]: row for row in value}
        return keyed if len(keyed) == len(value) else None
    return None


def _table_diff(before: dict[Any, Any], after: dict[Any, Any]) -> TableDiff:
    return TableDiff(
        inserted=[row for key, row in after.items() if key not in before],
        updated=[
            {"key": key, "before": before[key], "after": row}
            for key, row in after.items()
            if key in before and _canonical_json(before[key]) != _canonical_json(row)
        ],
        deleted=[row for key, row in before.items() if key not in after],
    )


def _state_diff(before: Any, after: Any) -> StateDiff:
    """Per-table row changes between two JSON states; other changes under the pseudo-table ``state``."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return StateDiff(tables={"state": TableDiff(updated=[{"key": "state", "before": before, "after": after}])})
    tables: dict[str, TableDiff] = {}
    others = TableDiff()
    for name in [*after, *(name for name in before if name not in after)]:
        old, new = before.get(name), after.get(name)
        old_rows, new_rows = _rows(old), _rows(new)
        if old_rows is not None and new_rows is not None:
            if not (table := _table_diff(old_rows, new_rows)).empty:
                tables[name] = table
        elif _canonical_json(old) != _canonical_json(new):
            others.updated.append({"key": name, "before": old, "after": new})
    if not others.empty:
        tables["state"] = others
    return StateDiff(tables=tables)


# --- the environment -----------------------------------------------------------------------------------------


class PythonEnvironment(Generic[S]):
    """Python functions as tools over a state object; see the module docstring for how specs are derived.

    ``diff`` works on the states' JSON form (as in ``digest``). When a state is a dict of *tables* (lists of row
    objects with unique ``id`` fields, or objects of id -> row object), each changed table gets its inserted,
    updated (``{key, before, after}``) and deleted rows; other top-level entries that changed are reported as
    ``updated`` entries ``{key: <entry name>, before, after}`` of a pseudo-table ``state``. A state that is not a
    dict is a single such entry ``{key: "state", before, after}``.
    """

    def __init__(self, functions: Sequence[Callable[..., Any]], state: S | None = None, *, name: str = "python"):
        if not functions:
            raise ValueError(f"PythonEnvironment {name!r} needs at least one function")
        tools: dict[str, _Tool] = {}
        for function in functions:
            tool = _tool_from_function(function)
            if tool.spec.name in tools:
                raise ValueError(f"two functions are named {tool.spec.name!r}; tool names must be unique")
            tools[tool.spec.name] = tool
        self.name = name
        self.state = state
        self.initial: PythonEnvironment[S] | None = None
        """the state this one was forked from, which ``verify`` diffs against"""
        self._tools = tools
        self._specs = {tool_name: tool.spec for tool_name, tool in tools.items()}

    @classmethod
    def from_module(
        cls, module: types.ModuleType, state: S | None = None, *, name: str | None = None
    ) -> PythonEnvironment[S]:
        """Every public function defined in ``module`` (``__all__`` when it has one; imported ones never)."""
        public = getattr(module, "__all__", None)
        functions = [
            value
            for key, value in vars(module).items()
            if inspect.isfunction(value)
            and value.__module__ == module.__name__
            and (key in public if public is not None else not key.startswith("_"))
        ]
        if not functions:
            raise ValueError(f"module {module.__name__} defines no public functions to use as tools")
        return cls(functions, state, name=name or module.__name__)

    def tools(self) -> list[ToolSpec]:
        return [tool.spec for tool in self._tools.values()]

    async def call(self, name: str, arguments: dict[str, Any], *, conversation: Sequence[Message] = ()) -> ToolResult:
        if (problem := call_problem(name, arguments, self._specs)) is not None:
            return problem
        tool = self._tools[name]
        try:
            args, kwargs = tool.bind(arguments, self.state)
        except _ConversionError as exc:
            return ToolResult.failure("invalid_arguments", f"{name}: {exc}", violations=exc.reasons)
        try:
            result = tool.function(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # the agent reads the error and recovers, as it would from a real API
            return _failure_from(name, exc)
        try:
            return ToolResult(content=_to_json(result))
        except TypeError as exc:
            return ToolResult.failure("execution_error", f"{name} returned a value that is not JSON: {exc}")

    def fork(self) -> PythonEnvironment[S]:
        """Same tools over a copy of the state: the state's own ``fork()`` if it has one, else a deep copy."""
        fork_state = getattr(self.state, "fork", None)
        clone = copy.copy(self)
        clone.state = fork_state() if callable(fork_state) else copy.deepcopy(self.state)
        clone.initial = self
        return clone

    def digest(self) -> str:
        """blake2b of the state's canonical JSON (keys sorted); ``TypeError`` when the state is not JSON."""
        return hashlib.blake2b(_canonical_json(self.state), digest_size=16).hexdigest()

    def diff(self, other: PythonEnvironment[S]) -> StateDiff:
        """What changed from ``other``'s state to this one's, per table (see the class docstring)."""
        before, after = _canonical_json(other.state), _canonical_json(self.state)
        return StateDiff() if before == after else _state_diff(orjson.loads(before), orjson.loads(after))

    def snapshot(self) -> dict[str, Any]:
        """Only the digest: the state is rebuilt by running the dialogue's calls again, and checked against it."""
        return {"kind": "python", "digest": self.digest()}

    def verify(self, checks: Sequence[SQLCheck]) -> Verification:
        """The diff from the state this one was forked from; SQL checks cannot run on Python state and fail."""
        initial = self.initial or self
        refused = "a SQL check cannot run on Python tools"
        outcomes = [
            CheckOutcome(description=check.description, sql=check.sql, passed=False, detail=refused) for check in checks
        ]
        return Verification(
            initial_digest=initial.digest(), final_digest=self.digest(), diff=self.diff(initial), checks=outcomes
        )

    def close(self) -> None:
        """The state is plain memory, freed with the environment."""


class PythonEnvironments(Generic[S]):
    """A domain of Python tools: each dialogue works on its own fork of the root's state; Python tools are
    deterministic code, so a stored dialogue is rebuilt by running its calls again on a fresh fork, and the
    result is checked against the stored digest."""

    prompts: tuple[str, ...] = ()

    def __init__(self, root: PythonEnvironment[S]) -> None:
        self.root = root

    def tools(self) -> list[ToolSpec]:
        return self.root.tools()

    def new(self, *, seed: int, clock: str) -> PythonEnvironment[S]:
        return self.root.fork()

    async def restore(
        self, snapshot: dict[str, Any], *, seed: int, calls: Sequence[ExecutedCall]
    ) -> PythonEnvironment[S]:
        if snapshot.get("kind") != "python":
            raise RestoreError(f"not a Python environment's snapshot: kind {snapshot.get('kind')!r}")
        environment = self.root.fork()
        for name, arguments in calls:
            await environment.call(name, arguments)
        if environment.digest() != snapshot.get("digest"):
            raise RestoreError("running its tool calls again did not reproduce the stored state")
        return environment
