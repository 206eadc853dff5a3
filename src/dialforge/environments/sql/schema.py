"""What a SQLite database holds, read through apsw: the ground that tools are scaffolded from and prompts show.

Only ordinary tables of the ``main`` schema count. Views are ignored (they carry no keys to act on), and so
are SQLite's internal ``sqlite_%`` tables, virtual tables and the shadow tables that store them (their rows
belong to the virtual-table module, not to the agent).
"""

from __future__ import annotations

import re
from typing import Literal

import apsw
from pydantic import BaseModel, ConfigDict

from dialforge.environments.sql.sql_text import check_clauses, compact, shorten, trigger_summary

Affinity = Literal["INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC"]

ROWID_NAMES = ("rowid", "_rowid_", "oid")
"""The names SQLite accepts for a rowid table's rowid, unless a column takes them."""
_BARE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MAX_LISTED_VALUES = 12
"""A column with at most this many distinct values (status, kind, size) has them listed in prompts."""
VALUE_SCAN_ROWS = 200_000
"""The rows counted for a column's values: a bound on the cost for big tables (the counts then cover these)."""
_LITERAL_DEFAULT = re.compile(
    r"^(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+|'(?:[^']|'')*'|[xX]'[0-9a-fA-F]*'"
    r"|NULL|TRUE|FALSE|CURRENT_TIME|CURRENT_DATE|CURRENT_TIMESTAMP)$",
    re.IGNORECASE,
)
_MAX_VALUE_COMMENT_CHARS = 200
_MAX_RULE_CHARS = 300
_MAX_SHOWN_VALUE_CHARS = 40

SQLValue = int | float | str | None


def quote_identifier(name: str) -> str:
    """Always quote: one form that is right for spaces, embedded quotes, keywords and mixed case alike."""
    return '"' + name.replace('"', '""') + '"'


def column_ref(table: str, column: str) -> str:
    """``"table"."column"``: how messages name one column of one table."""
    return f"{quote_identifier(table)}.{quote_identifier(column)}"


def _prompt_identifier(name: str) -> str:
    """Bare where SQL allows it, so prompts stay readable; quoted where a model must quote it too."""
    if _BARE_IDENTIFIER.match(name) and name.upper() not in apsw.keywords:
        return name
    return quote_identifier(name)


class Column(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    """The declared type as written (``NVARCHAR(40)``), empty when none was declared."""
    not_null: bool = False
    default: str | None = None
    """The default as an SQL expression (``'0'``, ``CURRENT_TIMESTAMP``), None when there is none."""
    primary_key: int = 0
    """Position in the primary key, from 1; 0 when the column is not part of it."""
    generated: bool = False
    """A generated column: readable, never written."""
    checks: tuple[str, ...] = ()
    """The expressions of the column's CHECK constraints, as written."""
    values: tuple[tuple[SQLValue, int], ...] = ()
    """For a column with few distinct values (``MAX_LISTED_VALUES``, far fewer than its rows): each value with the
    number of rows holding it, most frequent first, so that writers use the spellings the data has."""

    @property
    def affinity(self) -> Affinity:
        """SQLite's type affinity rules (https://sqlite.org/datatype3.html, section 3.1), in their order."""
        declared = self.type.upper()
        if "INT" in declared:
            return "INTEGER"
        if any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
            return "TEXT"
        if not declared or "BLOB" in declared:
            return "BLOB"
        if any(word in declared for word in ("REAL", "FLOA", "DOUB")):
            return "REAL"
        return "NUMERIC"


class ForeignKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    columns: tuple[str, ...]
    table: str
    ref_columns: tuple[str, ...]
    """The parent's columns, filled with its primary key when the constraint omits them."""
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"


class Table(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    row_count: int = 0
    without_rowid: bool = False
    sql: str = ""
    rowid_alias: str | None = None
    """The INTEGER PRIMARY KEY column that aliases the rowid: SQLite assigns it when an insert leaves it NULL."""
    unique_keys: tuple[tuple[str, ...], ...] = ()
    """Column sets under a UNIQUE constraint or unique index other than the primary key (partial indexes aside):
    a new row must differ from every row in each of them."""
    other_unique_indexes: tuple[str, ...] = ()
    """The unique indexes that are no key of plain columns (partial, or on expressions), as their SQL."""
    checks: tuple[str, ...] = ()
    """The expressions of the table's own CHECK constraints (those written apart from a column), as written."""
    triggers: tuple[str, ...] = ()
    """``name: when it fires: what it does`` for each trigger on the table, on one line."""

    def column(self, name: str) -> Column:
        """Case-insensitive, as SQLite resolves column names."""
        for column in self.columns:
            if column.name.casefold() == name.casefold():
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r}; it has {[c.name for c in self.columns]}")

    @property
    def rowid_name(self) -> str | None:
        """The name that reaches the rowid (``rowid`` unless a column shadows it), None for WITHOUT ROWID tables."""
        if self.without_rowid:
            return None
        taken = {column.name.casefold() for column in self.columns}
        return next((name for name in ROWID_NAMES if name not in taken), None)

    @property
    def key_columns(self) -> tuple[Column, ...]:
        """What identifies one row: the primary key, else the rowid (as an INTEGER pseudo-column)."""
        if self.primary_key:
            return tuple(self.column(name) for name in self.primary_key)
        if self.rowid_name is None:
            return ()
        return (Column(name=self.rowid_name, type="INTEGER", not_null=True, primary_key=1),)

    @property
    def result_columns(self) -> tuple[Column, ...]:
        """What a query shows of a row: every column, after the rowid when the rowid is the key."""
        return (*(() if self.primary_key else self.key_columns), *self.columns)

    def to_prompt(self) -> str:
        """DDL a model can copy identifiers from, with every rule a write must keep (NOT NULL, defaults, UNIQUE,
        CHECK, foreign keys, triggers), the row count and the values of few-valued columns as comments."""
        unique_columns = {key[0].casefold() for key in self.unique_keys if len(key) == 1}
        sampled = self.row_count > VALUE_SCAN_ROWS
        lines = [
            (_column_ddl(column, unique=column.name.casefold() in unique_columns), _values_comment(column, sampled))
            for column in self.columns
        ]
        if self.primary_key:
            lines.append((f"PRIMARY KEY ({_identifier_list(self.primary_key)})", ""))
        lines.extend((f"UNIQUE ({_identifier_list(key)})", "") for key in self.unique_keys if len(key) > 1)
        lines.extend((_foreign_key_ddl(fk), "") for fk in self.foreign_keys)
        lines.extend((f"CHECK ({shorten(check, _MAX_RULE_CHARS)})", "") for check in self.checks)
        body = "\n".join(
            f"  {ddl}{',' if index < len(lines) - 1 else ''}{f'  -- {comment}' if comment else ''}"
            for index, (ddl, comment) in enumerate(lines)
        )
        rows = "1 row" if self.row_count == 1 else f"{self.row_count} rows"
        suffix = " WITHOUT ROWID" if self.without_rowid else ""
        notes = [f"-- {shorten(index, _MAX_RULE_CHARS)}" for index in self.other_unique_indexes]
        notes.extend(f"-- trigger {shorten(trigger, _MAX_RULE_CHARS)}" for trigger in self.triggers)
        return "\n".join([f"CREATE TABLE {_prompt_identifier(self.name)} (  -- {rows}\n{body}\n){suffix};", *notes])


def _identifier_list(names: tuple[str, ...]) -> str:
    return ", ".join(_prompt_identifier(name) for name in names)


def _column_ddl(column: Column, *, unique: bool) -> str:
    parts = [_prompt_identifier(column.name)]
    if column.type:
        parts.append(column.type)
    if column.not_null:
        parts.append("NOT NULL")
    if unique:
        parts.append("UNIQUE")
    if column.default is not None:
        # SQLite reports an expression default without the parentheses its DDL requires
        literal = _LITERAL_DEFAULT.match(column.default)
        parts.append(f"DEFAULT {column.default}" if literal else f"DEFAULT ({column.default})")
    parts.extend(f"CHECK ({shorten(check, _MAX_RULE_CHARS)})" for check in column.checks)
    if column.generated:
        parts.append("GENERATED")
    return " ".join(parts)


def _foreign_key_ddl(fk: ForeignKey) -> str:
    actions = "".join(
        f" ON {event} {action}"
        for event, action in (("DELETE", fk.on_delete), ("UPDATE", fk.on_update))
        if action != "NO ACTION"
    )
    return (
        f"FOREIGN KEY ({_identifier_list(fk.columns)}) REFERENCES {_prompt_identifier(fk.table)}"
        f" ({_identifier_list(fk.ref_columns)}){actions}"
    )


def _values_comment(column: Column, sampled: bool) -> str:
    """``values in the data: 'available' 16, 'rented' 7``, cut at a length with how many values it leaves out.
    What the rows hold, not a rule: only a CHECK says which values are allowed."""
    if not column.values:
        return ""
    head = f"values in the data (first {VALUE_SCAN_ROWS} rows): " if sampled else "values in the data: "
    shown: list[str] = []
    for index, (value, count) in enumerate(column.values):
        piece = f"{_value_literal(value)} {count}"
        rest = len(column.values) - index
        if len(head) + len(", ".join([*shown, piece])) > _MAX_VALUE_COMMENT_CHARS and rest > 1:
            shown.append(f"… {rest} more")
            break
        shown.append(piece)
    return head + ", ".join(shown)


def _value_literal(value: SQLValue) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + shorten(value, _MAX_SHOWN_VALUE_CHARS).replace("'", "''") + "'"
    return repr(value)


WriteOperation = Literal["insert", "update", "delete"]


class SchemaDefect(BaseModel):
    """A fault of the schema itself, found when the database is opened, named so that its owner can fix it.

    ``foreign_key``: a constraint SQLite cannot enforce (its parent table or key does not exist, or the parent
    columns are not a primary key or under a UNIQUE constraint); with enforcement on, SQLite fails every write
    to the tables it joins with "foreign key mismatch". Enforcement is per connection, all or nothing, so such a
    database can only ever have been written with it off, and its forks run that way
    (``DatabaseSchema.foreign_keys_enforced``). ``write``: a write SQLite refuses to prepare even so (a trigger
    that names a missing column, a double-quoted string in a trigger); ``blocks`` lists them, and the scaffold
    leaves those tools out.
    """

    model_config = ConfigDict(frozen=True)

    table: str
    kind: Literal["foreign_key", "write"]
    message: str
    blocks: tuple[WriteOperation, ...] = ()


class DatabaseSchema(BaseModel):
    model_config = ConfigDict(frozen=True)

    tables: tuple[Table, ...]
    defects: tuple[SchemaDefect, ...] = ()
    foreign_keys_enforced: bool = True
    """Whether forks enforce foreign keys: off when SQLite cannot enforce some of them (see ``SchemaDefect``)."""

    def table(self, name: str) -> Table:
        """Case-insensitive, as SQLite resolves table names."""
        for table in self.tables:
            if table.name.casefold() == name.casefold():
                return table
        raise KeyError(f"no table {name!r}; the tables are {[t.name for t in self.tables]}")

    def to_prompt(self) -> str:
        return "\n\n".join(table.to_prompt() for table in self.tables)

    def blocking(self, table: str, operation: WriteOperation) -> SchemaDefect | None:
        """The defect that makes SQLite refuse ``operation`` on ``table``, if any."""
        return next((d for d in self.defects if d.table.casefold() == table.casefold() and operation in d.blocks), None)


def table_names(conn: apsw.Connection) -> list[str]:
    """The user tables of ``main``: ordinary tables only, not SQLite's own, views, virtual or shadow tables."""
    return [
        name
        for (name,) in conn.execute(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table'"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    ]


def single_row(conn: apsw.Connection, sql: str, bindings: apsw.Bindings | None = None) -> apsw.SQLiteValues:
    """The row of a query that always returns one (``count(*)``, a pragma, a table known to exist)."""
    row: apsw.SQLiteValues | None = conn.execute(sql, bindings).fetchone()
    if row is None:
        raise LookupError(f"the query returned no row: {sql}")
    return row


def introspect(conn: apsw.Connection) -> DatabaseSchema:
    """Every user table, sorted by name so that what is built from the schema is deterministic, and the
    schema's defects (``SchemaDefect``), which decide whether forks enforce foreign keys."""
    tables = [_read_table(conn, name) for name in table_names(conn)]
    by_name = {table.name.casefold(): table for table in tables}
    resolved = sorted(
        (
            table.model_copy(update={"foreign_keys": tuple(_resolve(fk, table, by_name) for fk in table.foreign_keys)})
            for table in tables
        ),
        key=lambda table: (table.name.casefold(), table.name),
    )
    foreign_key_defects = _foreign_key_defects(conn, resolved)
    refused = _refused_writes(conn, resolved, foreign_keys=not foreign_key_defects)
    if not foreign_key_defects and any("foreign key mismatch" in defect.message for defect in refused):
        # a mismatch the rules below do not foresee: SQLite's own word decides
        foreign_key_defects = [d.model_copy(update={"kind": "foreign_key", "blocks": ()}) for d in refused]
        refused = _refused_writes(conn, resolved, foreign_keys=False)
    return DatabaseSchema(
        tables=tuple(resolved),
        defects=(*foreign_key_defects, *refused),
        foreign_keys_enforced=not foreign_key_defects,
    )


def _read_table(conn: apsw.Connection, name: str) -> Table:
    columns = tuple(
        Column(
            name=column,
            type=declared or "",
            not_null=bool(not_null),
            default=default,
            primary_key=pk,
            generated=hidden in (2, 3),
        )
        for column, declared, not_null, default, pk, hidden in conn.execute(
            "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?, 'main') ORDER BY cid",
            (name,),
        )
    )
    primary_key = tuple(column.name for column in sorted(columns, key=lambda c: c.primary_key) if column.primary_key)
    (without_rowid,) = single_row(conn, "SELECT wr FROM pragma_table_list(?) WHERE schema = 'main'", (name,))
    # A primary key backed by an index is not the rowid; one without (a single INTEGER column) aliases it.
    pk_index = conn.execute("SELECT 1 FROM pragma_index_list(?, 'main') WHERE origin = 'pk'", (name,)).fetchall()
    (sql,) = single_row(conn, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,))
    (row_count,) = single_row(conn, f"SELECT count(*) FROM main.{quote_identifier(name)}")
    assert isinstance(row_count, int) and isinstance(sql, str | None)
    pk = {column.casefold() for column in primary_key}
    unique_keys = tuple(key for key, _ in _unique_indexes(conn, name) if {column.casefold() for column in key} != pk)
    foreign_keys = _read_foreign_keys(conn, name)
    checks = check_clauses(sql or "")
    # Values are listed for text and untyped columns, where a status or a kind is kept as a word; keys and
    # references identify rows one by one, and listing their values would only crowd the prompt.
    identifying = pk | {c.casefold() for fk in foreign_keys for c in fk.columns}
    identifying |= {key[0].casefold() for key in unique_keys if len(key) == 1}
    columns = tuple(
        column.model_copy(
            update={
                "checks": checks.columns.get(column.name.casefold(), ()),
                "values": _listed_values(conn, name, column.name)
                if column.name.casefold() not in identifying and (column.affinity == "TEXT" or not column.type)
                else (),
            }
        )
        for column in columns
    )
    return Table(
        name=name,
        columns=columns,
        primary_key=primary_key,
        foreign_keys=foreign_keys,
        row_count=row_count,
        without_rowid=bool(without_rowid),
        sql=sql or "",
        rowid_alias=primary_key[0] if len(primary_key) == 1 and not (pk_index or without_rowid) else None,
        unique_keys=tuple(dict.fromkeys(unique_keys)),
        other_unique_indexes=_other_unique_indexes(conn, name),
        checks=checks.table,
        triggers=tuple(
            f"{trigger}: {trigger_summary(trigger_sql)}"
            for trigger, trigger_sql in conn.execute(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ? ORDER BY name", (name,)
            )
        ),
    )


def _listed_values(conn: apsw.Connection, table: str, column: str) -> tuple[tuple[SQLValue, int], ...]:
    """The column's values with their row counts when it has few (``Column.values``), else nothing.

    A first query stops at the thirteenth distinct value, so a column of names or emails costs a few rows;
    only few-valued columns are counted, over at most ``VALUE_SCAN_ROWS`` rows.
    """
    rows = f"(SELECT {quote_identifier(column)} AS v FROM main.{quote_identifier(table)} LIMIT {VALUE_SCAN_ROWS})"
    (distinct,) = single_row(
        conn, f"SELECT count(*) FROM (SELECT DISTINCT v FROM {rows} WHERE v IS NOT NULL LIMIT {MAX_LISTED_VALUES + 1})"
    )
    assert isinstance(distinct, int)
    if not distinct or distinct > MAX_LISTED_VALUES:
        return ()
    counts = [
        (value, count)
        for value, count in conn.execute(f"SELECT v, count(*) FROM {rows} GROUP BY v ORDER BY count(*) DESC, v")
        if not isinstance(value, bytes)
    ]
    filled = sum(count for value, count in counts if value is not None)
    if distinct * 3 > filled:  # far fewer values than rows, or they are names rather than categories
        return ()
    return tuple(counts)


def _other_unique_indexes(conn: apsw.Connection, table: str) -> tuple[str, ...]:
    """The SQL of the unique indexes ``_unique_indexes`` leaves out: partial ones and those on expressions."""
    return tuple(
        compact(sql)
        for (sql,) in conn.execute(
            "SELECT s.sql FROM pragma_index_list(?, 'main') AS l JOIN sqlite_schema AS s ON s.name = l.name"
            ' WHERE l."unique" AND s.sql IS NOT NULL AND (l.partial OR EXISTS ('
            "SELECT 1 FROM pragma_index_xinfo(l.name, 'main') WHERE key AND name IS NULL)) ORDER BY l.name",
            (table,),
        )
    )


def _read_foreign_keys(conn: apsw.Connection, table: str) -> tuple[ForeignKey, ...]:
    """One ForeignKey per constraint; ``ref_columns`` may still be empty until ``_resolve`` sees the parent."""
    grouped: dict[int, list[tuple[str, str, str | None, str, str]]] = {}
    for fk_id, parent, column, ref_column, on_delete, on_update in conn.execute(
        'SELECT id, "table", "from", "to", on_delete, on_update FROM pragma_foreign_key_list(?, \'main\')'
        " ORDER BY id, seq",
        (table,),
    ):
        grouped.setdefault(fk_id, []).append((parent, column, ref_column, on_delete, on_update))
    return tuple(
        ForeignKey(
            columns=tuple(row[1] for row in rows),
            table=rows[0][0],
            ref_columns=tuple(row[2] for row in rows if row[2] is not None),
            on_delete=rows[0][3],
            on_update=rows[0][4],
        )
        for rows in grouped.values()
    )


def _resolve(fk: ForeignKey, child: Table, tables: dict[str, Table]) -> ForeignKey:
    """Spell names as the tables do (constraints may differ in case) and fill omitted parent columns.

    A constraint naming a missing parent is kept as written: SQLite accepts it until it is enforced.
    """
    parent = tables.get(fk.table.casefold())
    if parent is None:
        return fk
    ref_columns = fk.ref_columns or parent.primary_key
    return fk.model_copy(
        update={
            "columns": tuple(spelled(child, name) for name in fk.columns),
            "table": parent.name,
            "ref_columns": tuple(spelled(parent, name) for name in ref_columns),
        }
    )


def spelled(table: Table, name: str) -> str:
    """The column's name as the schema spells it (names are case-insensitive in SQLite), else ``name``."""
    try:
        return table.column(name).name
    except KeyError:
        return name


def _unique_indexes(conn: apsw.Connection, table: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(columns, collations) of each unique, non-partial index on plain columns, the primary key's included."""
    indexes = []
    for (index,) in conn.execute(
        "SELECT name FROM pragma_index_list(?, 'main') WHERE \"unique\" AND NOT partial ORDER BY seq DESC", (table,)
    ):
        keys = conn.execute(
            "SELECT name, coll FROM pragma_index_xinfo(?, 'main') WHERE key ORDER BY seqno", (index,)
        ).fetchall()
        if keys and all(name is not None for name, _ in keys):  # an index on an expression is no key of columns
            indexes.append((tuple(str(name) for name, _ in keys), tuple(str(coll) for _, coll in keys)))
    return indexes


# Defects


def _foreign_key_defects(conn: apsw.Connection, tables: list[Table]) -> list[SchemaDefect]:
    """Foreign keys SQLite cannot enforce, by its rules (https://sqlite.org/foreignkeys.html, section 3)."""
    by_name = {table.name.casefold(): table for table in tables}
    defects = []
    for table in tables:
        for fk in table.foreign_keys:
            problem = _parent_key_problem(conn, fk, by_name.get(fk.table.casefold()))
            if problem:
                defects.append(
                    SchemaDefect(
                        table=table.name,
                        kind="foreign_key",
                        message=f"the foreign key {quote_identifier(table.name)} ({_identifier_list(fk.columns)})"
                        f" references {problem}: SQLite cannot enforce it and, with foreign keys on, fails every"
                        f' write to {quote_identifier(table.name)} with "foreign key mismatch"; forks of this'
                        " database run with foreign keys off, as it must have been written",
                    )
                )
    return defects


def _parent_key_problem(conn: apsw.Connection, fk: ForeignKey, parent: Table | None) -> str | None:
    """Why the parent columns of ``fk`` are no key SQLite can look rows up by, or None when they are one."""
    if parent is None:
        return f"the table {quote_identifier(fk.table)}, which does not exist"
    target = f"{quote_identifier(parent.name)} ({_identifier_list(fk.ref_columns)})"
    if not fk.ref_columns:
        return f"{quote_identifier(parent.name)} without naming columns, and that table has no primary key"
    if len(fk.ref_columns) != len(fk.columns):
        return f"{target}: {len(fk.columns)} columns against {len(fk.ref_columns)}"
    wanted = {name.casefold() for name in fk.ref_columns}
    if parent.rowid_alias is not None and wanted == {parent.rowid_alias.casefold()}:
        return None
    for columns, collations in _unique_indexes(conn, parent.name):
        if {name.casefold() for name in columns} == wanted and all(
            collation.casefold() == _declared_collation(conn, parent.name, name).casefold()
            for name, collation in zip(columns, collations, strict=True)
        ):
            return None
    missing = [name for name in fk.ref_columns if name.casefold() not in {c.name.casefold() for c in parent.columns}]
    if missing:
        return f"{target}, and {quote_identifier(parent.name)} has no column {_identifier_list(tuple(missing))}"
    parent_name = quote_identifier(parent.name)
    return f"{target}, which is neither the primary key of {parent_name} nor under a UNIQUE constraint"


def _declared_collation(conn: apsw.Connection, table: str, column: str) -> str:
    """The collation a column's CREATE TABLE gives it (BINARY unless it says otherwise)."""
    collation = conn.column_metadata("main", table, column)[1]
    return collation or "BINARY"


def _refused_writes(conn: apsw.Connection, tables: list[Table], *, foreign_keys: bool) -> list[SchemaDefect]:
    """Writes SQLite refuses to prepare on each table, as forks run them (foreign keys as given, no double-quoted
    strings): every INSERT, UPDATE and DELETE of the table is compiled (``EXPLAIN``, nothing runs) with its
    triggers and foreign-key checks."""
    (enforced,) = single_row(conn, "PRAGMA foreign_keys")
    dqs = conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, -1)
    conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}").fetchall()
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
    try:
        defects: dict[tuple[str, str], list[WriteOperation]] = {}
        for table in tables:
            for operation, sql in _write_probes(table):
                try:
                    conn.execute(f"EXPLAIN {sql}").fetchall()
                except apsw.Error as exc:
                    defects.setdefault((table.name, str(exc)), []).append(operation)
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}").fetchall()
        conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, dqs)
    return [
        SchemaDefect(
            table=table,
            kind="write",
            message=f"SQLite refuses to {' or '.join(operations)} rows of {quote_identifier(table)}: {message}",
            blocks=tuple(operations),
        )
        for (table, message), operations in defects.items()
    ]


def _write_probes(table: Table) -> list[tuple[WriteOperation, str]]:
    name = quote_identifier(table.name)
    written = [quote_identifier(column.name) for column in table.columns if not column.generated]
    if not written:
        return [("delete", f"DELETE FROM main.{name}")]
    return [
        ("insert", f"INSERT INTO main.{name} ({', '.join(written)}) VALUES ({', '.join('NULL' for _ in written)})"),
        ("update", f"UPDATE main.{name} SET {', '.join(f'{column} = {column}' for column in written)}"),
        ("delete", f"DELETE FROM main.{name}"),
    ]
