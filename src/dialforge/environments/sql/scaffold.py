"""Deterministic SQL tools for every table of a schema, no model: the toolset any database gets for free.

Per table: get one row by its key, search the text columns, list rows with optional filters, follow each
foreign key both ways, create a row, update the non-key columns, delete a row (unless SQLite refuses that write
on the table: ``SchemaDefect``; ``scaffold_notes`` says what was left out and why). Names are unique snake_case
read from the table names; every identifier is quoted, every bind parameter is declared in the JSON schema
and every declared parameter is bound. Tables without a primary key are keyed by their rowid, which their
read tools return with every row so that an agent can come back to one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import orjson

from dialforge.environments.sql.schema import (
    Column,
    DatabaseSchema,
    ForeignKey,
    Table,
    WriteOperation,
    quote_identifier,
)
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import read_back_gaps

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_NAME_CHARS = 64

_SUMMARY_COLUMNS = 8
_BIND_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEFAULT_KEYWORDS = {"CURRENT_TIME", "CURRENT_DATE", "CURRENT_TIMESTAMP", "TRUE", "FALSE", "NULL"}
_IRREGULAR_PLURALS = {"person": "people", "child": "children", "man": "men", "woman": "women"}
_CHANGE_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {"rows_affected": {"type": "integer"}},
    "required": ["rows_affected"],
}
_INSERT_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {"rows_affected": {"type": "integer"}, "last_row_id": {"type": "integer"}},
    "required": ["rows_affected", "last_row_id"],
}
_JSON_TYPES = {"INTEGER": "integer", "REAL": "number", "NUMERIC": "number", "TEXT": "string", "BLOB": "string"}
_LIMIT_NOTE = f"at most `limit` rows (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})"


def scaffold_tools(schema: DatabaseSchema) -> list[SQLTool]:
    """The tools of every table, in schema order; the same schema always gives the same tools."""
    tools = [tool for table in schema.tables for tool in _table_tools(schema, table)]
    names = _unique([tool.name for tool in tools])
    return [tool.model_copy(update={"name": name}) for tool, name in zip(tools, names, strict=True)]


def _table_tools(schema: DatabaseSchema, table: Table) -> Iterator[SQLTool]:
    noun = _Noun.of(table)
    yield from _optional(_get(table, noun), _search(table, noun), _list(table, noun))
    for fk in table.foreign_keys:
        parent = _parent_table(schema, table, fk)
        if parent is None:
            continue
        ambiguous = parent.name == table.name or sum(other.table == fk.table for other in table.foreign_keys) > 1
        role = f"_by_{_role(fk)}" if ambiguous else ""
        yield from _optional(
            _follow_to_parent(table, noun, fk, parent, _Noun.of(parent), role),
            _follow_to_children(table, noun, fk, parent, _Noun.of(parent), role),
        )
    references = _references(schema, table)
    writes: tuple[tuple[WriteOperation, SQLTool | None], ...] = (
        ("insert", _create(table, noun, references)),
        ("update", _update(table, noun, references)),
        ("delete", _delete(table, noun)),
    )
    yield from _optional(*(tool for operation, tool in writes if schema.blocking(table.name, operation) is None))


def read_back_tools(schema: DatabaseSchema, tools: Sequence[SQLTool]) -> list[SQLTool]:
    """Scaffolded reads that return what ``tools`` write but do not read back (``read_back_gaps``): each such
    table's get tool (every column, by key), else its list tool; named apart from ``tools``."""
    gaps = read_back_gaps(tools, schema)
    tables = dict.fromkeys(table for columns in gaps.values() for table, _ in columns)
    added = []
    for name in tables:
        table = schema.table(name)
        added.append(_get(table, _Noun.of(table)) or _list(table, _Noun.of(table)))
    names = _unique([*(tool.name for tool in tools), *(tool.name for tool in added)])[len(tools) :]
    return [tool.model_copy(update={"name": name}) for tool, name in zip(added, names, strict=True)]


_WRITE_VERBS: dict[WriteOperation, str] = {"insert": "create", "update": "update", "delete": "delete"}


def scaffold_notes(schema: DatabaseSchema) -> list[str]:
    """What the scaffold could not do as usual and why: one line per defect of the schema (``SchemaDefect``)."""
    notes = []
    for defect in schema.defects:
        left_out = ", ".join(_WRITE_VERBS[operation] for operation in defect.blocks)
        notes.append(f"{defect.message} (no {left_out} tool for it)" if left_out else defect.message)
    return notes


def _references(schema: DatabaseSchema, table: Table) -> dict[str, str]:
    """For the parameter descriptions of writes: what each foreign-key column must match."""
    references = {}
    for fk in table.foreign_keys:
        parent = _parent_table(schema, table, fk)
        if parent is not None:
            for column, ref in zip(fk.columns, fk.ref_columns, strict=True):
                references[column] = f"; the {ref} of an existing {_Noun.of(parent).phrase}"
    return references


def _optional(*tools: SQLTool | None) -> Iterator[SQLTool]:
    """Tools a table cannot have (no text column to search, nothing to update) come back as None."""
    return (tool for tool in tools if tool is not None)


# Names


@dataclass(frozen=True)
class _Noun:
    """How tools and descriptions name a table's rows: ``InvoiceLine`` -> invoice_line / invoice_lines."""

    singular: str
    plural: str

    @classmethod
    def of(cls, table: Table) -> _Noun:
        words = _words(table.name) or ["table"]
        *head, last = words
        if not last.isalpha():
            return cls("_".join(words), "_".join(words))
        if _singular(last) != last:
            return cls("_".join([*head, _singular(last)]), "_".join(words))
        return cls("_".join(words), "_".join([*head, _plural(last)]))

    @property
    def phrase(self) -> str:
        return self.singular.replace("_", " ")

    @property
    def phrase_plural(self) -> str:
        return self.plural.replace("_", " ")


def _words(name: str) -> list[str]:
    """Lower-case ASCII words: ``InvoiceLine`` -> invoice, line; ``Order Details`` -> order, details."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", ascii_name)
    return re.findall(r"[a-z0-9]+", split.lower())


def _singular(word: str) -> str:
    for singular, plural in _IRREGULAR_PLURALS.items():
        if word == plural:
            return singular
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")) or not word.endswith("s"):
        return word
    return word[:-1]


def _plural(word: str) -> str:
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _role(fk: ForeignKey) -> str:
    """What a foreign key's columns say about the parent, for telling several keys apart: ReportsTo -> reports_to."""
    words = [word for column in fk.columns for word in _words(column)] or ["ref"]
    if len(words) > 1 and words[-1] == "id":
        words.pop()
    return "_".join(words)


def _unique(names: Sequence[str]) -> list[str]:
    """Cut to the length limit and number repeats (``get_order_2``), first come first served."""
    taken: set[str] = set()
    unique = []
    for name in names:
        candidate = name[:MAX_NAME_CHARS].rstrip("_")
        number = 2
        while candidate in taken:
            suffix = f"_{number}"
            candidate = name[: MAX_NAME_CHARS - len(suffix)].rstrip("_") + suffix
            number += 1
        taken.add(candidate)
        unique.append(candidate)
    return unique


# Parameters and results


class _Parameters:
    """One tool's JSON-schema parameters; each is bound under a name that is valid SQL and unique in the tool."""

    def __init__(self, *reserved: str) -> None:
        """``reserved`` names (``query``, ``limit``) are kept for the tool's own parameters; they parse everywhere."""
        self.properties: dict[str, dict[str, Any]] = {}
        self.required: list[str] = []
        self._reserved = {name.casefold() for name in reserved}

    def add(self, name: str, schema: dict[str, Any], *, required: bool = False, reserved: bool = False) -> str:
        """Declare a parameter named after ``name`` (a reserved one keeps its name); return its placeholder."""
        bind = name if reserved else self._free(_bind_name(name))
        self.properties[bind] = schema
        if required:
            self.required.append(bind)
        return f":{bind}"

    def _free(self, base: str) -> str:
        taken = self._reserved | {name.casefold() for name in self.properties}
        bind, number = base, 2
        while bind.casefold() in taken:
            bind, number = f"{base}_{number}", number + 1
        return bind

    def limit(self) -> str:
        """The ``limit`` parameter, clamped in SQL too: a negative LIMIT would mean no limit at all in SQLite."""
        schema = {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": DEFAULT_LIMIT,
            "description": f"the most rows to return (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})",
        }
        bind = self.add("limit", schema, reserved=True)
        return f"max(1, min(COALESCE({bind}, {DEFAULT_LIMIT}), {MAX_LIMIT}))"

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": self.properties, "additionalProperties": False}
        if self.required:
            schema["required"] = self.required
        return schema


def _bind_name(column: str) -> str:
    """Plain column names stay as they are; others become snake_case (``Unit Price`` -> unit_price), and SQL
    keywords get a suffix (``order`` -> order_value): SQL parsers such as sqlglot misread ``:order``."""
    name = column if _BIND_NAME.match(column) else "_".join(_words(column)) or "value"
    if name[0].isdigit():
        name = f"p_{name}"
    return f"{name}_value" if name.upper() in apsw.keywords else name


def _json_type(column: Column) -> str | list[str]:
    """JSON type from SQLite's affinity; dates (DATETIME has NUMERIC affinity) are strings, untyped columns either."""
    declared = column.type.upper()
    if declared in ("", "ANY"):
        return ["string", "number"]
    if column.affinity == "NUMERIC" and ("DATE" in declared or "TIME" in declared):
        return "string"
    return _JSON_TYPES[column.affinity]


def _types(column: Column, *, nullable: bool) -> str | list[str]:
    json_type = _json_type(column)
    types = [json_type] if isinstance(json_type, str) else list(json_type)
    if nullable:
        types.append("null")
    return types[0] if len(types) == 1 else types


def _value_schema(column: Column, description: str, *, nullable: bool) -> dict[str, Any]:
    """A column-bound parameter; its ``title`` names the column, so checkers can sample values from the data."""
    return {"type": _types(column, nullable=nullable), "title": column.name, "description": description}


def _row_schema(table: Table) -> dict[str, Any]:
    columns = table.result_columns
    return {
        "type": "object",
        "properties": {
            column.name: {"type": _types(column, nullable=not column.not_null and column.name != table.rowid_alias)}
            for column in columns
        },
        "required": [column.name for column in columns],
    }


def _rows_schema(table: Table) -> dict[str, Any]:
    return {"type": "array", "items": _row_schema(table)}


# SQL pieces


def _column_ref(column: str, alias: str | None = None) -> str:
    return f"{quote_identifier(alias)}.{quote_identifier(column)}" if alias else quote_identifier(column)


def _select_list(table: Table, alias: str | None = None) -> str:
    """Every result column; the rowid is named explicitly, since SQLite may call ``_rowid_`` "rowid"."""
    columns = [_column_ref(column.name, alias) for column in table.result_columns]
    if not table.primary_key and table.key_columns:
        columns[0] += f" AS {quote_identifier(table.key_columns[0].name)}"
    return ", ".join(columns)


def _order_by(table: Table) -> str:
    return ", ".join(quote_identifier(column.name) for column in table.key_columns or table.result_columns)


def _match_key(table: Table, noun: _Noun, params: _Parameters, alias: str | None = None) -> str:
    """``"k1" = :k1 AND "k2" = :k2`` over the table's key, declaring the key parameters as required."""
    return " AND ".join(
        f"{_column_ref(column.name, alias)} = "
        + params.add(
            column.name, _value_schema(column, f"{column.name} of the {noun.phrase}", nullable=False), required=True
        )
        for column in table.key_columns
    )


def _default_sql(default: str) -> str:
    """A column default as an expression: SQLite reads a bare or double-quoted word in DEFAULT as a string."""
    if default.startswith('"') and default.endswith('"'):
        default = default[1:-1].replace('""', '"')
    elif not _BIND_NAME.match(default) or default.upper() in _DEFAULT_KEYWORDS:
        return f"({default})"
    return "'" + default.replace("'", "''") + "'"


# Descriptions


def _names(columns: Sequence[Column] | Sequence[str], conjunction: str = "and") -> str:
    """``A``, ``A and B``, ``A, B and C``: column lists as a sentence reads them."""
    names = [column if isinstance(column, str) else column.name for column in columns]
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}" if len(names) > 1 else "".join(names)


def _summary(table: Table) -> str:
    """The columns a row carries, cut short for wide tables (the returns schema has them all)."""
    names = [column.name for column in table.result_columns]
    return ", ".join(names[:_SUMMARY_COLUMNS]) + (", ..." if len(names) > _SUMMARY_COLUMNS else "")


def _order_by_names(table: Table) -> str:
    return _names(table.key_columns or table.result_columns)


def _rowid_note(table: Table) -> str:
    if table.primary_key:
        return ""
    if not table.key_columns:
        return " The table has no primary key and its columns hide the rowid, so single rows cannot be named."
    return f" The table has no primary key, so rows are identified by their {table.key_columns[0].name}."


# The tools


def _get(table: Table, noun: _Noun) -> SQLTool | None:
    if not table.key_columns:
        return None
    params = _Parameters()
    where = _match_key(table, noun, params)
    return SQLTool(
        name=f"get_{noun.singular}",
        description=f"Get one {noun.phrase} by its {_names(table.key_columns)}. Returns the {noun.phrase} row "
        f"({_summary(table)}) or an error when no row matches.{_rowid_note(table)}",
        parameters=params.schema(),
        sql=f"SELECT {_select_list(table)} FROM {quote_identifier(table.name)} WHERE {where}",
        returns=_row_schema(table),
    )


def _search(table: Table, noun: _Noun) -> SQLTool | None:
    text = [column for column in table.columns if column.affinity == "TEXT"]
    if not text:
        return None
    params = _Parameters("query", "limit")
    query = params.add(
        "query",
        {
            "type": "string",
            "minLength": 1,
            "description": f"text to look for in {_names(text, 'or')} (case-insensitive)",
        },
        required=True,
        reserved=True,
    )
    matches = " OR ".join(f"{quote_identifier(column.name)} LIKE '%' || {query} || '%'" for column in text)
    limit = params.limit()
    return SQLTool(
        name=f"search_{noun.plural}",
        description=f"Search {noun.phrase_plural} whose {_names(text, 'or')} contains the query text. "
        f"Returns an array of {noun.phrase} rows ({_summary(table)}), {_LIMIT_NOTE}.{_rowid_note(table)}",
        parameters=params.schema(),
        sql=f"SELECT {_select_list(table)} FROM {quote_identifier(table.name)} WHERE {matches}"
        f" ORDER BY {_order_by(table)} LIMIT {limit}",
        returns=_rows_schema(table),
    )


def _list(table: Table, noun: _Noun) -> SQLTool:
    params = _Parameters("limit")
    filters = [column for column in table.columns if not (column.affinity == "BLOB" and column.type)]
    conditions = []
    for column in filters:
        schema = _value_schema(column, f"only {noun.phrase_plural} whose {column.name} equals this", nullable=True)
        bind = params.add(column.name, schema)
        conditions.append(f"({bind} IS NULL OR {quote_identifier(column.name)} = {bind})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    limit = params.limit()
    filtered = f", optionally only those with the given {_names(filters)}" if filters else ""
    return SQLTool(
        name=f"list_{noun.plural}",
        description=f"List {noun.phrase_plural}{filtered}. Returns an array of {noun.phrase} rows "
        f"({_summary(table)}) in {_order_by_names(table)} order, {_LIMIT_NOTE}.{_rowid_note(table)}",
        parameters=params.schema(),
        sql=f"SELECT {_select_list(table)} FROM {quote_identifier(table.name)}{where}"
        f" ORDER BY {_order_by(table)} LIMIT {limit}",
        returns=_rows_schema(table),
    )


def _parent_table(schema: DatabaseSchema, table: Table, fk: ForeignKey) -> Table | None:
    """The table a foreign key points to, or None when the constraint names a table or column that is not there."""
    if not fk.columns or len(fk.columns) != len(fk.ref_columns):
        return None
    try:
        parent = schema.table(fk.table)
        for column, ref in zip(fk.columns, fk.ref_columns, strict=True):
            table.column(column)
            parent.column(ref)
    except KeyError:
        return None
    return parent


def _follow_to_parent(
    child: Table, noun: _Noun, fk: ForeignKey, parent: Table, parent_noun: _Noun, role: str
) -> SQLTool | None:
    if not child.key_columns:
        return None
    params = _Parameters()
    where = _match_key(child, noun, params, alias="child")
    join = " AND ".join(
        f"{_column_ref(ref, 'parent')} = {_column_ref(column, 'child')}"
        for column, ref in zip(fk.columns, fk.ref_columns, strict=True)
    )
    return SQLTool(
        name=f"get_{parent_noun.singular}{role}_for_{noun.singular}",
        description=f"Get the {parent_noun.phrase} that one {noun.phrase} refers to through its {_names(fk.columns)}, "
        f"given the {noun.phrase}'s {_names(child.key_columns)}. Returns the {parent_noun.phrase} row "
        f"({_summary(parent)}) or an error when no row matches.",
        parameters=params.schema(),
        sql=f"SELECT {_select_list(parent, 'parent')}"
        f" FROM {quote_identifier(parent.name)} AS {quote_identifier('parent')}"
        f" JOIN {quote_identifier(child.name)} AS {quote_identifier('child')} ON {join} WHERE {where}",
        returns=_row_schema(parent),
    )


def _follow_to_children(
    child: Table, noun: _Noun, fk: ForeignKey, parent: Table, parent_noun: _Noun, role: str
) -> SQLTool:
    params = _Parameters("limit")
    conditions = []
    for column, ref in zip(fk.columns, fk.ref_columns, strict=True):
        schema = _value_schema(parent.column(ref), f"{ref} of the {parent_noun.phrase}", nullable=False)
        conditions.append(f"{quote_identifier(column)} = {params.add(ref, schema, required=True)}")
    limit = params.limit()
    return SQLTool(
        name=f"get_{noun.plural}{role}_for_{parent_noun.singular}",
        description=f"List the {noun.phrase_plural} of one {parent_noun.phrase}: those whose {_names(fk.columns)} "
        f"matches the {parent_noun.phrase}'s {_names(fk.ref_columns)}. Returns an array of {noun.phrase} rows "
        f"({_summary(child)}), {_LIMIT_NOTE}.{_rowid_note(child)}",
        parameters=params.schema(),
        sql=f"SELECT {_select_list(child)} FROM {quote_identifier(child.name)} WHERE {' AND '.join(conditions)}"
        f" ORDER BY {_order_by(child)} LIMIT {limit}",
        returns=_rows_schema(child),
    )


def _create(table: Table, noun: _Noun, references: dict[str, str]) -> SQLTool | None:
    """NOT NULL columns without a default are required, and so is the key unless SQLite assigns it (rowid alias)."""
    columns = [column for column in table.columns if not column.generated]
    if not columns:
        return None
    params = _Parameters()
    values = []
    for column in columns:
        assigned = column.name == table.rowid_alias
        required = not assigned and (column.primary_key > 0 or (column.not_null and column.default is None))
        if assigned:
            description = f"{column.name}; assigned automatically when omitted"
        elif column.default is not None:
            description = f"{column.name}; defaults to {column.default}"
        else:
            description = column.name
        description += references.get(column.name, "")
        bind = params.add(column.name, _value_schema(column, description, nullable=not required), required=required)
        values.append(bind if column.default is None else f"COALESCE({bind}, {_default_sql(column.default)})")
    if table.rowid_alias:
        new_row = f"last_row_id is the new {table.rowid_alias}"
    elif not table.primary_key:
        new_row = f"last_row_id is the new row's {table.key_columns[0].name}"
    else:
        new_row = f"the new row is identified by its {_names(table.primary_key)}"
    needed = f"Required: {_names(params.required)}" if params.required else "Nothing is required"
    return SQLTool(
        name=f"create_{noun.singular}",
        description=f"Add one {noun.phrase}. {needed}; omitted columns take their default (or NULL). "
        f"Returns {{rows_affected, last_row_id}}; {new_row}.",
        parameters=params.schema(),
        sql=f"INSERT INTO {quote_identifier(table.name)} ({', '.join(quote_identifier(c.name) for c in columns)})"
        f" VALUES ({', '.join(values)})",
        kind="write",
        returns=_INSERT_RESULT,
    )


def _update(table: Table, noun: _Noun, references: dict[str, str]) -> SQLTool | None:
    """Only the columns given change: ``SET "c" = COALESCE(:c, "c")``, so null or omitted keeps the value."""
    changeable = [column for column in table.columns if not (column.primary_key or column.generated)]
    if not table.key_columns or not changeable:
        return None
    params = _Parameters()
    where = _match_key(table, noun, params)
    assignments = []
    for column in changeable:
        description = f"new {column.name}{references.get(column.name, '')}; omit to keep the current value"
        schema = _value_schema(column, description, nullable=True)
        quoted = quote_identifier(column.name)
        assignments.append(f"{quoted} = COALESCE({params.add(column.name, schema)}, {quoted})")
    key = _names(table.key_columns)
    return SQLTool(
        name=f"update_{noun.singular}",
        description=f"Change one {noun.phrase}, found by its {key}: only the columns given change "
        f"({_names(changeable)}); omitted ones keep their value. Returns {{rows_affected}}, "
        f"which is 0 when no {noun.phrase} has that {key}.{_rowid_note(table)}",
        parameters=params.schema(),
        sql=f"UPDATE {quote_identifier(table.name)} SET {', '.join(assignments)} WHERE {where}",
        kind="write",
        returns=_CHANGE_RESULT,
    )


def _delete(table: Table, noun: _Noun) -> SQLTool | None:
    if not table.key_columns:
        return None
    params = _Parameters()
    where = _match_key(table, noun, params)
    key = _names(table.key_columns)
    return SQLTool(
        name=f"delete_{noun.singular}",
        description=f"Delete one {noun.phrase} by its {key}. Returns {{rows_affected}}, "
        f"which is 0 when no {noun.phrase} has that {key}.{_rowid_note(table)}",
        parameters=params.schema(),
        sql=f"DELETE FROM {quote_identifier(table.name)} WHERE {where}",
        kind="write",
        returns=_CHANGE_RESULT,
    )


# tools.json


def tools_json(tools: Sequence[SQLTool]) -> str:
    """Tools as a pretty-printed JSON list, the format a domain's ``tools:`` and ``dialforge tools check`` read."""
    return orjson.dumps([tool.model_dump(exclude_none=True) for tool in tools], option=orjson.OPT_INDENT_2).decode()


def write_tools_json(tools: Sequence[SQLTool], path: str | Path) -> None:
    Path(path).write_text(tools_json(tools) + "\n", encoding="utf-8")
