"""Copy-on-access forks of a tool environment's state, with a digest and a diff that cost what a dialogue touched.

A Python tool environment gives every dialogue its own state. Copying a state of a few MB per dialogue (a
deep copy took 170 ms for 3.5 MB), and hashing all of it after every call, would cost far more than the model
calls around it. A fork instead shares the root's values until a tool reaches them: a ``ForkedDict`` wraps a
nested dict in a ``ForkedDict`` of its own when first read and copies any other mutable value (a list, a
pydantic model) when first read; scalars are immutable. A tool therefore never holds a value it could change
in the root, while a dialogue that reads ten orders of six thousand copies ten.

Two kinds of state are forked this way (``forkable``): a dict whose JSON form is itself (string keys, lists,
strings, numbers, booleans, null), and a pydantic model (such as tau2-bench's ``RetailDB``), whose dict fields
become ``ForkedDict``s of a shallow copy. Their *entries* are the dict's items or the model's fields.

Because every level records which of its keys were set, deleted or reached, the digest and the diff only look
at those: the digest is a sum of per-entry hashes (equal for equal states, whatever led to them), so a fork's
is the root's with the changed entries' terms replaced.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

_MODULUS = 1 << 128
_ABSENT = object()
_SCALARS = (str, int, float, bool, type(None))


# --- JSON forms ----------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """orjson's fallback: sets sorted (so digests are stable), then whatever pydantic can serialise.

    That covers pydantic models (``mode="json"``), ``Decimal``, ``Path``, iterators...; orjson itself handles
    dicts, lists, tuples, dataclasses, enums, ``datetime`` and ``UUID``.
    """
    if isinstance(value, set | frozenset):
        return sorted(value, key=canonical_json)
    try:
        return to_jsonable_python(value)
    except ValueError:
        raise TypeError(f"{type(value).__qualname__} is not JSON-serialisable") from None


def _dumps(value: Any, option: int) -> bytes:
    try:
        return orjson.dumps(value, default=_jsonable, option=option | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:  # orjson rewords the fallback's message: keep the one naming the type
        raise TypeError(str(exc.__cause__ or exc)) from None


def canonical_json(value: Any) -> bytes:
    """Keys sorted and stringified, so equal values give equal bytes whatever their insertion order."""
    return _dumps(value, orjson.OPT_SORT_KEYS)


def to_json(value: Any) -> Any:
    """Plain JSON data (dicts, lists, scalars), keeping the key order the value has."""
    return orjson.loads(_dumps(value, 0))


def is_plain_json(value: Any) -> bool:
    """Whether ``value`` is its own JSON form: orjson refuses keys that are not strings and sets, and what it
    turns into something else (a tuple into a list, a dataclass into a dict) no longer compares equal."""
    try:
        return bool(orjson.loads(orjson.dumps(value)) == value)
    except (orjson.JSONEncodeError, TypeError):
        return False


# --- forks ---------------------------------------------------------------------------------------------------


class ForkedDict(dict[Any, Any]):
    """A dict that shares its values with ``base`` until they are read or replaced (see the module docstring).

    Every method that hands out or replaces a value goes through ``__getitem__``/``__setitem__``; ``__iter__``
    is defined so that ``dict(x)``, ``{**x}`` and ``update(x)`` take the path that calls them too. ``plain``:
    the base is plain JSON, so a list is copied by orjson (faster than ``copy.deepcopy``).
    """

    __slots__ = ("base", "plain", "touched")

    def __init__(self, base: dict[Any, Any], *, plain: bool = True) -> None:
        super().__init__(base)
        self.base = base
        self.plain = plain
        self.touched: set[Any] = set()
        """keys whose value is this fork's own (copied, wrapped, set) or that were deleted"""

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if key in self.touched or isinstance(value, _SCALARS):
            return value
        if type(value) is dict:
            own: Any = ForkedDict(value, plain=self.plain)
        elif self.plain:
            own = orjson.loads(orjson.dumps(value))
        else:
            own = copy.deepcopy(value)
        dict.__setitem__(self, key, own)
        self.touched.add(key)
        return own

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self.touched.add(key)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self.touched.add(key)

    def __iter__(self) -> Iterator[Any]:
        return dict.__iter__(self)

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[key] for key in list(dict.keys(self))]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        return [(key, self[key]) for key in list(dict.keys(self))]

    def pop(self, key: Any, *default: Any) -> Any:
        if key not in self:
            if default:
                return default[0]
            raise KeyError(key)
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple[Any, Any]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(dict.keys(self)))
        return key, self.pop(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = default
        return default

    def update(self, other: Any = (), /, **more: Any) -> None:
        pairs = other.items() if hasattr(other, "items") else other
        for key, value in [*pairs, *more.items()]:
            self[key] = value

    def __ior__(self, other: Any) -> ForkedDict:  # type: ignore[misc]
        self.update(other)
        return self

    def clear(self) -> None:
        self.touched.update(dict.keys(self))
        dict.clear(self)

    def copy(self) -> dict[Any, Any]:
        return dict(self.items())

    def changed(self) -> set[Any]:
        """The keys whose value may differ from the base's: set, deleted, or reached and since changed."""
        keys = set()
        base = self.base
        for key in self.touched:
            value = dict.get(self, key, _ABSENT)
            before = base.get(key, _ABSENT)
            if type(value) is ForkedDict and value.base is before:
                if value.touched and value.changed():  # a record a scan only read is skipped at once
                    keys.add(key)
            elif value is _ABSENT or before is _ABSENT or (value is not before and value != before):
                keys.add(key)
        return keys


def _changed(value: Any, before: Any) -> bool:
    if isinstance(value, ForkedDict) and value.base is before:
        return bool(value.changed())
    return value is not before and value != before


def forkable(state: Any) -> bool:
    """Whether ``fork`` can fork ``state`` copy-on-access: plain JSON dicts and pydantic models."""
    return isinstance(state, BaseModel) or (type(state) is dict and is_plain_json(state))


def fork(state: Any) -> Any:
    """A copy-on-access fork of a ``forkable`` state."""
    if isinstance(state, BaseModel):
        fields = {name: getattr(state, name) for name in type(state).model_fields}
        forked = {
            name: ForkedDict(value, plain=False) if type(value) is dict else copy.deepcopy(value)
            for name, value in fields.items()
            if not isinstance(value, _SCALARS)
        }
        return state.model_copy(update=forked)
    return ForkedDict(state)


def entries(state: dict[Any, Any] | BaseModel) -> dict[Any, Any]:
    """A state's top-level entries: a dict's items (the dict itself), a pydantic model's fields."""
    if isinstance(state, BaseModel):
        return {name: getattr(state, name) for name in type(state).model_fields}
    return state


Changes = tuple[dict[Any, Any], dict[Any, Any], dict[Any, set[Any] | None]]
"""A fork's entries, its root's, and per changed entry the changed keys of a forked table (None: as a whole)."""


def changes(state: Any, root: Any) -> Changes | None:
    """What a fork of ``root`` changed: its entries, the root's, and per changed entry the changed keys of a
    forked table (None: the entry changed as a whole). None when ``state`` is not a fork of ``root``."""
    if isinstance(state, ForkedDict) and state.base is root:
        after: dict[Any, Any] = dict(dict.items(state))
        before: dict[Any, Any] = root
        changed = state.changed()
    elif isinstance(state, BaseModel) and type(state) is type(root):
        after, before = entries(state), entries(root)
        changed = {name for name, value in after.items() if _changed(value, before[name])}
    else:
        return None
    tables: dict[Any, set[Any] | None] = {}
    for key in changed:
        value = after.get(key)
        forked_table = isinstance(value, ForkedDict) and key in before and value.base is before[key]
        tables[key] = value.changed() if forked_table else None  # type: ignore[union-attr]
    return after, before, tables


# --- digests -------------------------------------------------------------------------------------------------


def _hash(*parts: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(b"\0".join(parts), digest_size=16).digest(), "big")


def _table_term(key: Any, table_sum: int) -> int:
    return _hash(b"d", canonical_json(key), table_sum.to_bytes(16, "big"))


def _term(key: Any, value: Any, depth: int) -> int:
    """One entry's share of its dict's sum: dicts down to ``depth`` levels are sums themselves."""
    if isinstance(value, dict) and depth > 0:
        return _table_term(key, dict_sum(value, depth - 1))
    return _hash(b"v", canonical_json(key), canonical_json(value))


def dict_sum(value: dict[Any, Any], depth: int = 1, keys: Iterable[Any] | None = None) -> int:
    """The sum of the entries' terms (of ``keys`` only, when given), modulo 2**128."""
    # dict's own accessors: a fork's unread values are the base's, equal to what reading them would copy
    if keys is None:
        pairs: Iterable[tuple[Any, Any]] = dict.items(value)
    else:
        pairs = ((key, dict.__getitem__(value, key)) for key in keys if dict.__contains__(value, key))
    return sum(_term(key, item, depth) for key, item in pairs) % _MODULUS


def state_digest(state: Any) -> str:
    """A sum of per-entry terms for a dict or a pydantic model (see ``RootDigest``), else a hash of the JSON."""
    if isinstance(state, dict | BaseModel):
        return f"{dict_sum(entries(state), 1):032x}"
    return f"{_hash(b'v', canonical_json(state)):032x}"


class RootDigest:
    """The root state's per-entry terms, computed once, from which each fork's digest is derived."""

    def __init__(self, root: Any) -> None:
        self.root = root
        top = entries(root)
        self.tables = {key: dict_sum(value, 0) for key, value in top.items() if isinstance(value, dict)}
        self.terms = {
            key: _table_term(key, self.tables[key]) if key in self.tables else _term(key, value, 0)
            for key, value in top.items()
        }
        self.total = sum(self.terms.values()) % _MODULUS
        self.digest = f"{self.total:032x}"
        """the root's own digest, as ``state_digest`` gives it"""

    def of(self, found: Changes) -> str:
        """The digest of a fork of the root from its ``changes``: the root's, with the changed entries' terms
        replaced."""
        after, before, tables = found
        total = self.total
        for key, rows in tables.items():
            total -= self.terms.get(key, 0)
            if key not in after:
                continue
            if rows is not None:
                table = self.tables[key] - dict_sum(before[key], 0, rows) + dict_sum(after[key], 0, rows)
                total += _table_term(key, table % _MODULUS)
            else:
                total += _term(key, after[key], 1)
        return f"{total % _MODULUS:032x}"
