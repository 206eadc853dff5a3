"""Tools that are plain Python functions, acting on a state object that each dialogue has its own copy of.

This is how users plug an existing environment in (``domains[].python`` in the config): each function becomes a
tool whose spec is read from its signature and docstring. The state reaches a function through the parameter
named by ``state_parameter`` (``state`` by default), hidden from the agent; or the tools are the public methods
of a toolkit class, built per dialogue around that dialogue's state as ``Toolkit(state)``, so no argument of a
tool is ever taken for the state.

Schemas come from type hints: ``int``, ``float``, ``str``, ``bool``, ``None``, unions (``X | None``),
``list[T]``/``tuple``/``set``, ``dict[str, T]``, ``Literal[...]`` and ``Enum`` (enums of values); anything else
(pydantic models, ``typing_extensions.TypedDict``, dataclasses, ``datetime``...) gets pydantic's JSON schema, with
its ``$defs`` inlined. Arguments are validated against the schema, then converted by pydantic, so a model
parameter receives a model instance and an ``Enum`` parameter a member.

Sync functions run in a worker thread (``asyncio.to_thread``), so a slow one does not hold up other dialogues;
a dialogue's own calls run one at a time. Exceptions become the error kinds of ``python_errors.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import inspect
import pickle
import re
import types
from collections import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError

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
from dialforge.environments.forked_state import (
    Changes,
    ForkedDict,
    RootDigest,
    canonical_json,
    changes,
    fork,
    forkable,
    state_digest,
    to_json,
)
from dialforge.environments.python_errors import ErrorRule, failure_from
from dialforge.environments.references import UnresolvedReference
from dialforge.environments.references import resolve as resolve_reference
from dialforge.environments.state_view import state_view
from dialforge.model.messages import Message
from dialforge.model.tasks import Check, PythonCheck
from dialforge.model.tools import ToolSpec

S = TypeVar("S")

_JSON_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
_ARRAYS = {list, tuple, set, frozenset, abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet}
_SETS = {set, frozenset, abc.Set, abc.MutableSet}
_OBJECTS = {dict, abc.Mapping, abc.MutableMapping}


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
    state_parameter: str | None = None
    method: bool = False
    """a toolkit's method: the toolkit object comes first"""

    def bind(self, arguments: dict[str, Any], state: Any, toolkit: Any) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments for the function, converted by pydantic (``_ConversionError`` if not)."""
        args: list[Any] = [toolkit] if self.method else []
        if self.state == "positional":
            args.append(state)
        kwargs: dict[str, Any] = {}
        if self.state == "keyword" and self.state_parameter is not None:
            kwargs[self.state_parameter] = state
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


def _tool_from_function(
    function: Callable[..., Any], *, state_parameter: str | None = "state", method: bool = False
) -> _Tool:
    """A tool from ``function``'s signature and docstring; the parameter named ``state_parameter`` receives the
    state and is hidden from the agent; a ``method`` (of a toolkit class) gets the toolkit as its first argument."""
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"{function!r} has no __name__: a tool is named after its function, so pass a def")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: cannot read its signature: {exc}") from None
    summary, descriptions = _parse_docstring(inspect.getdoc(function) or "")

    declared = list(signature.parameters.values())
    if method:
        if not declared or declared[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise TypeError(f"{name}: a toolkit method takes the toolkit (self) first")
        declared.pop(0)
    state_kind: Literal["positional", "keyword"] | None = None
    at = next((i for i, p in enumerate(declared) if state_parameter is not None and p.name == state_parameter), None)
    if at is not None:
        taken = declared.pop(at)
        if taken.kind is inspect.Parameter.POSITIONAL_ONLY and at > 0:
            raise TypeError(f"{name}: the state parameter {state_parameter!r} is positional-only but not first")
        first = at == 0 and taken.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        state_kind = "positional" if taken.kind is inspect.Parameter.POSITIONAL_ONLY or first else "keyword"

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
                schema["default"] = to_json(parameter.default)
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
    return _Tool(spec, function, tuple(bound), state_kind, state_parameter, method)


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
            if key in before and canonical_json(before[key]) != canonical_json(row)
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
        elif canonical_json(old) != canonical_json(new):
            others.updated.append({"key": name, "before": old, "after": new})
    if not others.empty:
        tables["state"] = others
    return StateDiff(tables=tables)


# --- the environment -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toolset:
    """What a domain's Python environments share: the tools, how a toolkit object is made from a dialogue's state
    (for tools that are a toolkit's methods), the rules that turn exceptions into error kinds, and the folder that
    check references in task files start from."""

    name: str
    tools: dict[str, _Tool]
    toolkit: Callable[[Any], Any] | None = None
    errors: tuple[ErrorRule, ...] = ()
    base_dir: Path | None = None
    checks: dict[str, Callable[..., Any] | str] = field(default_factory=dict)
    """check functions by reference, or why the reference could not be followed"""

    @classmethod
    def of_functions(
        cls,
        functions: Sequence[Callable[..., Any]],
        *,
        name: str = "python",
        state_parameter: str | None = "state",
        errors: Sequence[ErrorRule] = (),
        base_dir: Path | None = None,
    ) -> Toolset:
        tools = _unique([_tool_from_function(f, state_parameter=state_parameter) for f in functions], name)
        return cls(name, tools, errors=tuple(errors), base_dir=base_dir)

    @classmethod
    def of_toolkit(
        cls,
        toolkit: type,
        *,
        name: str | None = None,
        errors: Sequence[ErrorRule] = (),
        base_dir: Path | None = None,
        stateful: bool = False,
    ) -> Toolset:
        """The public methods ``toolkit`` defines itself (not those it inherits), called on a toolkit object built
        per dialogue as ``toolkit(state)``; or, ``stateful``, on the dialogue's own copy of a toolkit object that is
        the state itself."""
        methods = [value for key, value in vars(toolkit).items() if key[:1] != "_" and inspect.isfunction(value)]
        if not methods:
            raise ValueError(f"{toolkit.__qualname__} defines no public methods to use as tools")
        tools = _unique([_tool_from_function(m, state_parameter=None, method=True) for m in methods], toolkit.__name__)
        build = _itself if stateful else toolkit
        return cls(name or toolkit.__name__, tools, toolkit=build, errors=tuple(errors), base_dir=base_dir)

    def check_function(self, reference: str) -> Callable[..., Any] | str:
        """The function a Python check names, or why there is none (resolved once per reference)."""
        if reference not in self.checks:
            try:
                function = resolve_reference(reference, base_dir=self.base_dir)
            except UnresolvedReference as exc:
                self.checks[reference] = str(exc)
            else:
                self.checks[reference] = function if callable(function) else f"{reference} is not a function"
        return self.checks[reference]


def _itself(state: Any) -> Any:
    return state


def _unique(tools: Sequence[_Tool], name: str) -> dict[str, _Tool]:
    if not tools:
        raise ValueError(f"the Python tools {name!r} need at least one function")
    unique: dict[str, _Tool] = {}
    for tool in tools:
        if tool.spec.name in unique:
            raise ValueError(f"two functions are named {tool.spec.name!r}; tool names must be unique")
        unique[tool.spec.name] = tool
    return unique


def module_functions(module: types.ModuleType) -> list[Callable[..., Any]]:
    """Every public function defined in ``module`` (``__all__`` when it has one; imported ones never)."""
    public = getattr(module, "__all__", None)
    return [
        value
        for key, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__
        and (key in public if public is not None else not key.startswith("_"))
    ]


def _copy(state: Any) -> Any:
    """A deep copy: pickle's round trip (several times faster than ``copy.deepcopy``), or a deep copy when the
    state cannot be pickled."""
    if isinstance(state, ForkedDict):
        state = to_json(state)
    try:
        return pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, TypeError, AttributeError):
        return copy.deepcopy(state)


class PythonEnvironment(Generic[S]):
    """Python functions as tools over a state object; see the module docstring for how specs are derived.

    Forks: the state's own ``fork()`` if it has one; a plain JSON dict or a pydantic model is forked
    copy-on-access (``forked_state.py``: nothing is copied until a tool reaches it); anything else is copied
    whole. The digest is the state's own ``digest()`` if it has one, else computed from its JSON when asked for
    (from the entries a fork changed) and kept until the next call. ``snapshot`` does not hash the state at all:
    it keeps a running hash of the calls and their results, which ``PythonEnvironments.restore`` checks by running
    the calls again.

    ``diff`` works on the states' JSON form. When a state is a dict of *tables* (lists of row objects with unique
    ``id`` fields, or objects of id -> row object), each changed table gets its inserted, updated
    (``{key, before, after}``) and deleted rows; other top-level entries that changed are reported as ``updated``
    entries ``{key: <entry name>, before, after}`` of a pseudo-table ``state``. A state that is not a dict is a
    single such entry ``{key: "state", before, after}``.
    """

    def __init__(
        self,
        functions: Sequence[Callable[..., Any]] | Toolset,
        state: S | None = None,
        *,
        name: str = "python",
        state_parameter: str | None = "state",
        errors: Sequence[ErrorRule] = (),
    ):
        self.toolset = (
            functions
            if isinstance(functions, Toolset)
            else Toolset.of_functions(functions, name=name, state_parameter=state_parameter, errors=errors)
        )
        self.name = self.toolset.name
        self.initial: PythonEnvironment[S] | None = None
        """the environment this one was forked from, which ``verify`` diffs against"""
        self._specs = {tool_name: tool.spec for tool_name, tool in self.toolset.tools.items()}
        self._calls = 0
        self._journal = ""
        self.state = state  # type: ignore[assignment]

    @property
    def state(self) -> S:
        """The state; reading it from outside may change it, so the digest is computed again next time."""
        self._forget()
        return self._state

    @state.setter
    def state(self, state: S) -> None:
        self._state = state
        self._toolkit = self.toolset.toolkit(state) if self.toolset.toolkit is not None else None
        self._forget()

    def _forget(self) -> None:
        self._stale()
        self._forkable: bool | None = None
        self._root_digest: RootDigest | None = None

    def _stale(self) -> None:
        """The state may have changed: what was derived from it is computed again when asked for."""
        self._digest: str | None = None
        self._found: tuple[Any, Changes | None] | None = None

    def _changes_from(self, other: Any) -> Changes | None:
        """What this state changed from ``other`` (a state), when it is a copy-on-access fork of it; kept until
        the next call, as digest and diff both ask."""
        if self._found is None or self._found[0] is not other:
            self._found = (other, changes(self._state, other))
        return self._found[1]

    @classmethod
    def from_module(
        cls,
        module: types.ModuleType,
        state: S | None = None,
        *,
        name: str | None = None,
        state_parameter: str | None = "state",
        errors: Sequence[ErrorRule] = (),
    ) -> PythonEnvironment[S]:
        """Every public function defined in ``module`` (``__all__`` when it has one; imported ones never)."""
        functions = module_functions(module)
        if not functions:
            raise ValueError(f"module {module.__name__} defines no public functions to use as tools")
        return cls(functions, state, name=name or module.__name__, state_parameter=state_parameter, errors=errors)

    @classmethod
    def from_toolkit(
        cls, toolkit: type, state: S | None = None, *, name: str | None = None, errors: Sequence[ErrorRule] = ()
    ) -> PythonEnvironment[S]:
        """The public methods ``toolkit`` defines, on ``toolkit(state)``: each dialogue's fork builds its own."""
        return cls(Toolset.of_toolkit(toolkit, name=name, errors=errors), state)

    def tools(self) -> list[ToolSpec]:
        return [tool.spec for tool in self.toolset.tools.values()]

    async def call(self, name: str, arguments: dict[str, Any], *, conversation: Sequence[Message] = ()) -> ToolResult:
        self._stale()
        result = await self._run(name, arguments)
        self._calls += 1
        parts = (self._journal.encode(), name.encode(), canonical_json(arguments), result.to_text().encode())
        entry = b"\0".join(parts)
        self._journal = hashlib.blake2b(entry, digest_size=16).hexdigest()
        return result

    async def _run(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        if (problem := call_problem(name, arguments, self._specs)) is not None:
            return problem
        tool = self.toolset.tools[name]
        try:
            args, kwargs = tool.bind(arguments, self._state, self._toolkit)
        except _ConversionError as exc:
            return ToolResult.failure("invalid_arguments", f"{name}: {exc}", violations=exc.reasons)
        try:
            if inspect.iscoroutinefunction(tool.function):
                result = await tool.function(*args, **kwargs)
            else:  # off the event loop: other dialogues go on; this one's calls run one at a time
                result = await asyncio.to_thread(tool.function, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # the agent reads the error and recovers, as it would from a real API
            return failure_from(name, exc, self.toolset.errors)
        try:
            return ToolResult(content=to_json(result))
        except TypeError as exc:
            return ToolResult.failure("execution_error", f"{name} returned a value that is not JSON: {exc}")

    def fork(self) -> PythonEnvironment[S]:
        """Same tools over a state of its own (see the class docstring); the fork's calls never reach this one."""
        state = self._state
        own_fork = getattr(state, "fork", None)
        if callable(own_fork):
            forked = own_fork()
        elif self._forks_on_access():
            forked = fork(state)
        else:
            forked = _copy(state)
        clone = PythonEnvironment(self.toolset, forked)
        clone.initial = self
        return clone

    def _forks_on_access(self) -> bool:
        if self._forkable is None:
            self._forkable = self.initial is None and forkable(self._state)
        return self._forkable

    def digest(self) -> str:
        """The state's own ``digest()``, or one of its JSON form that ignores key order (see ``forked_state``);
        ``TypeError`` when the state is not JSON. Kept until the next call."""
        if self._digest is None:
            self._digest = self._compute_digest()
        return self._digest

    def _compute_digest(self) -> str:
        state = self._state
        own_digest = getattr(state, "digest", None)
        if callable(own_digest):
            return str(own_digest())
        if self.initial is None and self._forks_on_access():
            return self._terms().digest  # the terms its forks' digests are derived from, computed once
        root = self.initial
        if root is not None and root._forks_on_access() and (found := self._changes_from(root._state)) is not None:
            return root._terms().of(found)
        return state_digest(state)

    def _terms(self) -> RootDigest:
        if self._root_digest is None:
            self._root_digest = RootDigest(self._state)
        return self._root_digest

    def diff(self, other: PythonEnvironment[S]) -> StateDiff:
        """What changed from ``other``'s state to this one's, per table (see the class docstring)."""
        state = self._state
        if (found := self._changes_from(other._state)) is not None:
            return _forked_diff(*found)
        before, after = canonical_json(other._state), canonical_json(state)
        return StateDiff() if before == after else _state_diff(orjson.loads(before), orjson.loads(after))

    def snapshot(self) -> dict[str, Any]:
        """The digest of the state the dialogue started from, and a running hash of its calls and their results:
        the state is rebuilt by running the calls again, and checked against both."""
        root = self.initial or self
        return {"kind": "python", "initial": root.digest(), "calls": self._calls, "journal": self._journal}

    def verify(self, checks: Sequence[Check]) -> Verification:
        """The diff from the state this one was forked from, and each Python check called on the final state."""
        initial = self.initial or self
        diff = self.diff(initial)
        outcomes = [self._outcome(check, diff) for check in checks]
        return Verification(initial_digest=initial.digest(), final_digest=self.digest(), diff=diff, checks=outcomes)

    def _outcome(self, check: Check, diff: StateDiff) -> CheckOutcome:
        if not isinstance(check, PythonCheck):
            return CheckOutcome.cannot_run(check, "Python tools")
        function = self.toolset.check_function(check.python)
        if isinstance(function, str):
            return CheckOutcome.of(check, passed=False, detail=function)
        try:
            value = function(self._state, diff, **check.arguments)
        except Exception as exc:
            return CheckOutcome.of(check, passed=False, detail=f"the check raised {type(exc).__name__}: {exc}")
        self._stale()  # a check that changed the state must not leave a stale digest
        shown = repr(value)
        detail = f"the check returned {shown if len(shown) <= 200 else shown[:200] + '...'}"
        return CheckOutcome.of(check, passed=bool(value), detail=detail)

    def close(self) -> None:
        """The state is plain memory, freed with the environment."""


def _forked_diff(after: dict[Any, Any], before: dict[Any, Any], tables: dict[Any, set[Any] | None]) -> StateDiff:
    """``_state_diff`` on only the entries (and, in forked tables, the rows) a fork changed."""
    old: dict[Any, Any] = {}
    new: dict[Any, Any] = {}
    for key, rows in tables.items():
        if rows is None:
            old[key], new[key] = before.get(key), after.get(key)
            continue
        old[key] = {row: dict.__getitem__(before[key], row) for row in rows if row in before[key]}
        new[key] = {row: dict.__getitem__(after[key], row) for row in rows if dict.__contains__(after[key], row)}
    return _state_diff(orjson.loads(canonical_json(old)), orjson.loads(canonical_json(new)))  # keys sorted, as a whole


class PythonEnvironments(Generic[S]):
    """A domain of Python tools: each dialogue works on its own fork of the root's state; Python tools are
    deterministic code, so a stored dialogue is rebuilt by running its calls again on a fresh fork, and checked
    against the stored start digest and the running hash of the calls' results."""

    prompts: tuple[str, ...] = ()

    def __init__(self, root: PythonEnvironment[S]) -> None:
        self.root = root

    def tools(self) -> list[ToolSpec]:
        return self.root.tools()

    def new(self, *, seed: int, clock: str) -> PythonEnvironment[S]:
        return self.root.fork()

    def view(self, *, seed: int, tokens: int) -> str:
        """What goal writers are shown of the initial state (``state_view.py``)."""
        return state_view(self.root._state, seed=seed, tokens=tokens)

    async def restore(
        self, snapshot: dict[str, Any], *, seed: int, calls: Sequence[ExecutedCall]
    ) -> PythonEnvironment[S]:
        if snapshot.get("kind") != "python":
            raise RestoreError(f"not a Python environment's snapshot: kind {snapshot.get('kind')!r}")
        if "journal" in snapshot and snapshot.get("initial") != self.root.digest():
            raise RestoreError(
                "the domain's Python state is not the one this dialogue started from (its digest differs); "
                "resume with the state the run started with, or start a new run in another --out directory"
            )
        environment = self.root.fork()
        for name, arguments in calls:
            await environment.call(name, arguments)
        reproduced = (
            environment._journal == snapshot["journal"]
            if "journal" in snapshot
            else environment.digest() == snapshot.get("digest")
        )
        if not reproduced:
            raise RestoreError(
                "running its tool calls again did not give the results stored with it: the tools are not "
                "deterministic (a random id, the time of day) or their code changed since"
            )
        return environment

    async def close(self) -> None:
        """Nothing outlives its dialogue."""
