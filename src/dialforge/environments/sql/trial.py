"""Trial runs: a tool runs on throwaway forks, with arguments drawn from the data, until a run proves it.

A run proves a read when it returns a row and a write when it changes one; a run that works but returns or
changes nothing proves nothing, so a tool no run proves is invalid, unless the data leaves no way to prove it (an
empty table, no row a write may change, no parent row, no unused key): then it is valid, with a note saying why.
Every error the runs meet is kept, and a write whose own literals break a CHECK is invalid whatever its runs did
(``literals.py``). Arguments come, in order of preference:

- for a read, from *witness* rows: the read's own query with each comparison to a parameter taken out and the
  compared column selected instead, which lists values that those comparisons match in rows the query returns;
- from the column each parameter meets (compared with, inserted into, set): values of real rows, the parameters
  on one table from the same rows (so that a composite key or a set of filters matches a row), preferring rows
  with values over NULLs. Where foreign keys are enforced, an UPDATE's rows are ones whose foreign keys hold and a
  DELETE's ones nothing refers to;
- for an INSERT, a new row: a copy of an existing row (so that CHECK constraints hold), its foreign keys pointing
  at parent rows, and its primary key and each UNIQUE column set taken by no row: a fresh value for a column of
  the key that is no foreign key (past the largest number, or the next free text of the same shape), else a
  combination of parent values that no row has yet;
- else from the parameter's JSON schema.

Values are converted to the parameter's type where the data holds another one ('7' for an integer), and a value
searched for inside a text (``LIKE '%' || :q || '%'``) is cut to a short piece of it.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from sqlglot import exp

from dialforge.environments.base import ToolResult
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.literals import literal_violations
from dialforge.environments.sql.resolution import Resolver
from dialforge.environments.sql.schema import DatabaseSchema, Table, WriteOperation, quote_identifier, spelled
from dialforge.environments.sql.tool import SQLTool
from dialforge.json_schema.checks import schema_violations
from dialforge.json_schema.sampler import SchemaSamplingError, sample_json

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
"""A date, or a date and time, as SQLite's date functions write them."""
_FINAL_ERRORS = frozenset({"refused", "timeout"})
"""Trial errors that other arguments cannot cure: the statement itself is at fault."""
_WRAPPERS = (exp.Paren, exp.DPipe, exp.Lower, exp.Upper, exp.Cast, exp.Trim, exp.Coalesce, exp.Date)
"""Expressions that pass a value through: ``lower(:q)``, ``'%' || :q || '%'``, ``COALESCE(:x, "x")``, ``date(:d)``."""
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Glob, exp.NullSafeEQ)
_PATTERNS = (exp.Like, exp.ILike, exp.Glob)
_MATCHED_BY_ITSELF = (exp.EQ, exp.GTE, exp.LTE, exp.NullSafeEQ, *_PATTERNS, exp.In, exp.Between)
"""Comparisons a column's own value satisfies: a witness row's value makes them true."""
_EXCERPT_CHARS = 24
_SCANNED_ROWS = 1000
"""Rows a value query looks at to prefer ones with fewer NULLs: bounded, so big tables cost no full scan."""
_PARENT_ROWS = 100
_FRESH_TRIES = 200


@dataclass
class _Failure:
    """One kind of error the trials met: the first arguments that caused it, and in which runs."""

    kind: str
    message: str
    arguments: dict[str, Any]
    runs: list[int]

    @property
    def text(self) -> str:
        runs = f"run {self.runs[0]}" if len(self.runs) == 1 else f"runs {', '.join(map(str, self.runs))}"
        return f"the trial run failed ({self.kind}): {self.message}; {runs}, arguments {_json(self.arguments)}"


def run_trial(
    tool: SQLTool, database: SQLDatabase, resolver: Resolver, samples: int, clock: datetime | None = None
) -> tuple[list[str], dict[str, Any]]:
    """Run the tool on fresh forks until a run proves it; (problems, what the deciding run did). ``clock`` is what
    SQL's 'now' reads in the runs: the dialogues' own date when the config fixes one, else the wall clock.

    A run that works but returns or changes no row proves nothing: the tool is valid only when a run proves it, or
    when the data leaves no way to (``_excuse``). Every error the runs met is listed: among the problems when the
    tool is invalid, and in the record otherwise. The record: the ``arguments``, the ``result`` in words,
    ``attempts`` (runs made), ``rows`` (returned by a read, changed by a write), ``errors`` (the runs' errors, when
    any) and a ``note`` when the tool is valid without proof.
    """
    root = database.environment([tool])
    try:
        sampler = _ArgumentSampler(tool, resolver, root, samples)
        failures: dict[tuple[str, str], _Failure] = {}
        proved: dict[str, Any] | None = None
        ran: dict[str, Any] | None = None
        trial: dict[str, Any] = {}
        for attempt, arguments in enumerate(_draws(sampler, samples, resolver.statement, clock), start=1):
            fork = root.fork(clock=clock)
            try:
                result = fork.execute(tool.name, arguments)
                rows = _changed_rows(fork, root) if isinstance(resolver.statement, exp.Update) else _rows(result)
            finally:
                fork.close()
            trial = {"arguments": arguments, "result": _summary(result), "attempts": attempt, "rows": rows}
            error = result.error
            if error is None or error.kind == "not_found":  # a get tool that found no row still ran
                try:
                    result.to_text()
                except (TypeError, orjson.JSONEncodeError) as exc:
                    return [f"the result is not JSON-serialisable ({exc}); cast such values in the SQL"], trial
                if trial["rows"]:
                    proved = trial
                    break
                ran = ran or trial
                continue
            failure = failures.setdefault(
                (error.kind, error.message), _Failure(error.kind, error.message, arguments, [])
            )
            failure.runs.append(attempt)
            if error.kind in _FINAL_ERRORS:
                break
        record = (proved or ran or trial) | {"attempts": trial["attempts"]}
        if failures:
            record["errors"] = [failure.text for failure in failures.values()]
        if faults := literal_violations(resolver.statement, resolver.target, root):
            return [*faults, *record.get("errors", [])], record
        if proved is not None:
            return [], record
        if (note := _excuse(resolver, sampler, failures.values(), ran is not None)) is not None:
            return [], record | {"note": note}
        unproved = [_unproved(tool, sampler, ran)] if ran is not None else []
        return [*record.get("errors", []), *unproved, *_defects(resolver)], record
    finally:
        root.close()


def _unproved(tool: SQLTool, sampler: _ArgumentSampler, ran: dict[str, Any]) -> str:
    """Why a tool whose runs worked without returning or changing a row is not proved, and what to check."""
    if tool.kind == "read":
        what, must = "returned", "a read must return rows"
    else:
        what, must = "changed", "a write must change a row"
    why = f": {sampler.unmatched}" if sampler.unmatched else ""
    return (
        f"no trial {what} a row (e.g. {ran['result']} with arguments {_json(ran['arguments'])}){why}; {must} for"
        " arguments drawn from the data: check the conditions and the literal values against the rows"
    )


def _excuse(resolver: Resolver, sampler: _ArgumentSampler, failures: Iterable[_Failure], ran: bool) -> str | None:
    """Why a tool that no run proved is valid all the same: the data, not the tool, left no way to return or change
    a row (an empty table, no row a write may change, no parent row, no unused key)."""
    statement = resolver.statement
    what = "changed" if isinstance(statement, exp.Insert | exp.Update | exp.Delete) else "returned"
    if ran:
        target = resolver.target if isinstance(statement, exp.Insert) else None
        empty = [table.name for table in resolver.used_tables if table.row_count == 0 and table != target]
        if empty:
            verb = "has" if len(empty) == 1 else "have"
            return f"no trial {what} a row: {', '.join(map(quote_identifier, empty))} {verb} no rows"
        if sampler.blocked:
            return f"no trial {what} a row: {sampler.blocked}"
    if not isinstance(statement, exp.Insert) or resolver.target is None:
        return None
    messages = [failure.message for failure in failures]
    if not messages:
        return None
    if all("FOREIGN KEY constraint failed" in message for message in messages):
        for fk in resolver.target.foreign_keys:
            parent = resolver.table(fk.table)
            if parent is not None and parent.row_count == 0:
                return f"valid although every trial broke a foreign key: the parent table {parent.name} has no rows"
    if sampler.keys_taken and all("UNIQUE constraint failed" in message for message in messages):
        return f"valid although every trial broke a UNIQUE constraint: {sampler.keys_taken}"
    return None


def _defects(resolver: Resolver) -> list[str]:
    """The schema's own defect that makes this write fail, named after the trial's failures."""
    operations: dict[type[exp.Expression], WriteOperation] = {
        exp.Insert: "insert",
        exp.Update: "update",
        exp.Delete: "delete",
    }
    operation = operations.get(type(resolver.statement))
    if operation is None or resolver.target is None:
        return []
    defect = resolver.schema.blocking(resolver.target.name, operation)
    return [f"the schema's defect: {defect.message}"] if defect is not None else []


def _draws(
    sampler: _ArgumentSampler, samples: int, statement: exp.Expression, clock: datetime | None
) -> Iterator[dict[str, Any]]:
    """The arguments of each run. A statement that reads 'now' (a booking made today) is also tried with the same
    arguments' dates moved past 'now', their order kept: the data's dates lie in its past, and a new booking
    starts after it. An UPDATE is first tried with values its row does not hold already (``new_values``): drawn
    from one row, its key and its new values would be that row's own, and setting them changes nothing."""
    now = _reads_now(statement)
    for attempt in range(max(samples, 1)):
        arguments = sampler.arguments(attempt)
        if isinstance(statement, exp.Update) and (other := sampler.new_values(statement, arguments, attempt)):
            yield other
        yield arguments
        if now and (later := _after(arguments, clock or datetime.now())) is not None:
            yield later


def _reads_now(statement: exp.Expression) -> bool:
    """Whether the statement reads the current time: ``'now'`` in a date function, or CURRENT_DATE and the like."""
    if any(isinstance(node, exp.CurrentDate | exp.CurrentTimestamp | exp.CurrentTime) for node in statement.walk()):
        return True
    return any(literal.is_string and literal.this.casefold() == "now" for literal in statement.find_all(exp.Literal))


def _after(arguments: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """``arguments`` with every ISO date in them moved by the same whole days, so that the earliest falls the day
    after ``now``; None when none lies on or before it."""
    dates = {name: value for name, value in arguments.items() if isinstance(value, str) and _ISO_DATE.match(value)}
    if not dates:
        return None
    earliest = min(datetime.fromisoformat(value[:10]) for value in dates.values())
    days = (now.replace(hour=0, minute=0, second=0, microsecond=0) - earliest).days + 1
    if days <= 0:
        return None
    shift = timedelta(days=days)
    moved = {
        name: (datetime.fromisoformat(value[:10]) + shift).date().isoformat() + value[10:]
        for name, value in dates.items()
    }
    return arguments | moved


def _changed_rows(fork: SQLEnvironment, root: SQLEnvironment) -> int:
    """Rows an UPDATE really changed: SQLite counts every row it matched, also one set to the values it had."""
    diff = fork.diff(root)
    return sum(len(table.inserted) + len(table.updated) + len(table.deleted) for table in diff.tables.values())


def _rows(result: ToolResult) -> int:
    """Rows a read returned or a write changed."""
    content = result.content
    if result.error is not None:
        return 0
    if isinstance(content, list):
        return len(content)
    if isinstance(content, dict) and "rows_affected" in content:
        return int(content["rows_affected"])
    return 1


# Where each parameter's values come from

_Role = Literal["data", "new"]


@dataclass(frozen=True)
class _Binding:
    """The column a parameter meets: ``data`` (compared or set: values of real rows), ``new`` (a column of the row
    an INSERT adds)."""

    table: Table
    column: str
    role: _Role = "data"


@dataclass(frozen=True)
class _Comparison:
    """A parameter compared with a column: the comparison, the column, and whether the parameter is searched for
    inside a text (``LIKE '%' || :q || '%'``)."""

    node: exp.Expr
    column: exp.Column
    inside_text: bool


def _comparison(placeholder: exp.Placeholder) -> _Comparison | None:
    node: exp.Expression = placeholder
    concatenated = False
    while isinstance(node.parent, _WRAPPERS):
        concatenated = concatenated or isinstance(node.parent, exp.DPipe)
        node = node.parent
    parent = node.parent
    other: exp.Expr | None = None
    if isinstance(parent, _COMPARISONS):
        other = parent.left if parent.right is node else parent.right
    elif isinstance(parent, (exp.In, exp.Between)) and parent.this is not node:
        other = parent.this
    while isinstance(other, _WRAPPERS) and not isinstance(other, exp.DPipe):
        other = other.this
    if parent is None or not isinstance(other, exp.Column):
        return None
    return _Comparison(parent, other, concatenated and isinstance(parent, _PATTERNS))


def _bindings(tool: SQLTool, resolver: Resolver) -> tuple[dict[str, _Binding], set[str]]:
    """Parameters matched to the column they are compared with, inserted into or set, else one of the same name;
    and the parameters searched for inside a text."""
    bindings: dict[str, _Binding] = {}
    inside_text: set[str] = set()
    for placeholder in resolver.statement.find_all(exp.Placeholder, bfs=False):  # in the order the SQL reads
        if not placeholder.name or placeholder.name in bindings:
            continue
        comparison = _comparison(placeholder)
        if comparison is not None:
            if comparison.inside_text:
                inside_text.add(placeholder.name)
            if (found := resolver.column_of(comparison.column)) is not None:
                bindings[placeholder.name] = _Binding(*found)
        elif (inserted := _inserted_column(placeholder, resolver)) is not None:
            bindings[placeholder.name] = inserted
    for name in tool.parameters.get("properties", {}):
        if name not in bindings and (match := _column_named(name, resolver.used_tables)) is not None:
            bindings[name] = match
    return bindings, inside_text


def _inserted_column(placeholder: exp.Placeholder, resolver: Resolver) -> _Binding | None:
    """The column of an INSERT's VALUES row that a parameter fills (through ``COALESCE`` and the like)."""
    node: exp.Expression = placeholder
    while isinstance(node.parent, _WRAPPERS):
        node = node.parent
    row = node.parent
    statement, table = resolver.statement, resolver.target
    if not (isinstance(row, exp.Tuple) and isinstance(row.parent, exp.Values)):
        return None
    if not (isinstance(statement, exp.Insert) and table is not None):
        return None
    if isinstance(statement.this, exp.Schema):
        names = [spelled(table, identifier.name) for identifier in statement.this.expressions]
    else:
        names = [column.name for column in table.columns if not column.generated]
    position = next(index for index, value in enumerate(row.expressions) if value is node)
    return _Binding(table, names[position], "new") if position < len(names) else None


def _column_named(parameter: str, tables: Sequence[Table]) -> _Binding | None:
    """A column whose name matches the parameter's, ignoring case and underscores (``album_id`` ~ ``AlbumId``)."""
    wanted = _loose(parameter)
    for table in tables:
        for column in table.columns:
            if _loose(column.name) == wanted:
                return _Binding(table, column.name)
    return None


def _loose(name: str) -> str:
    return re.sub(r"[\W_]+", "", name).casefold()


# Conditions on the rows a write touches


def _target_condition(statement: exp.Expression, table: Table, schema: DatabaseSchema, alias: str) -> str:
    """What the rows a write changes must meet for the change to keep the foreign keys (rows named ``alias``)."""
    if not schema.foreign_keys_enforced:
        return ""
    if isinstance(statement, exp.Delete):
        return _unreferenced(table, schema, alias)
    if isinstance(statement, exp.Update):
        return _references_hold(table, schema, alias)
    return ""


def _unreferenced(table: Table, schema: DatabaseSchema, alias: str) -> str:
    """A condition on ``alias`` (a row of ``table``) that no foreign key points to it: such a row can be deleted."""
    conditions = []
    for child in schema.tables:
        for fk in child.foreign_keys:
            if fk.table == table.name and len(fk.columns) == len(fk.ref_columns):
                match = " AND ".join(
                    f'"c".{quote_identifier(column)} = {alias}.{quote_identifier(ref)}'
                    for column, ref in zip(fk.columns, fk.ref_columns, strict=True)
                )
                conditions.append(f'NOT EXISTS (SELECT 1 FROM {quote_identifier(child.name)} AS "c" WHERE {match})')
    return " AND ".join(conditions)


def _references_hold(table: Table, schema: DatabaseSchema, alias: str) -> str:
    """A condition on ``alias`` that each of its foreign keys is NULL or finds its parent row: an UPDATE that sets
    such a row's columns to their own values breaks no constraint (one that points nowhere would)."""
    conditions = []
    for fk in table.foreign_keys:
        if fk.table.casefold() not in {t.name.casefold() for t in schema.tables}:
            continue
        if len(fk.columns) != len(fk.ref_columns):
            continue
        unset = " OR ".join(f"{alias}.{quote_identifier(column)} IS NULL" for column in fk.columns)
        match = " AND ".join(
            f'"p".{quote_identifier(ref)} = {alias}.{quote_identifier(column)}'
            for column, ref in zip(fk.columns, fk.ref_columns, strict=True)
        )
        conditions.append(f'({unset} OR EXISTS (SELECT 1 FROM {quote_identifier(fk.table)} AS "p" WHERE {match}))')
    return " AND ".join(conditions)


# The sampler


_OMIT = object()


class _ArgumentSampler:
    """Argument sets for the trials, one per attempt (see the module's docstring for where values come from)."""

    def __init__(self, tool: SQLTool, resolver: Resolver, reader: SQLEnvironment, samples: int) -> None:
        self.properties: dict[str, Any] = tool.parameters.get("properties", {})
        self.required = set(tool.parameters.get("required", []))
        self.bindings, self.inside_text = _bindings(tool, resolver)
        self.rng = random.Random(f"{tool.name}\0{tool.sql}")
        self.reader = reader
        self.schema = resolver.schema
        self.samples = max(samples, 1)
        self.keys_taken = ""
        """Set when no new row could get an unused key: what is taken."""
        self.blocked = ""
        """Set when the data offers no row to change: why."""
        self.unmatched = ""
        """Set when the statement's own conditions match no row whatever the arguments: why."""
        self.values: dict[str, list[Any]] = {}
        self.witnesses: list[dict[str, Any]] = []
        statement = resolver.statement
        self._data_values(statement, resolver.target)
        if isinstance(statement, exp.Insert) and resolver.target is not None:
            self._new_row_values(resolver.target)
        self.witnesses, self.unmatched = _witnesses(
            resolver, reader, self.arguments(0), self.samples, self.inside_text, self.bindings
        )

    def arguments(self, attempt: int) -> dict[str, Any]:
        witness = self.witnesses[attempt] if attempt < len(self.witnesses) else {}
        arguments: dict[str, Any] = {}
        for name, schema in self.properties.items():
            value = self._value(name, schema if isinstance(schema, dict) else {}, attempt, witness)
            if value is not _OMIT:
                arguments[name] = value
        return arguments

    def _value(self, name: str, schema: dict[str, Any], attempt: int, witness: dict[str, Any]) -> Any:
        candidate: Any = _OMIT
        if name in witness:
            candidate = witness[name]
        elif self.values.get(name):
            candidate = self.values[name][attempt % len(self.values[name])]
        if name in self.inside_text and isinstance(candidate, str):
            candidate = candidate.strip()[:_EXCERPT_CHARS].strip() or candidate
        if candidate is None and name not in self.required:
            return _OMIT
        if candidate is not _OMIT:
            if (fitted := _fit(candidate, schema)) is not _OMIT:
                return fitted
            if name not in self.required:
                return _OMIT  # the data holds what the schema does not allow: a made-up value would match nothing
        elif attempt == 0 and name not in self.required:
            return _OMIT  # the first run leaves what the data cannot fill to the tool's defaults; later ones vary it
        try:
            return sample_json(schema, self.rng)
        except SchemaSamplingError:
            return _OMIT  # the trial then reports the missing argument

    def new_values(self, statement: exp.Update, arguments: dict[str, Any], attempt: int) -> dict[str, Any] | None:
        """``arguments`` with other values for the parameters an UPDATE sets: taken together from another drawn row
        (so that checks across them hold), else one by one from the values the data holds; a column under a UNIQUE
        key gets a fresh value. None when nothing differs from ``arguments``."""
        assigned = sorted(
            {
                placeholder.name
                for assignment in statement.expressions
                if isinstance(assignment, exp.EQ)
                for placeholder in assignment.right.find_all(exp.Placeholder)
            }
            & self.properties.keys()
        )
        drawn = max((len(self.values.get(name, [])) for name in assigned), default=0)
        for offset in range(1, drawn):
            changed = dict(arguments)
            for name in assigned:
                values = self._fresh_if_unique(name) or self.values.get(name, [])
                if not values or self._keeps(name):
                    continue
                value = values[(attempt + offset) % len(values)]
                if value is None and name not in self.required:
                    changed.pop(name, None)  # that row has none: the statement keeps what is there
                elif (fitted := _fit(value, self._schema(name))) is not _OMIT:
                    changed[name] = fitted
            if any(name in changed and changed[name] != arguments.get(name) for name in assigned):
                return changed  # some column gets a value it may not have: a run that can change the row
        changed = dict(arguments)
        for name in assigned & arguments.keys():
            if self._referenced(name):
                continue
            others = self._fresh_if_unique(name) or self._other_values(name, arguments[name])
            fitted = [value for other in others if (value := _fit(other, self._schema(name))) is not _OMIT]
            if fitted:
                changed[name] = fitted[attempt % len(fitted)]
        return changed if changed != arguments else None

    def _keeps(self, name: str) -> bool:
        """Whether a variant keeps the parameter's drawn value: another row's part of a key of several columns
        would repeat that row's key, and another row's reference may point nowhere (real data is not always
        consistent)."""
        binding = self.bindings.get(name)
        if binding is None:
            return False
        table, column = binding.table, binding.column
        shared_key = any(len(key) > 1 and column in key for key in table.unique_keys)
        return shared_key or self._referenced(name) or any(column in fk.columns for fk in table.foreign_keys)

    def _referenced(self, name: str) -> bool:
        """Whether another table's foreign key points at the parameter's column: a new value would strand its
        rows."""
        binding = self.bindings.get(name)
        if binding is None:
            return False
        parent = binding.table.name.casefold()
        return any(
            fk.table.casefold() == parent and binding.column in fk.ref_columns
            for table in self.schema.tables
            for fk in table.foreign_keys
        )

    def _fresh_if_unique(self, name: str) -> list[Any]:
        binding = self.bindings.get(name)
        if binding is None or (binding.column,) not in binding.table.unique_keys:
            return []
        return self._fresh(binding.table, binding.column)

    def _other_values(self, name: str, current: Any) -> list[Any]:
        """Values of the parameter's column other than ``current``: its listed few values, else some the data
        holds (for a reference, keys of its parent), else fresh ones."""
        binding = self.bindings.get(name)
        if binding is None:
            return []
        listed = [value for value, _ in binding.table.column(binding.column).values if value != current]
        if listed:
            return listed
        source, column = binding.table.name, binding.column
        reference = next((fk for fk in binding.table.foreign_keys if fk.columns == (column,)), None)
        if reference is not None:  # another row the reference may point at: a key of the parent
            source, column = reference.table, reference.ref_columns[0]
        quoted = quote_identifier(column)
        result = self.reader.query(
            f"SELECT DISTINCT {quoted} AS value FROM {quote_identifier(source)}"
            f" WHERE {quoted} IS NOT NULL AND {quoted} IS NOT :current LIMIT {self.samples}",
            {"current": current},
        )
        found = [row["value"] for row in result.content] if result.ok else []
        return found or self._fresh(binding.table, binding.column)

    def _schema(self, name: str) -> dict[str, Any]:
        schema = self.properties.get(name)
        return schema if isinstance(schema, dict) else {}

    # Values of existing rows

    def _data_values(self, statement: exp.Expression, target: Table | None) -> None:
        by_table: dict[str, list[tuple[str, _Binding]]] = {}
        for name, binding in self.bindings.items():
            if binding.role == "data":
                by_table.setdefault(binding.table.name, []).append((name, binding))
        for pairs in by_table.values():
            table = pairs[0][1].table
            condition = _target_condition(statement, table, self.schema, '"t"') if table == target else ""
            columns = list(dict.fromkeys(binding.column for _, binding in pairs))
            rows = self._rows(table, columns, condition)
            if not rows and table == target and isinstance(statement, exp.Delete | exp.Update) and table.row_count:
                verb = "delete" if isinstance(statement, exp.Delete) else "change"
                why = "another row refers to each" if isinstance(statement, exp.Delete) else "each breaks a foreign key"
                self.blocked = f"no row of {quote_identifier(table.name)} to {verb}: {why}"
            for name, binding in pairs:
                self.values[name] = [row[columns.index(binding.column)] for row in rows]
                if self.blocked and binding.column in {column.name for column in table.key_columns}:
                    self.values[name] = self._fresh(table, binding.column)  # a key no row has: nothing changes

    def _rows(self, table: Table, columns: Sequence[str], condition: str = "") -> list[tuple[Any, ...]]:
        """Distinct values of ``columns`` in up to ``samples`` rows, those with the fewest NULLs first."""
        selected = ", ".join(f'"t".{quote_identifier(column)}' for column in columns)
        nulls = " + ".join(f'("t".{quote_identifier(column)} IS NULL)' for column in columns)
        where = f" WHERE {condition}" if condition else ""
        sql = (
            f"SELECT DISTINCT {selected}, {nulls} FROM"
            f' (SELECT * FROM {quote_identifier(table.name)} AS "t"{where} LIMIT {_SCANNED_ROWS}) AS "t"'
            f" ORDER BY {len(columns) + 1} LIMIT {self.samples}"
        )
        result = self.reader.query(sql)
        return [tuple(row.values())[: len(columns)] for row in result.content] if result.ok else []

    # A new row

    def _new_row_values(self, table: Table) -> None:
        """Values for the row an INSERT adds, one row per attempt; see the module's docstring."""
        inserted = {name: binding.column for name, binding in self.bindings.items() if binding.role == "new"}
        writable = [column.name for column in table.columns if not column.generated]
        copies = self._rows(table, writable) or [tuple(None for _ in writable)]
        rows = [dict(zip(writable, copies[i % len(copies)], strict=True)) for i in range(self.samples)]
        from_parents: set[str] = set()
        for fk in table.foreign_keys:
            parent = self._parent(fk.table, fk.ref_columns)
            if parent is None or len(fk.columns) != len(fk.ref_columns):
                continue
            from_parents.update(fk.columns)
            parents = self._rows(parent, fk.ref_columns, _not_null(fk.ref_columns))
            for i, row in enumerate(rows):
                values = parents[i % len(parents)] if parents else (None,) * len(fk.columns)
                row.update(zip(fk.columns, values, strict=True))
        fresh: set[str] = set()
        for key in (table.primary_key, *table.unique_keys):
            if not key or fresh & set(key):
                continue
            free = [column for column in key if column not in from_parents]
            if free:
                fresh.add(free[-1])
                for row, value in zip(rows, self._fresh(table, free[-1]), strict=False):
                    row[free[-1]] = value
            else:
                self._unused_combination(table, key, rows)
        for name, column in inserted.items():
            self.values[name] = [row.get(column) for row in rows]

    def _parent(self, name: str, columns: Sequence[str]) -> Table | None:
        try:
            parent = self.schema.table(name)
            for column in columns:
                parent.column(column)
        except KeyError:
            return None
        return parent

    def _fresh(self, table: Table, column: str) -> list[Any]:
        """Values no row of ``table`` has in ``column``, one per attempt: past the largest number, else the next
        texts of the largest text's shape (``B-0042`` -> ``B-0043``); none for an empty text column."""
        quoted, name = quote_identifier(column), quote_identifier(table.name)
        result = self.reader.query(
            f"SELECT typeof({quoted}) AS kind, max({quoted}) AS top FROM {name}"
            f" WHERE {quoted} IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        )
        kind, top = ("", None)
        if result.ok and result.content:
            kind, top = result.content[0]["kind"], result.content[0]["top"]
        if kind in ("integer", "real") or (top is None and table.column(column).affinity in ("INTEGER", "NUMERIC")):
            numbers = self.reader.query(
                f"SELECT max({quoted}) AS top FROM {name} WHERE typeof({quoted}) IN ('integer', 'real')"
            )
            largest = numbers.content[0]["top"] if numbers.ok and numbers.content else None
            start = int(largest) + 1 if isinstance(largest, int | float) else 1
            return [start + i for i in range(self.samples)]
        if not isinstance(top, str):
            return []
        values: list[Any] = []
        candidate = top
        for _ in range(_FRESH_TRIES):
            candidate = _next_text(candidate)
            taken = self.reader.query(f"SELECT 1 AS taken FROM {name} WHERE {quoted} = :v LIMIT 1", {"v": candidate})
            if taken.ok and not taken.content:
                values.append(candidate)
                if len(values) == self.samples:
                    break
        return values

    def _unused_combination(self, table: Table, key: Sequence[str], rows: list[dict[str, Any]]) -> None:
        """A key made only of foreign-key columns: combinations of parent values that no row has yet."""
        sources, selected, pairs = [], [], []
        for index, fk in enumerate(fk for fk in table.foreign_keys if set(fk.columns) & set(key)):
            parent = self._parent(fk.table, fk.ref_columns)
            if parent is None:
                return
            alias = quote_identifier(f"p{index}")
            refs = ", ".join(quote_identifier(ref) for ref in fk.ref_columns)
            sources.append(
                f"(SELECT DISTINCT {refs} FROM {quote_identifier(parent.name)}"
                f" WHERE {_not_null(fk.ref_columns, '')} LIMIT {_PARENT_ROWS}) AS {alias}"
            )
            for column, ref in zip(fk.columns, fk.ref_columns, strict=True):
                selected.append((column, f"{alias}.{quote_identifier(ref)}"))
                if column in key:
                    pairs.append(f'"t".{quote_identifier(column)} = {alias}.{quote_identifier(ref)}')
        if not sources:
            return
        sql = (
            f"SELECT {', '.join(expression for _, expression in selected)} FROM {', '.join(sources)}"
            f' WHERE NOT EXISTS (SELECT 1 FROM {quote_identifier(table.name)} AS "t" WHERE {" AND ".join(pairs)})'
            f" LIMIT {self.samples}"
        )
        result = self.reader.query(sql)
        combinations = [tuple(row.values()) for row in result.content] if result.ok else []
        if not combinations:
            what = key[0] if len(key) == 1 else f"combination of ({', '.join(key)})"
            self.keys_taken = f"every {what} that the parent rows offer is already in {quote_identifier(table.name)}"
            return
        for i, row in enumerate(rows):
            row.update(zip((column for column, _ in selected), combinations[i % len(combinations)], strict=True))


def _not_null(columns: Sequence[str], alias: str = '"t".') -> str:
    return " AND ".join(f"{alias}{quote_identifier(column)} IS NOT NULL" for column in columns)


def _next_text(text: str) -> str:
    """The next text of the same shape: the last run of letters or digits counts up, carrying leftwards
    (``B-0042`` -> ``B-0043``, ``az`` -> ``ba``, ``2023-12`` -> ``2023-13``); other characters stay."""
    chars = list(text)
    runs = [match.span() for match in re.finditer(r"[A-Za-z0-9]+", text)]
    if not runs:
        return text + "2"
    start, end = runs[-1]
    for index in range(end - 1, start - 1, -1):
        char = chars[index]
        if char in "9zZ":
            chars[index] = {"9": "0", "z": "a", "Z": "A"}[char]
            continue
        chars[index] = chr(ord(char) + 1)
        return "".join(chars)
    first = chars[start]
    chars.insert(start, "1" if first.isdigit() else ("a" if first.islower() else "A"))
    return "".join(chars)


def _fit(value: Any, schema: dict[str, Any]) -> Any:
    """The value, converted to the parameter's type where the data holds another (``'7'`` for an integer, ``7`` for
    a string); ``_OMIT`` when no conversion fits."""
    candidates = [value]
    if isinstance(value, str):
        for convert in (int, float):
            with contextlib.suppress(ValueError):
                candidates.append(convert(value.strip()))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        candidates.append(str(value))
        if isinstance(value, float) and value.is_integer():
            candidates.append(int(value))
    return next((candidate for candidate in candidates if not schema_violations(candidate, schema)), _OMIT)


# Witness rows


def _witnesses(
    resolver: Resolver,
    reader: SQLEnvironment,
    arguments: dict[str, Any],
    samples: int,
    inside_text: set[str],
    bindings: dict[str, _Binding],
) -> tuple[list[dict[str, Any]], str]:
    """Argument values under which a statement finds rows, one set per attempt, and why there are none if so.

    A SELECT is inverted whole (``_inverted``). A write's rows are found by inverting ``SELECT * FROM target WHERE
    ...`` (its own WHERE, and rows whose change keeps the foreign keys; the parameters set from the target's own
    columns take that row's values, so that an UPDATE writes a row's values back to it) and each query inside it
    (an ``EXISTS`` that guards an INSERT, a SET's subquery); a parameter takes its value from the first of these
    that has one.
    """
    statement = resolver.statement
    if isinstance(statement, exp.Select):
        return _inverted(statement, reader, arguments, samples, inside_text)
    queries: list[tuple[exp.Select, dict[str, exp.Column]]] = []
    where = statement.args.get("where")
    if isinstance(statement, exp.Update | exp.Delete) and where is not None and not statement.args.get("from_"):
        target = exp.select("*").from_(statement.this.copy()).where(where.this.copy())
        name = statement.this.alias_or_name
        if resolver.target and (
            condition := _target_condition(statement, resolver.target, resolver.schema, quote_identifier(name))
        ):
            target = target.where(condition, dialect="sqlite")
        carried = {
            parameter: exp.column(binding.column, table=name, quoted=True)
            for parameter, binding in bindings.items()
            if binding.table == resolver.target and binding.role == "data"
        }
        queries.append((target, carried))
    queries.extend((select.copy(), {}) for select in statement.find_all(exp.Select))
    found = [_inverted(query, reader, arguments, samples, inside_text, carried) for query, carried in queries]
    witnesses = [
        {name: value for rows, _ in reversed(found) if attempt < len(rows) for name, value in rows[attempt].items()}
        for attempt in range(max((len(rows) for rows, _ in found), default=0))
    ]
    return witnesses, (found[0][1] if found and isinstance(statement, exp.Update | exp.Delete) else "")


def _inverted(
    query: exp.Select,
    reader: SQLEnvironment,
    arguments: dict[str, Any],
    samples: int,
    inside_text: set[str],
    carried: dict[str, exp.Column] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Argument values under which a SELECT returns rows: the query with each of its own comparisons to a
    parameter taken out, selecting the compared columns instead (every other parameter bound to ``arguments``);
    and, when there are none, why. ``carried`` parameters take the value of their column in the same row."""
    inverted = query.copy()
    compared: dict[str, list[exp.Expression]] = {}
    taken_out: list[exp.Expression] = []
    for placeholder in list(inverted.find_all(exp.Placeholder, bfs=False)):
        comparison = _comparison(placeholder) if placeholder.name else None
        if comparison is None or not isinstance(comparison.node, _MATCHED_BY_ITSELF):
            continue
        if comparison.node.find_ancestor(exp.Select) is not inverted:
            continue  # a subquery's comparison: its columns are not the outer query's to select
        column: exp.Expression = comparison.column.copy()
        if comparison.inside_text:  # an empty text is no piece to look for
            column = exp.Nullif(this=column, expression=exp.Literal.string(""))
        compared.setdefault(placeholder.name, []).append(column)
        taken_out.append(comparison.node)
    if not compared:
        return [], ""
    for node in taken_out:
        if node.parent is not None:
            node.replace(exp.true())
    extra = {name: column for name, column in (carried or {}).items() if name not in compared}
    selected: list[exp.Expression] = [
        columns[0] if len(columns) == 1 else exp.Coalesce(this=columns[0], expressions=columns[1:])
        for columns in compared.values()
    ]
    selected += list(extra.values())
    witnesses = [exp.alias_(column, f"w{i}") for i, column in enumerate(selected)]
    inverted.set("expressions", [*inverted.expressions, *witnesses])
    result = reader.query(inverted.limit(samples * 4).sql(dialect="sqlite"), arguments)
    if not result.ok:
        return [], ""
    names = ", ".join(f":{name}" for name in compared)
    if not result.content:
        return [], f"the query finds no row whatever {names} may be"
    found = []
    for row in result.content:
        values = dict(zip([*compared, *extra], list(row.values())[-len(selected) :], strict=True))
        if all(values[name] is not None for name in compared):
            found.append(
                {
                    name: value[:_EXCERPT_CHARS] if name in inside_text and isinstance(value, str) else value
                    for name, value in values.items()
                }
            )
    return found[:samples], "" if found else f"the rows the query finds have no value for {names} to match"


# Words


def _summary(result: ToolResult) -> str:
    if result.error is not None:
        return f"{result.error.kind}: {result.error.message}"
    content = result.content
    truncated = " (truncated)" if result.truncated else ""
    if isinstance(content, list):
        return f"{len(content)} row{'' if len(content) == 1 else 's'}{truncated}"
    if isinstance(content, dict) and "rows_affected" in content:
        new_row = f", last_row_id {content['last_row_id']}" if "last_row_id" in content else ""
        return f"rows_affected {content['rows_affected']}{new_row}"
    return "1 row"


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
