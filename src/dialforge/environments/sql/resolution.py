"""Where each table and column of a SQL statement comes from, as SQLite would resolve it.

Column scopes come from sqlglot's scope analysis (CTEs, derived tables, correlated subqueries); the target of an
INSERT, UPDATE or DELETE (with ``excluded`` for upserts) is the outermost scope. Names compare case-insensitively,
as SQLite compares them; what does not resolve comes back as a problem naming the closest valid spelling.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from dialforge.environments.sql.schema import ROWID_NAMES, DatabaseSchema, Table, quote_identifier, spelled

READS = (exp.Select, exp.Union)
"""The statements that only read rows."""
_LISTED_TABLES = 20


def dollar_parameter(node: exp.Expression) -> bool:
    """SQLite's ``$name`` parameters parse as columns named ``$name``."""
    return isinstance(node, exp.Column) and not node.table and node.name.startswith("$")


def closest(name: str, options: Iterable[str]) -> str:
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


class Resolver:
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
            if not dollar_parameter(column) and self._checked(column, statement)
        )
        for problem in located:
            if isinstance(problem, str) and problem not in self.problems:
                self.problems.append(problem)

    def _checked(self, column: exp.Column, statement: exp.Expression) -> bool:
        """Columns in a scope, and a DML statement's own (SET, WHERE, RETURNING); ORDER BY aliases are not."""
        if id(column) in self._scope_of:
            return True
        return isinstance(statement, (exp.Insert, exp.Update, exp.Delete)) and column.find_ancestor(*READS) is None

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
            hint = closest(node.name, names) or f"; the tables are {', '.join(names[:_LISTED_TABLES])}" + (
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
            nodes.extend(n for n in statement.args["from_"].find_all(exp.Table) if n.find_ancestor(*READS) is None)
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
            elif isinstance(query, READS) and query.selects and not query.is_star:
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
        return f"unknown column {quote_identifier(name)}: {tables} {verb} no such column{closest(name, spelled)}"

    @staticmethod
    def _check_name(name: str, source: _Source) -> _Source | str:
        if source.names is None or name.casefold() in source.names:
            return source
        owner = quote_identifier(source.table.name if source.table else source.label)
        return f"unknown column {quote_identifier(name)}: {owner} has no such column{closest(name, source.spelled)}"

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
