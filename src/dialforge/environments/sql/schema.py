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

Affinity = Literal["INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC"]

ROWID_NAMES = ("rowid", "_rowid_", "oid")
"""The names SQLite accepts for a rowid table's rowid, unless a column takes them."""
_BARE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
        """DDL a model can copy identifiers from, with the row count as a comment."""
        lines = [_column_ddl(column) for column in self.columns]
        if self.primary_key:
            lines.append(f"PRIMARY KEY ({_identifier_list(self.primary_key)})")
        lines.extend(
            f"FOREIGN KEY ({_identifier_list(fk.columns)}) REFERENCES {_prompt_identifier(fk.table)}"
            f" ({_identifier_list(fk.ref_columns)})"
            for fk in self.foreign_keys
        )
        rows = "1 row" if self.row_count == 1 else f"{self.row_count} rows"
        body = ",\n".join(f"  {line}" for line in lines)
        suffix = " WITHOUT ROWID" if self.without_rowid else ""
        return f"CREATE TABLE {_prompt_identifier(self.name)} (  -- {rows}\n{body}\n){suffix};"


def _identifier_list(names: tuple[str, ...]) -> str:
    return ", ".join(_prompt_identifier(name) for name in names)


def _column_ddl(column: Column) -> str:
    parts = [_prompt_identifier(column.name)]
    if column.type:
        parts.append(column.type)
    if column.not_null:
        parts.append("NOT NULL")
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if column.generated:
        parts.append("GENERATED")
    return " ".join(parts)


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
    return Table(
        name=name,
        columns=columns,
        primary_key=primary_key,
        foreign_keys=_read_foreign_keys(conn, name),
        row_count=row_count,
        without_rowid=bool(without_rowid),
        sql=sql or "",
        rowid_alias=primary_key[0] if len(primary_key) == 1 and not (pk_index or without_rowid) else None,
        unique_keys=tuple(dict.fromkeys(unique_keys)),
    )


def _read_foreign_keys(conn: apsw.Connection, table: str) -> tuple[ForeignKey, ...]:
    """One ForeignKey per constraint; ``ref_columns`` may still be empty until ``_resolve`` sees the parent."""
    grouped: dict[int, list[tuple[str, str, str | None]]] = {}
    for fk_id, parent, column, ref_column in conn.execute(
        'SELECT id, "table", "from", "to" FROM pragma_foreign_key_list(?, \'main\') ORDER BY id, seq', (table,)
    ):
        grouped.setdefault(fk_id, []).append((parent, column, ref_column))
    return tuple(
        ForeignKey(
            columns=tuple(column for _, column, _ in pairs),
            table=pairs[0][0],
            ref_columns=tuple(ref for _, _, ref in pairs if ref is not None),
        )
        for pairs in grouped.values()
    )


def _resolve(fk: ForeignKey, child: Table, tables: dict[str, Table]) -> ForeignKey:
    """Spell names as the tables do (constraints may differ in case) and fill omitted parent columns.

    A constraint naming a missing parent is kept as written: SQLite accepts it until it is enforced.
    """
    parent = tables.get(fk.table.casefold())
    if parent is None:
        return fk
    ref_columns = fk.ref_columns or parent.primary_key
    return ForeignKey(
        columns=tuple(spelled(child, name) for name in fk.columns),
        table=parent.name,
        ref_columns=tuple(spelled(parent, name) for name in ref_columns),
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
