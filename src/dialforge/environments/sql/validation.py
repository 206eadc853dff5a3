"""Is a SQL tool fit to hand to an agent? Static checks, then a trial run on a throwaway fork.

Every tool goes through here, whoever wrote it (the scaffold, a person, a model), and every failure
comes back as a reason its author can act on: what is wrong, where, and the closest valid spelling.
The checks, in order: the name, the description and the parameter schema; the SQL parses as exactly
one allowed statement whose kind matches the declared one; every ``:name`` is declared and every
declared parameter is used; every table and column resolves against the schema (CTEs and aliases
included, case-insensitively, as SQLite resolves them). Only a tool that passes all of them is run:
on a fork of the database, with arguments taken from the data where a parameter meets a column, so
that the trial exercises real rows; writes land on the fork, which is then thrown away.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from dialforge.environments.base import ToolResult
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment, parse_statement
from dialforge.environments.sql.schema import ROWID_NAMES, DatabaseSchema, Table, quote_identifier, spelled
from dialforge.environments.sql.tool import SQLTool
from dialforge.json_schema.checks import schema_violations
from dialforge.json_schema.sampler import SchemaSamplingError, sample_json

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""snake_case, at most 64 characters: stricter than the OpenAI rule, so names read alike everywhere."""

_READS = (exp.Select, exp.Union)
_LISTED_TABLES = 20
_FINAL_ERRORS = frozenset({"refused", "timeout"})
"""Trial errors that other arguments cannot cure: the statement itself is at fault."""
_WRAPPERS = (exp.Paren, exp.DPipe, exp.Lower, exp.Upper, exp.Cast, exp.Trim, exp.Coalesce)
"""Expressions that pass a value through: ``lower(:q)``, ``'%' || :q || '%'``, ``COALESCE(:x, "x")``."""
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike, exp.Glob, exp.NullSafeEQ)


class ToolVerdict(BaseModel):
    """Whether a tool may be used, and if not, why; ``trial`` records the run that decided it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    valid: bool
    reasons: list[str]
    trial: dict[str, Any] | None = None


def validate_tools(
    tools: Iterable[SQLTool], database: SQLDatabase, *, samples: int = 3, reserved_names: Collection[str] = ()
) -> list[ToolVerdict]:
    """One verdict per tool, in order; a name already used (earlier in the list, or in ``reserved_names``,
    the tools a caller has accepted before) makes the later tool invalid."""
    taken = set(reserved_names)
    verdicts = []
    for tool in tools:
        verdict = validate_tool(tool, database, samples=samples)
        if tool.name in taken:
            verdict = verdict.model_copy(
                update={
                    "valid": False,
                    "reasons": [
                        f"the name {tool.name!r} is already taken by another tool; names must be unique",
                        *verdict.reasons,
                    ],
                }
            )
        taken.add(tool.name)
        verdicts.append(verdict)
    return verdicts


def validate_tool(tool: SQLTool, database: SQLDatabase, *, samples: int = 3) -> ToolVerdict:
    """Every check on one tool; the trial runs only when the static checks pass (else it repeats their errors)."""
    reasons = [*_spec_problems(tool)]
    try:
        statement = parse_statement(tool.sql)
    except ValueError as exc:
        return ToolVerdict(name=tool.name, valid=False, reasons=[*reasons, str(exc)])
    reasons.extend(_kind_problems(tool, statement))
    reasons.extend(_parameter_problems(tool, statement))
    resolver = _Resolver(statement, database.schema)
    reasons.extend(resolver.problems)
    if reasons:
        return ToolVerdict(name=tool.name, valid=False, reasons=list(dict.fromkeys(reasons)))
    problems, trial = _trial(tool, database, resolver, samples)
    return ToolVerdict(name=tool.name, valid=not problems, reasons=problems, trial=trial)


# Static checks


def _spec_problems(tool: SQLTool) -> Iterator[str]:
    if not TOOL_NAME.match(tool.name):
        yield (
            f"the name {tool.name!r} is not snake_case: use 1-64 lower-case letters, digits and '_', "
            "starting with a letter (e.g. get_invoice_lines_for_invoice)"
        )
    if not tool.description.strip():
        yield "the description is empty: say what the tool does and what it returns"
    try:
        tool.to_spec()
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"][:1] == ("name",):  # the snake_case rule above already covers the name
                continue
            if error["type"] == "value_error":  # ToolSpec's own messages name the field already
                yield error["msg"].removeprefix("Value error, ")
            else:
                yield f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


def _kind_problems(tool: SQLTool, statement: exp.Expression) -> Iterator[str]:
    what = statement.key.upper()
    if isinstance(statement, _READS) and tool.kind != "read":
        yield f"the statement ({what}) only reads rows: declare kind 'read', not {tool.kind!r}"
    elif not isinstance(statement, _READS) and tool.kind != "write":
        yield f"the statement ({what}) changes rows: declare kind 'write', not {tool.kind!r}"


def _parameter_problems(tool: SQLTool, statement: exp.Expression) -> Iterator[str]:
    """Bind parameters against ``parameters.properties``: only ``:name``, each declared, each used."""
    declared = tool.parameters.get("properties")
    declared = list(declared) if isinstance(declared, dict) else []
    used: list[str] = []
    for node in statement.find_all(exp.Placeholder, exp.Parameter, exp.Column):
        if isinstance(node, exp.Placeholder) and not node.this:
            yield "the SQL uses a positional '?' parameter: name it (:customer_id) and declare it in parameters"
        elif isinstance(node, exp.Placeholder):
            used.append(node.name)
        elif isinstance(node, exp.Parameter):
            yield f"the SQL uses @{node.name}: only :name parameters are supported, write :{node.name}"
        elif _dollar_parameter(node):
            yield f"the SQL uses {node.name}: only :name parameters are supported, write :{node.name[1:]}"
    for name in dict.fromkeys(used):
        if name not in declared:
            yield f"the SQL uses :{name} but parameters.properties does not declare it{_closest(name, declared)}"
    for name in declared:
        if name not in used:
            yield f"parameter {name!r} is declared but the SQL never uses :{name}: use it or remove it"


def _dollar_parameter(node: exp.Expression) -> bool:
    """SQLite's ``$name`` parameters parse as columns named ``$name``."""
    return isinstance(node, exp.Column) and not node.table and node.name.startswith("$")


def _closest(name: str, options: Iterable[str]) -> str:
    """``; did you mean "X"?`` with the nearest spellings, compared case-insensitively, or nothing."""
    by_folded: dict[str, str] = {}
    for option in options:
        by_folded.setdefault(option.casefold(), option)
    matches = difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.6)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(quote_identifier(by_folded[match]) for match in matches) + "?"


@dataclass(frozen=True)
class _Source:
    """A table or alias a column may come from: a schema table, a CTE or subquery, or something unknown."""

    label: str
    table: Table | None = None
    names: frozenset[str] | None = None
    """Column names it offers (case-folded); None when it cannot be told (a star, an unknown table)."""
    spelled: tuple[str, ...] = ()

    @classmethod
    def of_table(cls, label: str, table: Table) -> _Source:
        names = [column.name for column in table.columns]
        rowid = () if table.without_rowid else ROWID_NAMES
        return cls(label, table, frozenset(name.casefold() for name in (*names, *rowid)), tuple(names))


class _Resolver:
    """Where each table and column of a statement comes from, and what does not resolve.

    Column scopes come from sqlglot's scope analysis (CTEs, derived tables, correlated subqueries);
    the target of an INSERT, UPDATE or DELETE (with ``excluded`` for upserts) is the outermost scope.
    """

    def __init__(self, statement: exp.Expression, schema: DatabaseSchema) -> None:
        self.statement = statement
        self.schema = schema
        self.problems: list[str] = []
        self._tables = {table.name.casefold(): table for table in schema.tables}
        self._scope_of: dict[int, Scope] = {}
        self._scope_sources: dict[int, dict[str, _Source]] = {}
        for scope in traverse_scope(statement):
            for column in scope.columns:
                self._scope_of.setdefault(id(column), scope)
        ctes = {cte.alias_or_name.casefold() for cte in statement.find_all(exp.CTE)}
        self.used_tables: list[Table] = []
        for node in statement.find_all(exp.Table):
            self._check_table(node, ctes)
        self._outer, self.target = self._dml_sources(statement)
        located: list[_Source | str | None] = []
        if isinstance(statement, exp.Insert) and isinstance(statement.this, exp.Schema) and self.target:
            target = _Source.of_table(self.target.name, self.target)
            located.extend(self._check_name(identifier.name, target) for identifier in statement.this.expressions)
        located.extend(
            self._locate(column)
            for column in statement.find_all(exp.Column)
            if not _dollar_parameter(column) and self._checked(column, statement)
        )
        for problem in located:
            if isinstance(problem, str) and problem not in self.problems:
                self.problems.append(problem)

    def _checked(self, column: exp.Column, statement: exp.Expression) -> bool:
        """Columns in a scope, and a DML statement's own (SET, WHERE, RETURNING); ORDER BY aliases are not."""
        if id(column) in self._scope_of:
            return True
        return isinstance(statement, (exp.Insert, exp.Update, exp.Delete)) and column.find_ancestor(*_READS) is None

    def _check_table(self, node: exp.Table, ctes: set[str]) -> None:
        if not isinstance(node.this, exp.Identifier):
            return  # a table-valued function such as json_each(...)
        if node.db and node.db.casefold() != "main":
            self.problems.append(f"table {node.db}.{node.name}: only the tables of the database (main) can be used")
            return
        if not node.db and node.name.casefold() in ctes:
            return
        table = self._tables.get(node.name.casefold())
        if table is None:
            names = [t.name for t in self.schema.tables]
            hint = _closest(node.name, names) or f"; the tables are {', '.join(names[:_LISTED_TABLES])}" + (
                ", ..." if len(names) > _LISTED_TABLES else ""
            )
            problem = f"unknown table {quote_identifier(node.name)}{hint}"
            if problem not in self.problems:
                self.problems.append(problem)
        elif table not in self.used_tables:
            self.used_tables.append(table)

    def _dml_sources(self, statement: exp.Expression) -> tuple[dict[str, _Source], Table | None]:
        if not isinstance(statement, (exp.Insert, exp.Update, exp.Delete)):
            return {}, None
        target_node = statement.this.this if isinstance(statement.this, exp.Schema) else statement.this
        nodes = [target_node]
        if isinstance(statement, exp.Update) and statement.args.get("from_"):
            nodes.extend(n for n in statement.args["from_"].find_all(exp.Table) if n.find_ancestor(*_READS) is None)
        sources = {}
        for node in nodes:
            sources[node.alias_or_name.casefold()] = self._source(node.alias_or_name, node)
        target = self._tables.get(target_node.name.casefold()) if isinstance(target_node, exp.Table) else None
        if isinstance(statement, exp.Insert):
            sources["excluded"] = sources[target_node.alias_or_name.casefold()]
        return sources, target

    def _source(self, label: str, node: exp.Expression | Scope) -> _Source:
        if isinstance(node, Scope):
            query = node.expression
            alias = query.parent.args.get("alias") if isinstance(query.parent, (exp.CTE, exp.Subquery)) else None
            if alias is not None and alias.columns:  # WITH c(a, b) AS (...), (SELECT ...) AS d(a, b)
                names = [column.name for column in alias.columns]
            elif isinstance(query, _READS) and query.selects and not query.is_star:
                names = query.named_selects
            else:
                return _Source(label)
            return _Source(label, names=frozenset(n.casefold() for n in names), spelled=tuple(names))
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier) and node.db.casefold() in ("", "main"):
            table = self._tables.get(node.name.casefold())
            if table is not None:
                return _Source.of_table(label, table)
        return _Source(label)

    def _levels(self, scope: Scope | None) -> Iterator[tuple[dict[str, _Source], list[str], Scope | None]]:
        """The sources a column may see, innermost first: (sources by folded label, selected labels, scope)."""
        while scope is not None:
            if id(scope) not in self._scope_sources:
                self._scope_sources[id(scope)] = {
                    label.casefold(): self._source(label, node) for label, node in scope.sources.items()
                }
            yield self._scope_sources[id(scope)], [label.casefold() for label in scope.selected_sources], scope
            scope = scope.parent
        if self._outer:
            yield self._outer, list(self._outer), None

    def _locate(self, column: exp.Column) -> _Source | str | None:
        """The source a column comes from, a problem naming it, or None when it cannot be told."""
        name = column.name
        if isinstance(column.this, exp.Star):
            name = ""
        levels = list(self._levels(self._scope_of.get(id(column))))
        if column.table:
            for sources, _, _ in levels:
                source = sources.get(column.table.casefold())
                if source is not None:
                    return self._check_name(name, source) if name else source
            labels = sorted(
                {source.label for sources, _, _ in levels for key, source in sources.items() if key != "excluded"}
            )
            known = f" (the statement has {', '.join(labels)})" if labels else ""
            return f"{column.sql(dialect='sqlite')}: no table or alias is named {quote_identifier(column.table)}{known}"
        first: list[_Source] = []
        for sources, selected, scope in levels:
            candidates = [sources[label] for label in selected if label in sources]
            first = first or candidates
            for source in candidates:
                if source.names is None or name.casefold() in source.names:
                    return source
            if scope is not None and name.casefold() in _result_names(scope.expression):
                return None  # a result column, which ORDER BY, GROUP BY, HAVING (and in SQLite WHERE) may name
        if not first:
            return f"unknown column {quote_identifier(name)}: the statement reads no table that could have it"
        spelled = [n for source in first for n in source.spelled]
        tables = ", ".join(quote_identifier(source.table.name if source.table else source.label) for source in first)
        verb = "has" if len(first) == 1 else "have"
        return f"unknown column {quote_identifier(name)}: {tables} {verb} no such column{_closest(name, spelled)}"

    @staticmethod
    def _check_name(name: str, source: _Source) -> _Source | str:
        if source.names is None or name.casefold() in source.names:
            return source
        owner = quote_identifier(source.table.name if source.table else source.label)
        return f"unknown column {quote_identifier(name)}: {owner} has no such column{_closest(name, source.spelled)}"

    def table(self, name: str) -> Table | None:
        return self._tables.get(name.casefold())

    def column_of(self, column: exp.Column) -> tuple[Table, str] | None:
        """The schema table and column (as the table spells it) that a column reference reads."""
        source = self._locate(column)
        if not isinstance(source, _Source) or source.table is None:
            return None
        return source.table, spelled(source.table, column.name)


def _result_names(query: exp.Expr) -> set[str]:
    """Names a query's own clauses may use for its results: a SELECT's aliases, a UNION's columns."""
    if isinstance(query, exp.Union):
        return {name.casefold() for name in query.named_selects}
    if isinstance(query, exp.Select):
        return {select.alias.casefold() for select in query.selects if isinstance(select, exp.Alias)}
    return set()


# Trial execution

_ValueSource = Literal["data", "first", "fresh"]


@dataclass(frozen=True)
class _Binding:
    """Where a parameter's trial values come from.

    ``data``: the column's values, a different row per attempt. ``first``: the column's values on the
    first attempt, then values from the parameter's schema (an INSERT copying a row may hit a UNIQUE
    column). ``fresh``: a key no row has yet (an INSERT's primary key), one past the largest.
    """

    table: Table
    column: str
    source: _ValueSource = "data"


def _bindings(tool: SQLTool, resolver: _Resolver) -> dict[str, _Binding]:
    """Parameters matched to the column they are compared with, inserted into or set; else by name."""
    bindings: dict[str, _Binding] = {}
    for placeholder in resolver.statement.find_all(exp.Placeholder):
        if placeholder.name and placeholder.name not in bindings:
            binding = _compared_column(placeholder, resolver)
            if binding is not None:
                bindings[placeholder.name] = binding
    for name in tool.parameters.get("properties", {}):
        if name not in bindings and (match := _column_named(name, resolver.used_tables)) is not None:
            bindings[name] = match
    return bindings


def _compared_column(placeholder: exp.Placeholder, resolver: _Resolver) -> _Binding | None:
    node: exp.Expression = placeholder
    while isinstance(node.parent, _WRAPPERS):
        node = node.parent
    parent = node.parent
    other: exp.Expr | None = None
    if isinstance(parent, _COMPARISONS):
        other = parent.left if parent.right is node else parent.right
    elif isinstance(parent, (exp.In, exp.Between)) and parent.this is not node:
        other = parent.this
    elif isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Values):
        position = next(index for index, value in enumerate(parent.expressions) if value is node)
        return _inserted_column(position, resolver)
    while isinstance(other, _WRAPPERS) and not isinstance(other, exp.DPipe):
        other = other.this
    if not isinstance(other, exp.Column):
        return None
    found = resolver.column_of(other)
    return _Binding(*found) if found else None


def _inserted_column(position: int, resolver: _Resolver) -> _Binding | None:
    """An inserted foreign key takes its parent's values; a primary key a fresh one; others a row's values."""
    statement, table = resolver.statement, resolver.target
    if not (isinstance(statement, exp.Insert) and table is not None):
        return None
    if isinstance(statement.this, exp.Schema):
        names = [spelled(table, identifier.name) for identifier in statement.this.expressions]
    else:
        names = [column.name for column in table.columns if not column.generated]
    if position >= len(names):
        return None
    name = names[position]
    for fk in table.foreign_keys:
        if name in fk.columns and (parent := resolver.table(fk.table)) is not None:
            return _Binding(parent, spelled(parent, fk.ref_columns[fk.columns.index(name)]))
    return _Binding(table, name, "fresh" if name in table.primary_key else "first")


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


def _unreferenced(table: Table, schema: DatabaseSchema) -> str:
    """A condition on ``"t"`` (a row of ``table``) that no foreign key points to it: such a row can be deleted."""
    conditions = []
    for child in schema.tables:
        for fk in child.foreign_keys:
            if fk.table == table.name:
                match = " AND ".join(
                    f'"c".{quote_identifier(column)} = "t".{quote_identifier(ref)}'
                    for column, ref in zip(fk.columns, fk.ref_columns, strict=True)
                )
                conditions.append(f'NOT EXISTS (SELECT 1 FROM {quote_identifier(child.name)} AS "c" WHERE {match})')
    return " AND ".join(conditions)


class _ArgumentSampler:
    """Argument sets for the trials: real values where a parameter meets a column, else from its schema.

    Parameters on the same table take their values from the same rows, so that a composite key or a set
    of filters matches a row that exists. A DELETE's rows are ones no foreign key points to.
    """

    def __init__(self, tool: SQLTool, resolver: _Resolver, reader: SQLEnvironment, samples: int) -> None:
        self.properties: dict[str, Any] = tool.parameters.get("properties", {})
        self.required = set(tool.parameters.get("required", []))
        self.bindings = _bindings(tool, resolver)
        self.rng = random.Random(f"{tool.name}\0{tool.sql}")
        deleted = resolver.target if isinstance(resolver.statement, exp.Delete) else None
        self.values = self._column_values(reader, samples, deleted, resolver.schema)
        self.maxima = {
            name: self._maximum(reader, binding) for name, binding in self.bindings.items() if binding.source == "fresh"
        }

    def _column_values(
        self, reader: SQLEnvironment, samples: int, deleted: Table | None, schema: DatabaseSchema
    ) -> dict[str, list[Any]]:
        by_table: dict[str, list[tuple[str, _Binding]]] = {}
        for name, binding in self.bindings.items():
            if binding.source != "fresh":
                by_table.setdefault(binding.table.name, []).append((name, binding))
        values: dict[str, list[Any]] = {}
        for table_name, pairs in by_table.items():
            columns = list(dict.fromkeys(binding.column for _, binding in pairs))
            table = pairs[0][1].table
            condition = _unreferenced(table, schema) if table == deleted else ""
            selected = ", ".join(f'"t".{quote_identifier(column)}' for column in columns)
            where = f" WHERE {condition}" if condition else ""
            sql = f'SELECT DISTINCT {selected} FROM {quote_identifier(table_name)} AS "t"{where} LIMIT {samples}'
            result = reader.query(sql)
            rows = [list(row.values()) for row in result.content] if result.ok else []
            for name, binding in pairs:
                if not rows and table == deleted and binding.column in table.primary_key:
                    self.bindings[name] = _Binding(table, binding.column, "fresh")  # every row is referenced
                values[name] = [row[columns.index(binding.column)] for row in rows]
        return values

    @staticmethod
    def _maximum(reader: SQLEnvironment, binding: _Binding) -> int:
        column, table = quote_identifier(binding.column), quote_identifier(binding.table.name)
        result = reader.query(f"SELECT max({column}) AS top FROM {table} WHERE typeof({column}) = 'integer'")
        top = result.content[0]["top"] if result.ok and result.content else None
        return top if isinstance(top, int) else 0

    def arguments(self, attempt: int) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for name, schema in self.properties.items():
            value = self._value(name, schema if isinstance(schema, dict) else {}, attempt)
            if value is not _OMIT:
                arguments[name] = value
        return arguments

    def _value(self, name: str, schema: dict[str, Any], attempt: int) -> Any:
        binding = self.bindings.get(name)
        candidate: Any = _OMIT
        if binding is not None and binding.source == "fresh":
            candidate = self.maxima[name] + 1 + attempt
        elif self.values.get(name) and not (binding is not None and binding.source == "first" and attempt > 0):
            rows = self.values[name]
            candidate = rows[attempt % len(rows)]
        if candidate is None and name not in self.required:
            return _OMIT
        if candidate is not _OMIT and not schema_violations(candidate, schema):
            return candidate
        try:
            return sample_json(schema, self.rng)
        except SchemaSamplingError:
            return _OMIT  # the trial then reports the missing argument


_OMIT = object()


def _trial(tool: SQLTool, database: SQLDatabase, resolver: _Resolver, samples: int) -> tuple[list[str], dict[str, Any]]:
    """Run the tool on fresh forks until one argument set works; (problems, what the deciding run did)."""
    root = database.environment([tool])
    try:
        sampler = _ArgumentSampler(tool, resolver, root, samples)
        failures: dict[str, None] = {}
        trial: dict[str, Any] = {}
        for attempt in range(max(samples, 1)):
            arguments = sampler.arguments(attempt)
            fork = root.fork()
            try:
                result = fork.execute(tool.name, arguments)
            finally:
                fork.close()
            trial = {"arguments": arguments, "result": _summary(result), "attempts": attempt + 1}
            error = result.error
            if error is None or error.kind == "not_found":  # a get tool that found no row still ran
                try:
                    result.to_text()
                except (TypeError, orjson.JSONEncodeError) as exc:
                    return [f"the result is not JSON-serialisable ({exc}); cast such values in the SQL"], trial
                return [], trial
            failures.setdefault(f"the trial run failed ({error.kind}): {error.message}; arguments {_json(arguments)}")
            if error.kind in _FINAL_ERRORS:
                break
        if (parent := _empty_parent(resolver, failures)) is not None:
            trial["note"] = f"valid although every trial broke a foreign key: the parent table {parent} has no rows"
            return [], trial
        return list(failures), trial
    finally:
        root.close()


def _empty_parent(resolver: _Resolver, failures: Iterable[str]) -> str | None:
    """The empty table an INSERT's foreign key points to, when that (not the tool) made every trial fail."""
    if not isinstance(resolver.statement, exp.Insert) or resolver.target is None:
        return None
    if not all("FOREIGN KEY constraint failed" in failure for failure in failures):
        return None
    for fk in resolver.target.foreign_keys:
        parent = resolver.table(fk.table)
        if parent is not None and parent.row_count == 0:
            return parent.name
    return None


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
