"""Schema introspection and read-only opening, on the real databases and odd identifiers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest

from dialforge.environments.sql.schema import DatabaseSchema, introspect, quote_identifier
from dialforge.environments.sql.source import DatabaseSourceError, open_readonly

ODD_SCHEMA = '''
CREATE TABLE "order" ("group" INTEGER PRIMARY KEY, "select" TEXT NOT NULL, "Unit Price" REAL DEFAULT 1.5,
    "Created At" TEXT DEFAULT CURRENT_TIMESTAMP, "status" TEXT NOT NULL DEFAULT open);
CREATE TABLE "Line ""Items""" (
    "order" INTEGER NOT NULL REFERENCES "ORDER" ("group"),
    "Line No" INTEGER NOT NULL,
    "MixedCase" TEXT DEFAULT 'n/a',
    "qty" INTEGER NOT NULL CHECK ("qty" > 0),
    "double qty" INTEGER GENERATED ALWAYS AS ("qty" * 2),
    PRIMARY KEY ("order", "Line No"));
CREATE TABLE "audit log" ("when" TEXT, "what" TEXT NOT NULL, "order" INTEGER REFERENCES "order");
CREATE TABLE "Tags" ("Tag" TEXT PRIMARY KEY, "weight" INTEGER NOT NULL DEFAULT 1) WITHOUT ROWID;
CREATE TABLE "where" ("rowid" TEXT, "value" ANY, "blob" BLOB);
CREATE TABLE "Shipments" ("id" INTEGER PRIMARY KEY, "order" INTEGER, "line" INTEGER, "carrier" TEXT,
    FOREIGN KEY ("order", "line") REFERENCES "Line ""Items""" ("order", "Line No"));
CREATE TABLE "ORDERS" ("id" INTEGER PRIMARY KEY, "note" TEXT);
CREATE TABLE "a_table_whose_name_is_long_enough_to_push_every_tool_name_past_sixty_four" ("id" INTEGER PRIMARY KEY);
CREATE VIRTUAL TABLE "docs" USING fts5("body");
CREATE VIEW "open orders" AS SELECT * FROM "order" WHERE "status" = 'open';
INSERT INTO "order" VALUES (1, 'first', 2.5, '2024-01-01', 'open'), (2, 'second "quoted"', NULL, '2024-01-02', 'shut');
INSERT INTO "Line ""Items""" ("order", "Line No", "MixedCase", "qty")
    VALUES (1, 1, 'Alpha', 3), (1, 2, NULL, 1), (2, 1, 'b', 2);
INSERT INTO "audit log" VALUES ('monday', 'created order', 1), ('tuesday', 'shipped order', 1);
INSERT INTO "Tags" VALUES ('urgent', 5), ('fragile', 1);
INSERT INTO "where" VALUES ('r1', 42, x'0102'), ('r2', 'text', NULL);
INSERT INTO "Shipments" VALUES (1, 1, 2, 'Postal'), (2, NULL, NULL, 'Courier');
INSERT INTO "ORDERS" VALUES (7, 'upper-case twin');
INSERT INTO "a_table_whose_name_is_long_enough_to_push_every_tool_name_past_sixty_four" VALUES (1);
INSERT INTO "docs" VALUES ('full text');
'''
"""Spaces, embedded quotes, keywords, mixed case, composite keys, no primary key, WITHOUT ROWID, a shadowed
rowid, untyped and generated columns, a composite foreign key, a virtual table and a view."""

ODD_TABLES = {
    "a_table_whose_name_is_long_enough_to_push_every_tool_name_past_sixty_four",
    "audit log",
    'Line "Items"',
    "order",
    "ORDERS",
    "Shipments",
    "Tags",
    "where",
}


def odd_connection() -> apsw.Connection:
    conn = apsw.Connection(":memory:")
    conn.execute(ODD_SCHEMA)
    return conn


def readonly(test_data: Path, name: str) -> apsw.Connection:
    return apsw.Connection(str(test_data / "db" / f"{name}.sqlite"), flags=apsw.SQLITE_OPEN_READONLY)


def test_chinook_tables_keys_and_foreign_keys(test_data: Path) -> None:
    schema = introspect(readonly(test_data, "chinook"))

    assert [table.name for table in schema.tables] == [
        "Album", "Artist", "Customer", "Employee", "Genre", "Invoice",
        "InvoiceLine", "MediaType", "Playlist", "PlaylistTrack", "Track",
    ]  # fmt: skip
    line = schema.table("invoiceline")
    assert line.primary_key == ("InvoiceLineId",) and line.rowid_alias == "InvoiceLineId"
    assert {(fk.columns, fk.table, fk.ref_columns) for fk in line.foreign_keys} == {
        (("InvoiceId",), "Invoice", ("InvoiceId",)),
        (("TrackId",), "Track", ("TrackId",)),
    }
    assert line.row_count == 2240 and not line.without_rowid
    playlist_track = schema.table("PlaylistTrack")
    assert playlist_track.primary_key == ("PlaylistId", "TrackId") and playlist_track.rowid_alias is None
    (reports_to,) = schema.table("Employee").foreign_keys
    assert reports_to.columns == ("ReportsTo",) and reports_to.table == "Employee"
    total = schema.table("Invoice").column("total")
    assert (total.type, total.affinity, total.not_null) == ("NUMERIC(10,2)", "NUMERIC", True)


def test_northwind_order_details_and_skipped_tables(test_data: Path) -> None:
    schema = introspect(readonly(test_data, "northwind"))

    names = {table.name for table in schema.tables}
    assert len(names) == 13 and "sqlite_sequence" not in names and "Order Details" in names
    assert not names & {"Invoices", "Order Subtotals"}  # views are ignored
    details = schema.table("order details")
    assert details.primary_key == ("OrderID", "ProductID") and details.rowid_alias is None
    assert {(fk.columns, fk.table, fk.ref_columns) for fk in details.foreign_keys} == {
        (("OrderID",), "Orders", ("OrderID",)),
        (("ProductID",), "Products", ("ProductID",)),
    }
    assert details.column("Discount").default == "0" and details.column("Quantity").default == "1"
    assert schema.table("Products").column("Discontinued").default == "'0'"
    assert schema.table("Categories").rowid_alias == "CategoryID"
    customers = schema.table("Customers")
    assert customers.primary_key == ("CustomerID",) and customers.rowid_alias is None
    assert [c.name for c in customers.key_columns] == ["CustomerID"]


def test_table_lookup_names_the_tables_it_has(test_data: Path) -> None:
    schema = introspect(readonly(test_data, "chinook"))

    with pytest.raises(KeyError, match="Album"):
        schema.table("Albums")


def test_prompt_is_ddl_with_quoting_only_where_needed(test_data: Path) -> None:
    prompt = introspect(readonly(test_data, "northwind")).to_prompt()

    assert 'CREATE TABLE "Order Details" (  -- 2155 rows' in prompt
    assert "  PRIMARY KEY (OrderID, ProductID)," in prompt
    assert "  FOREIGN KEY (OrderID) REFERENCES Orders (OrderID)" in prompt
    assert "  Discontinued TEXT NOT NULL DEFAULT '0'," in prompt
    assert "CREATE TABLE Categories (  -- 8 rows" in prompt


def test_odd_identifiers_introspect() -> None:
    schema = introspect(odd_connection())

    assert {table.name for table in schema.tables} == ODD_TABLES  # no virtual, shadow or view tables
    items = schema.table('line "items"')
    assert items.primary_key == ("order", "Line No")
    assert items.column("double qty").generated and not items.column("qty").generated
    (to_order,) = items.foreign_keys
    assert (to_order.table, to_order.ref_columns) == ("order", ("group",))  # spelled as the table is
    (audit_fk,) = schema.table("audit log").foreign_keys
    assert audit_fk.ref_columns == ("group",)  # omitted in the DDL: the parent's primary key
    assert [c.name for c in schema.table("audit log").key_columns] == ["rowid"]
    assert [c.name for c in schema.table("where").key_columns] == ["_rowid_"]  # a column shadows "rowid"
    tags = schema.table("Tags")
    assert tags.without_rowid and tags.rowid_name is None and tags.rowid_alias is None
    (composite,) = schema.table("Shipments").foreign_keys
    assert composite.columns == ("order", "line") and composite.ref_columns == ("order", "Line No")
    assert schema.table("order").column("status").default == "open"
    assert [c.affinity for c in schema.table("where").columns] == ["TEXT", "NUMERIC", "BLOB"]
    assert 'CREATE TABLE "Line ""Items""" (  -- 3 rows' in schema.to_prompt()


@pytest.mark.parametrize("name", ["Order Details", 'say "hi"', "group", "MixedCase", "select", "a;b--c"])
def test_quote_identifier_round_trips(name: str) -> None:
    conn = apsw.Connection(":memory:")
    table, column = quote_identifier(name), quote_identifier(name + " col")

    conn.execute(f"CREATE TABLE {table} ({column} TEXT); INSERT INTO {table} ({column}) VALUES ('ok')")

    assert conn.execute(f"SELECT {column} FROM {table}").fetchall() == [("ok",)]
    assert introspect(conn).table(name).columns[0].name == name + " col"


# open_readonly


def test_open_readonly_gives_a_read_only_connection(test_data: Path) -> None:
    path = test_data / "db" / "chinook.sqlite"
    conn = open_readonly(path)

    assert conn.execute("SELECT count(*) FROM Album").fetchone() == (347,)
    with pytest.raises(apsw.ReadOnlyError):
        conn.execute("DELETE FROM Album")


def _text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.sqlite"
    path.write_text("these are notes, not a database\n" * 50)
    return path


def _empty_database(tmp_path: Path) -> Path:
    path = tmp_path / "empty.sqlite"
    apsw.Connection(str(path)).execute("PRAGMA user_version = 7")  # a valid header, no tables
    return path


def _truncated_copy(tmp_path: Path, test_data: Path) -> Path:
    path = tmp_path / "truncated.sqlite"
    shutil.copyfile(test_data / "db" / "chinook.sqlite", path)
    os.truncate(path, path.stat().st_size // 2)
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp, data: tmp / "missing.sqlite", "the file does not exist"),
        (lambda tmp, data: tmp, "is not a regular file"),
        (lambda tmp, data: _text_file(tmp), "is not a SQLite database"),
        (lambda tmp, data: _empty_database(tmp), "the database has no tables"),
        (_truncated_copy, "the database is corrupt"),
    ],
    ids=["missing", "directory", "not-a-database", "no-tables", "corrupt"],
)
def test_open_readonly_names_the_file_and_the_problem(
    tmp_path: Path, test_data: Path, make: Callable[[Path, Path], Path], problem: str
) -> None:
    path = make(tmp_path, test_data)

    with pytest.raises(DatabaseSourceError) as caught:
        open_readonly(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: {problem}") and "\n" not in message
    assert caught.value.path == path and isinstance(caught.value, ValueError)


def test_open_readonly_reports_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    writer = apsw.Connection(str(path))
    writer.execute("CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1)")

    with pytest.raises(DatabaseSourceError, match="locked by another process"):
        open_readonly(path, busy_timeout_ms=10)
    writer.execute("COMMIT")
    assert open_readonly(path).execute("SELECT x FROM t").fetchall() == [(1,)]


def test_schema_round_trips_through_json(test_data: Path) -> None:
    schema = introspect(readonly(test_data, "northwind"))

    assert DatabaseSchema.model_validate_json(schema.model_dump_json()) == schema
