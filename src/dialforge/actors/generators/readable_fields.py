"""Which facts the tools can show a person: the fields of their results.

A goal lists the facts its person asks to be told (``Task.asks_to_see``) as result fields, and a goal asking for
something no tool returns (an address, when no tool returns one) can never be met, however well the dialogue
goes. A tool's fields are its SQL's result columns when it runs on a database (what it really returns), else the
property names of its return schema, nested objects and array items included. Names match after normalisation
only (case, underscores, spaces and hyphens aside: ``ShippingAddress`` is ``shipping_address``), never by
synonym: the writer is shown the names that exist, and told them again when a name is not among them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dialforge.environments.sql.environment import SQLEnvironment
from dialforge.model.tools import ToolSpec

_NOT_A_NAME_PART = re.compile(r"[\W_]+")
_SUBSCHEMAS = ("items", "additionalProperties")
_SCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")


def field_key(name: str) -> str:
    """A field name as names are matched: case-folded, without underscores, spaces, hyphens or dots."""
    return _NOT_A_NAME_PART.sub("", name.casefold())


@dataclass(frozen=True)
class ReadableFields:
    """The fields some tool returns (by ``field_key``, as first spelled) and the tools whose results are not known:
    with one of those, any name might be returned, so none is unreachable."""

    fields: dict[str, str]
    unknown: tuple[str, ...] = ()
    by_tool: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """each tool whose result is known: the fields it returns, as spelled"""

    @classmethod
    def of(cls, tools: Sequence[ToolSpec], environment: SQLEnvironment | None = None) -> ReadableFields:
        """The fields of ``tools``; a SQL tool's are read off its statement when ``environment`` is given."""
        fields: dict[str, str] = {}
        unknown = []
        by_tool = {}
        for tool in tools:
            names = _tool_fields(tool, environment)
            if names is None:
                unknown.append(tool.name)
                continue
            by_tool[tool.name] = tuple(dict.fromkeys(names))
            for name in names:
                fields.setdefault(field_key(name), name)
        return cls(fields, tuple(unknown), by_tool)

    def unreachable(self, names: Sequence[str]) -> list[str]:
        """The names no tool returns; none when some tool's result is not known."""
        if self.unknown:
            return []
        return [name for name in names if field_key(name) not in self.fields]

    def listing(self) -> str:
        """The fields as a prompt lists them, saying which tools' results are not known."""
        shown = ", ".join(sorted(self.fields.values(), key=str.casefold)) or "(none)"
        if not self.unknown:
            return shown
        return f"{shown}; and whatever these tools return, which is not described: {', '.join(self.unknown)}"


def _tool_fields(tool: ToolSpec, environment: SQLEnvironment | None) -> list[str] | None:
    if tool.sql is not None and environment is not None:
        columns = environment.result_fields(tool.sql)
        if columns is not None:
            return columns
    if tool.returns is None:
        return None
    return list(_property_names(tool.returns))


def _property_names(schema: Any) -> Iterator[str]:
    """Every property name a JSON schema gives, walking nested objects, array items and alternatives."""
    if not isinstance(schema, dict):
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            yield name
            yield from _property_names(sub)
    for key in _SUBSCHEMAS:
        yield from _property_names(schema.get(key))
    for key in _SCHEMA_LISTS:
        alternatives = schema.get(key)
        if isinstance(alternatives, list):
            for sub in alternatives:
                yield from _property_names(sub)
