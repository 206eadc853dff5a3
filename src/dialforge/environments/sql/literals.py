"""A write's own literal values against its table's CHECK and NOT NULL constraints.

A value written into the SQL (``status = 'reported'``) is the same in every call: when it breaks a constraint, the
tool fails whatever its arguments, and only its writer can fix it. Each CHECK whose columns all get a literal from
the statement is evaluated on those literals by SQLite itself, so that the verdict names the constraint and the
value instead of leaving the writer to guess from failed trials.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from dialforge.environments.sql.environment import SQLEnvironment
from dialforge.environments.sql.schema import Table, quote_identifier, spelled

_LITERALS = (exp.Literal, exp.Null, exp.Boolean)


def literal_violations(statement: exp.Expression, table: Table | None, reader: SQLEnvironment) -> list[str]:
    """Why the statement's literal values break a constraint of ``table`` (its target) in every call, if they do."""
    if table is None or not isinstance(statement, exp.Insert | exp.Update):
        return []
    checks = _checks(table)
    problems: dict[str, None] = {}
    for row in _literal_rows(statement, table):
        for column, value in row.items():
            if isinstance(value, exp.Null) and _not_null(table, column):
                problems.setdefault(
                    f"the statement writes NULL into {quote_identifier(table.name)}.{quote_identifier(column)},"
                    " which is NOT NULL: write a value, or leave the column out so that its default applies"
                )
        for check in checks:
            columns = {spelled(table, column.name) for column in check.find_all(exp.Column)}
            if not columns or not columns <= row.keys():
                continue
            result = reader.query(f"SELECT ({_substituted(check, row, table).sql(dialect='sqlite')}) AS holds")
            if result.ok and isinstance(result.content, list) and result.content[0]["holds"] == 0:
                values = ", ".join(f"{column} = {row[column].sql(dialect='sqlite')}" for column in sorted(columns))
                problems.setdefault(
                    f"the statement writes {values} into {quote_identifier(table.name)}, which breaks"
                    f" CHECK ({check.sql(dialect='sqlite')}) in every call: write a value the CHECK allows"
                    " (or take it as a parameter)"
                )
    return list(problems)


def _substituted(check: exp.Expr, row: dict[str, exp.Expr], table: Table) -> exp.Expr:
    """The CHECK with each column replaced by the literal the row writes into it."""
    return check.copy().transform(
        lambda node: row[spelled(table, node.name)].copy() if isinstance(node, exp.Column) else node
    )


def _checks(table: Table) -> list[exp.Expr]:
    """The table's CHECK expressions, its columns' and its own, as the schema read them; one that does not parse
    is left out."""
    parsed = []
    for text in (*table.checks, *(check for column in table.columns for check in column.checks)):
        try:
            parsed.append(sqlglot.parse_one(text, dialect="sqlite"))
        except SqlglotError:
            continue
    return parsed


def _literal_rows(statement: exp.Insert | exp.Update, table: Table) -> Iterator[dict[str, exp.Expr]]:
    """Per row the statement writes, the columns (as the schema spells them) it sets to a literal."""
    if isinstance(statement, exp.Insert) and isinstance(values := statement.expression, exp.Values):
        if isinstance(statement.this, exp.Schema):
            names = [spelled(table, identifier.name) for identifier in statement.this.expressions]
        else:
            names = [column.name for column in table.columns if not column.generated]
        for row in values.expressions:
            if isinstance(row, exp.Tuple):
                yield {
                    name: literal
                    for name, value in zip(names, row.expressions, strict=False)
                    if (literal := _literal(value)) is not None
                }
    assignments = [list(statement.expressions)] if isinstance(statement, exp.Update) else []
    assignments.extend(list(conflict.expressions) for conflict in statement.find_all(exp.OnConflict))
    for assigned in assignments:
        yield {
            spelled(table, eq.left.name): literal
            for eq in assigned
            if isinstance(eq, exp.EQ)
            and isinstance(eq.left, exp.Column)
            and (literal := _literal(eq.right)) is not None
        }


def _literal(value: exp.Expr) -> exp.Expr | None:
    """The literal a value is (``'booked'``, ``-2``, ``NULL``, through parentheses), else None."""
    while isinstance(value, exp.Paren):
        value = value.this
    if isinstance(value, _LITERALS) or (isinstance(value, exp.Neg) and isinstance(value.this, exp.Literal)):
        return value
    return None


def _not_null(table: Table, column: str) -> bool:
    """Whether writing NULL into the column fails: NOT NULL, and not the rowid alias that SQLite fills."""
    try:
        return table.column(column).not_null and column != table.rowid_alias
    except KeyError:
        return False
