"""Scaffolded SQL tools: readable unique names, honest schemas, and every tool runs on the real data.

Tools are executed here directly with apsw (parameters missing from a call bind as NULL, as ``SQLTool``
documents) on a copy of the database, with double-quoted string literals disabled so that an identifier
that does not resolve is an error instead of a silent string.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
import sqlglot
from jsonschema import Draft202012Validator
from sqlglot import exp

from dialforge.environments.sql.scaffold import scaffold_tools, tools_json, write_tools_json
from dialforge.environments.sql.schema import DatabaseSchema, Table, introspect, quote_identifier
from dialforge.environments.sql.tool import SQLTool
from dialforge.pipeline.supplied import load_sql_tools
from test_sql_schema import ODD_SCHEMA

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SAMPLED_ROWS = 20


def connect(path: str | Path, flags: int = apsw.SQLITE_OPEN_READWRITE) -> apsw.Connection:
    conn = apsw.Connection(str(path), flags=flags)
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
    conn.execute("PRAGMA foreign_keys = ON")  # as the SQL environment runs
    return conn


def sample(test_data: Path, name: str) -> apsw.Connection:
    """A sample database from tests/data, read in place (read-only)."""
    return connect(test_data / "db" / f"{name}.sqlite", apsw.SQLITE_OPEN_READONLY)


def odd() -> apsw.Connection:
    """The odd-identifier schema, in memory."""
    conn = connect(":memory:")
    conn.execute(ODD_SCHEMA)
    return conn


@pytest.fixture(params=["chinook", "northwind", "odd"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> apsw.Connection:
    """A private, writable copy: the files in tests/data are never opened for writing."""
    if request.param == "odd":
        return odd()
    test_data = request.getfixturevalue("test_data")
    copy = tmp_path / f"{request.param}.sqlite"
    shutil.copyfile(test_data / "db" / f"{request.param}.sqlite", copy)
    return connect(copy)


def target(tool: SQLTool, schema: DatabaseSchema) -> Table:
    """The table a tool reads or writes: the first one its SQL names."""
    return schema.table(sqlglot.parse_one(tool.sql, read="sqlite").find(exp.Table).name)


def call(conn: apsw.Connection, tool: SQLTool, arguments: dict[str, Any]) -> Any:
    """Run a tool as an environment would, checking the arguments and the result against the tool's schemas."""
    Draft202012Validator(tool.parameters).validate(arguments)
    cursor = conn.cursor()
    cursor.row_trace = lambda cur, row: jsonable(
        dict(zip([name for name, _ in cur.get_description()], row, strict=True))
    )
    rows = cursor.execute(tool.sql, {name: arguments.get(name) for name in tool.parameters["properties"]}).fetchall()
    if tool.kind == "write":
        result: Any = {"rows_affected": conn.changes()}
        if tool.sql.startswith("INSERT"):
            result["last_row_id"] = conn.last_insert_rowid()
    elif tool.returns and tool.returns["type"] == "object":
        assert len(rows) <= 1, tool.name
        result = rows[0] if rows else None
    else:
        result = rows
    if result is not None:
        Draft202012Validator(tool.returns).validate(result)
    return result


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """Blobs as base64, as a JSON result carries them."""
    return {
        name: base64.b64encode(value).decode() if isinstance(value, bytes) else value for name, value in row.items()
    }


def first_rows(conn: apsw.Connection, table: Table, limit: int = SAMPLED_ROWS) -> list[dict[str, Any]]:
    columns = table.result_columns
    order = table.key_columns or columns
    sql = (
        f"SELECT {', '.join(quote_identifier(c.name) for c in columns)} FROM {quote_identifier(table.name)}"
        f" ORDER BY {', '.join(quote_identifier(c.name) for c in order)} LIMIT {limit}"
    )
    return [dict(zip([c.name for c in columns], row, strict=True)) for row in conn.execute(sql)]


def column_of(tool: SQLTool, parameter: str) -> str | None:
    return tool.parameters["properties"][parameter].get("title")


def sample_arguments(conn: apsw.Connection, schema: DatabaseSchema, tool: SQLTool) -> Iterator[dict[str, Any]]:
    """Candidate arguments drawn from the data: a substring of a text value for searches, else the values of
    real rows for the required (column-bound) parameters."""
    required = tool.parameters.get("required", [])
    if "query" in required:
        for row in first_rows(conn, target(tool, schema)):
            for value in row.values():
                if isinstance(value, str) and value:
                    yield {"query": value[1:4] or value}
        return
    columns = {name: column_of(tool, name) for name in required}
    for table in schema.tables:
        if not set(columns.values()) <= {column.name for column in table.result_columns}:
            continue
        for row in first_rows(conn, table):
            arguments = {name: row[column] for name, column in columns.items()}
            if None not in arguments.values():
                yield arguments


def seed_empty_tables(conn: apsw.Connection, schema: DatabaseSchema) -> None:
    """Give every empty table a row, parents first, so that following its foreign keys finds something."""
    empty = {table.name for table in schema.tables if not first_rows(conn, table, 1)}
    while empty:
        ready = [
            table
            for table in map(schema.table, sorted(empty))
            if not any(fk.table in empty - {table.name} for fk in table.foreign_keys)
        ]
        assert ready, f"foreign keys form a cycle among the empty tables {empty}"
        for table in ready:
            row = fresh_row(conn, schema, table)
            columns = ", ".join(map(quote_identifier, row))
            conn.execute(
                f"INSERT INTO {quote_identifier(table.name)} ({columns}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            empty.remove(table.name)


def fresh_row(conn: apsw.Connection, schema: DatabaseSchema, table: Table) -> dict[str, Any]:
    """Values for a new row, as JSON can carry them: copied from the first row (so CHECK constraints hold), with
    foreign keys pointing at parent rows and a primary key no row has yet; the rowid alias is left to SQLite."""
    rows = [jsonable(row) for row in first_rows(conn, table, 1)]
    row = rows[0] if rows else {c.name: _placeholder(c.affinity) for c in table.columns}
    row = {c.name: row[c.name] for c in table.columns if not c.generated and c.name != table.rowid_alias}
    if not rows:
        for fk in table.foreign_keys:
            if parents := first_rows(conn, schema.table(fk.table), 1):
                row.update(zip(fk.columns, (parents[0][ref] for ref in fk.ref_columns), strict=True))
    elif table.primary_key and table.rowid_alias is None:
        row.update(new_key(conn, schema, table, row))
    return row


def new_key(conn: apsw.Connection, schema: DatabaseSchema, table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Change one primary-key column of ``row`` so that no row has the key: past the largest value for a free
    column, else another parent's value for a column that is a foreign key."""
    parents = {fk.columns[0]: fk for fk in table.foreign_keys if len(fk.columns) == 1}
    if free := [name for name in table.primary_key if name not in parents]:
        sql = f"SELECT max({quote_identifier(free[0])}) FROM {quote_identifier(table.name)}"
        (largest,) = conn.execute(sql).fetchone()
        return {free[0]: largest + 1 if isinstance(largest, int | float) else f"{largest}-new"}
    keys = ", ".join(map(quote_identifier, table.primary_key))
    taken = set(conn.execute(f"SELECT {keys} FROM {quote_identifier(table.name)}").fetchall())
    for column in reversed(table.primary_key):
        ref = parents[column].ref_columns[0]
        for parent in first_rows(conn, schema.table(parents[column].table), 10_000):
            candidate = row | {column: parent[ref]}
            if tuple(candidate[name] for name in table.primary_key) not in taken:
                return {column: parent[ref]}
    raise AssertionError(f"no free key for a new row of {table.name}")


def _placeholder(affinity: str) -> Any:
    return {"INTEGER": 1, "REAL": 1.5, "NUMERIC": 2}.get(affinity, "x")


# Names


def test_chinook_names_are_readable(test_data: Path) -> None:
    schema = introspect(sample(test_data, "chinook"))
    names = [tool.name for tool in scaffold_tools(schema)]

    for expected in (
        "get_invoice",
        "search_invoices",
        "list_invoice_lines",
        "get_invoice_lines_for_invoice",
        "get_invoice_for_invoice_line",
        "get_tracks_for_album",
        "get_playlist_tracks_for_playlist",
        "get_employee_by_reports_to_for_employee",
        "get_employees_by_reports_to_for_employee",
        "create_invoice_line",
        "update_customer",
        "delete_playlist_track",
    ):
        assert expected in names
    assert "update_playlist_track" not in names  # both columns are the key: nothing left to update
    assert "search_invoice_lines" not in names  # no text column
    assert len(names) == 85


def test_northwind_names_handle_spaces_and_plurals(test_data: Path) -> None:
    schema = introspect(sample(test_data, "northwind"))
    names = [tool.name for tool in scaffold_tools(schema)]

    for expected in (
        "get_order_detail",
        "list_order_details",
        "get_order_details_for_order",
        "get_product_for_order_detail",
        "list_categories",
        "get_category",
        "get_territories_for_region",
        "get_employee_territories_for_employee",
        "search_customers",
    ):
        assert expected in names
    assert len(names) == 101


def test_names_are_valid_unique_and_deterministic(database: apsw.Connection) -> None:
    schema = introspect(database)
    tools = scaffold_tools(schema)

    names = [tool.name for tool in tools]
    assert all(TOOL_NAME.match(name) for name in names), names
    assert len(set(names)) == len(names)
    assert tools == scaffold_tools(introspect(database))
    for tool in tools:
        tool.to_spec()  # the OpenAI name rule and a valid parameter schema


def test_odd_names_are_deduplicated_and_cut() -> None:
    names = [tool.name for tool in scaffold_tools(introspect(odd()))]

    assert {"get_order", "get_order_2", "list_orders", "list_orders_2"} <= set(names)  # "order" and "ORDERS"
    assert {"get_line_item", "get_line_items_for_order", "get_line_item_for_shipment", "list_audit_logs"} <= set(names)
    assert {"create_tag", "list_wheres"} <= set(names)
    long = [name for name in names if "_a_table_whose_name_is_long" in name]
    assert len(long) == 4 and all(len(name) == 64 for name in long)  # get, list, create, delete
    assert "get_where" in names and names.count("get_where") == 1


# Schemas


def test_bind_parameters_and_declared_parameters_match(database: apsw.Connection) -> None:
    for tool in scaffold_tools(introspect(database)):
        statement = sqlglot.parse_one(tool.sql, read="sqlite")
        bound = {placeholder.name for placeholder in statement.find_all(exp.Placeholder)}
        assert bound == set(tool.parameters["properties"]), tool.name
        assert set(tool.parameters.get("required", [])) <= bound


def test_parameter_types_follow_affinity(test_data: Path) -> None:
    tools = {t.name: t for t in scaffold_tools(introspect(sample(test_data, "chinook")))}

    invoice = tools["create_invoice"].parameters
    assert invoice["required"] == ["CustomerId", "InvoiceDate", "Total"]  # InvoiceId is the rowid alias
    assert invoice["properties"]["InvoiceId"]["type"] == ["integer", "null"]
    assert invoice["properties"]["Total"]["type"] == "number"
    assert invoice["properties"]["InvoiceDate"]["type"] == "string"  # DATETIME: NUMERIC affinity, text values
    assert invoice["properties"]["BillingState"]["type"] == ["string", "null"]
    assert tools["get_invoice"].returns["type"] == "object"
    assert tools["list_invoices"].returns["type"] == "array"
    assert tools["create_invoice"].returns["required"] == ["rows_affected", "last_row_id"]
    assert tools["delete_invoice"].returns["required"] == ["rows_affected"]
    assert tools["get_invoice"].description.startswith(
        "Get one invoice by its InvoiceId. Returns the invoice row (InvoiceId, CustomerId, InvoiceDate,"
    )
    writes = {name for name, tool in tools.items() if tool.kind == "write"}
    assert writes == {name for name in tools if name.startswith(("create_", "update_", "delete_"))}


def test_northwind_defaults_and_text_keys(test_data: Path) -> None:
    tools = {t.name: t for t in scaffold_tools(introspect(sample(test_data, "northwind")))}

    assert tools["create_order_detail"].parameters["required"] == ["OrderID", "ProductID"]
    assert "COALESCE(:Discontinued, ('0'))" in tools["create_product"].sql
    assert tools["create_customer"].parameters["required"] == ["CustomerID"]  # a text key is not assigned
    assert tools["get_customer"].parameters["properties"]["CustomerID"]["type"] == "string"


# Execution


def test_every_read_tool_returns_rows(database: apsw.Connection) -> None:
    schema = introspect(database)
    seed_empty_tables(database, schema)

    for tool in scaffold_tools(schema):
        if tool.kind == "read":
            found = next(
                (args for args in sample_arguments(database, schema, tool) if call(database, tool, args)), None
            )
            assert found is not None, f"{tool.name} found no rows for any sampled arguments"


def test_list_filters_and_limits(database: apsw.Connection) -> None:
    schema = introspect(database)
    seed_empty_tables(database, schema)

    for tool in scaffold_tools(schema):
        if not tool.name.startswith("list_"):
            continue
        table = target(tool, schema)
        row = first_rows(database, table, 1)[0]
        filters = {
            name: row[column]
            for name in tool.parameters["properties"]
            if (column := column_of(tool, name)) and isinstance(row[column], int | str)
        }
        assert jsonable(row) in call(database, tool, filters), tool.name
        assert len(call(database, tool, {"limit": 1})) == 1
        assert len(call(database, tool, {})) == min(20, len(first_rows(database, table, 1000)))


def test_limit_is_clamped_even_without_schema_checks(test_data: Path) -> None:
    conn = sample(test_data, "chinook")
    tool = next(t for t in scaffold_tools(introspect(conn)) if t.name == "list_tracks")

    unfiltered = dict.fromkeys(tool.parameters["properties"])

    for limit, expected in ((-1, 1), (0, 1), (5, 5), (10_000, 100), (None, 20)):
        assert len(conn.execute(tool.sql, unfiltered | {"limit": limit}).fetchall()) == expected


def test_every_write_tool_creates_updates_and_deletes_a_fresh_row(database: apsw.Connection) -> None:
    schema = introspect(database)
    seed_empty_tables(database, schema)
    tools = scaffold_tools(schema)
    writes: dict[tuple[str, str], SQLTool] = {
        (tool.name.split("_")[0], target(tool, schema).name): tool for tool in tools if tool.kind == "write"
    }
    assert {verb for verb, _ in writes} == {"create", "update", "delete"}

    for table in schema.tables:
        create, update, delete = (writes.get((verb, table.name)) for verb in ("create", "update", "delete"))
        assert create is not None and delete is not None, table.name
        row = fresh_row(database, schema, table)
        arguments = {
            name: row[column_of(create, name)]
            for name in create.parameters["properties"]
            if column_of(create, name) in row
        }

        created = call(database, create, arguments)

        assert created["rows_affected"] == 1, table.name
        key = {
            column.name: created["last_row_id"]
            if column.name in (table.rowid_alias, table.rowid_name)
            else row[column.name]
            for column in table.key_columns
        }
        before = stored(database, table, key)
        assert before is not None and all(before[name] == value for name, value in row.items()), table.name
        key_arguments = {name: key[column_of(delete, name)] for name in delete.parameters["properties"]}
        if update is not None:
            column, value = changed_value(table, before)
            parameter = next(name for name in update.parameters["properties"] if column_of(update, name) == column)
            assert call(database, update, key_arguments | {parameter: value})["rows_affected"] == 1, update.name
            assert stored(database, table, key) == before | {column: value}, update.name
        assert call(database, delete, key_arguments)["rows_affected"] == 1, delete.name
        assert stored(database, table, key) is None
        assert call(database, delete, key_arguments)["rows_affected"] == 0


def stored(conn: apsw.Connection, table: Table, key: dict[str, Any]) -> dict[str, Any] | None:
    where = " AND ".join(f"{quote_identifier(name)} = ?" for name in key)
    columns = [column.name for column in table.columns]
    sql = f"SELECT {', '.join(map(quote_identifier, columns))} FROM {quote_identifier(table.name)} WHERE {where}"
    rows = conn.execute(sql, tuple(key.values())).fetchall()
    return dict(zip(columns, rows[0], strict=True)) if rows else None


def changed_value(table: Table, row: dict[str, Any]) -> tuple[str, Any]:
    """A non-key column and a new value for it that keeps CHECK constraints: longer text, or a number plus one."""
    foreign = {name for fk in table.foreign_keys for name in fk.columns}
    changeable = [c for c in table.columns if not (c.primary_key or c.generated or c.name in foreign)]
    for column in changeable:
        if isinstance(row[column.name], str):
            return column.name, row[column.name] + " (changed)"
    column = next(c for c in changeable if isinstance(row[c.name], int | float))
    return column.name, row[column.name] + 1


def test_update_changes_only_what_is_given(test_data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "chinook.sqlite"
    shutil.copyfile(test_data / "db" / "chinook.sqlite", copy)
    conn = connect(copy)
    tools = {t.name: t for t in scaffold_tools(introspect(conn))}
    before = call(conn, tools["get_customer"], {"CustomerId": 1})

    result = call(conn, tools["update_customer"], {"CustomerId": 1, "City": "Lisbon", "Company": None})

    assert result["rows_affected"] == 1
    assert call(conn, tools["get_customer"], {"CustomerId": 1}) == before | {"City": "Lisbon"}


def test_search_and_following_keys_on_chinook(test_data: Path) -> None:
    conn = sample(test_data, "chinook")
    tools = {t.name: t for t in scaffold_tools(introspect(conn))}

    lines = call(conn, tools["get_invoice_lines_for_invoice"], {"InvoiceId": 1})
    assert [line["InvoiceLineId"] for line in lines] == [1, 2]
    assert call(conn, tools["get_invoice_for_invoice_line"], {"InvoiceLineId": 2})["InvoiceId"] == 1
    assert call(conn, tools["get_employee_by_reports_to_for_employee"], {"EmployeeId": 2})["EmployeeId"] == 1
    assert [a["Title"] for a in call(conn, tools["search_albums"], {"query": "salute"})] == [
        "For Those About To Rock We Salute You"
    ]
    assert call(conn, tools["get_invoice"], {"InvoiceId": 99_999}) is None


# tools.json, and the loader that reads it and a run's artifacts/tools.jsonl alike


def test_tools_json_round_trips(tmp_path: Path, test_data: Path) -> None:
    tools = scaffold_tools(introspect(sample(test_data, "northwind")))
    path = tmp_path / "tools.json"

    write_tools_json(tools, path)

    assert load_sql_tools(path) == tools
    assert path.read_text().startswith('[\n  {\n    "name": "get_category"')
    assert json.loads(tools_json(tools))[0]["kind"] == "read"


def test_tools_jsonl_rows_of_a_run_load_by_domain(tmp_path: Path, test_data: Path) -> None:
    tools = scaffold_tools(introspect(sample(test_data, "chinook")))[:3]
    path = tmp_path / "tools.jsonl"
    rows = [{"domain": domain, **tool.model_dump(exclude_none=True)} for domain in ("music", "other") for tool in tools]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    assert load_sql_tools(path, "music") == tools
    with pytest.raises(ValueError, match=r"holds the tools of 2 domains \(music, other\); name one"):
        load_sql_tools(path)


def test_load_sql_tools_accepts_openai_entries(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    parameters = {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}
    path.write_text(
        json.dumps(
            [
                {
                    "type": "function",
                    "function": {"name": "get_thing", "description": "One thing.", "parameters": parameters},
                    "sql": "SELECT * FROM thing WHERE id = :id",
                },
                {
                    "type": "function",
                    "function": {
                        "name": "drop_thing",
                        "parameters": parameters,
                        "sql": "DELETE FROM thing WHERE id = :id",
                    },
                    "kind": "write",
                },
            ]
        )
    )

    first, second = load_sql_tools(path)

    assert (first.name, first.sql, first.kind, first.parameters) == (
        "get_thing",
        "SELECT * FROM thing WHERE id = :id",
        "read",
        parameters,
    )
    assert (second.name, second.description, second.kind) == ("drop_thing", "", "write")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[{not json", "not valid JSON"),
        ('[{"name": "ok", "description": "", "sql": "SELECT 1"}, 3]', "entry 1: not a valid SQL tool: expected a JSON"),
        ('[{"name": "no sql", "description": ""}]', "entry 0: not a valid SQL tool: "),
        ('[{"name": "has space", "description": "", "sql": "SELECT 1"}]', "entry 0: not a valid SQL tool: name"),
        ('[{"type": "function", "function": {"name": "f"}}]', "entry 0: not a valid SQL tool: sql: Field required"),
        ('{"name": "a", "description": "", "sql": "SELECT 1", "extra": 1}', "line 1: not a valid SQL tool: extra"),
        (
            '[{"name": "a", "description": "", "sql": "SELECT 1"},'
            ' {"name": "a", "description": "", "sql": "SELECT 2"}]',
            "entry 1: the tool name 'a' is already used",
        ),
    ],
)
def test_load_sql_tools_errors_name_the_file_and_entry(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "tools.json"
    path.write_text(content)

    with pytest.raises(ValueError) as caught:
        load_sql_tools(path)

    assert str(caught.value).startswith(f"{path}") and problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_load_sql_tools_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.json: cannot be read"):
        load_sql_tools(tmp_path / "missing.json")
