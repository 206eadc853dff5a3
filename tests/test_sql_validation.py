"""Every SQL tool is checked before an agent sees it: each failure names what is wrong and how to fix it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from dialforge.environments.base import ToolResult
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.scaffold import scaffold_tools
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import ToolVerdict, validate_tool, validate_tools

SHOP = """
CREATE TABLE customer (
    customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, country TEXT
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customer (customer_id),
    status TEXT NOT NULL CHECK (status IN ('open', 'shipped')),
    placed TEXT NOT NULL
);
CREATE TABLE "Order Items" (
    order_id INTEGER NOT NULL REFERENCES orders (order_id),
    sku TEXT NOT NULL,
    "Unit Price" REAL NOT NULL,
    PRIMARY KEY (order_id, sku)
);
INSERT INTO customer VALUES (1, 'Ana Lima', 'ana@example.com', 'Brazil'), (2, 'Bo Chen', 'bo@example.com', 'China'),
    (3, 'Cy Diaz', 'cy@example.com', NULL);
INSERT INTO orders VALUES (10, 1, 'open', '2024-01-05'), (11, 1, 'shipped', '2024-02-11'),
    (12, 2, 'open', '2024-03-02');
INSERT INTO "Order Items" VALUES (10, 'A-1', 9.5), (10, 'B-2', 3.25), (11, 'A-1', 9.5), (12, 'C-3', 20.0);
"""

CUSTOMER_ID = {"type": "object", "properties": {"customer_id": {"type": "integer"}}, "required": ["customer_id"]}


@pytest.fixture(scope="module")
def shop() -> SQLDatabase:
    return SQLDatabase.from_script(SHOP, source="shop.sql")


def tool(sql: str, parameters: dict[str, Any] | None = None, **fields: Any) -> SQLTool:
    fields.setdefault("name", "a_tool")
    fields.setdefault("description", "What it does and what it returns.")
    return SQLTool(sql=sql, parameters=parameters or {"type": "object", "properties": {}}, **fields)


def reasons(verdict: ToolVerdict) -> str:
    assert not verdict.valid
    assert verdict.reasons
    return "\n".join(verdict.reasons)


def test_a_good_tool_is_valid_and_its_trial_used_real_data(shop: SQLDatabase) -> None:
    verdict = validate_tool(
        tool(
            "SELECT o.order_id, sum(i.\"Unit Price\") AS total, CASE WHEN o.status = 'open' THEN 1 ELSE 0 END AS open"
            ' FROM orders AS o JOIN "Order Items" AS i ON i.order_id = o.order_id'
            " WHERE o.customer_id = :customer_id GROUP BY o.order_id ORDER BY total DESC LIMIT 5",
            CUSTOMER_ID,
        ),
        shop,
    )

    assert verdict.valid, verdict.reasons
    assert verdict.reasons == []
    # the customer of the query's first row (a witness): the trial returned rows
    assert verdict.trial == {"arguments": {"customer_id": 2}, "result": "1 row", "attempts": 1, "rows": 1}


# Name, description, parameters


def test_a_name_that_is_not_snake_case_is_rejected(shop: SQLDatabase) -> None:
    verdict = validate_tool(tool("SELECT name FROM customer", name="getCustomers"), shop)
    assert "the name 'getCustomers' is not snake_case" in reasons(verdict)


def test_names_must_be_unique_in_a_list(shop: SQLDatabase) -> None:
    first, second = validate_tools([tool("SELECT name FROM customer")] * 2, shop)

    assert first.valid
    assert "the name 'a_tool' is already taken by another tool" in reasons(second)


def test_names_taken_before_count_too(shop: SQLDatabase) -> None:
    (verdict,) = validate_tools([tool("SELECT name FROM customer")], shop, reserved_names={"a_tool"})
    assert "already taken" in reasons(verdict)


def test_an_empty_description_is_rejected(shop: SQLDatabase) -> None:
    verdict = validate_tool(tool("SELECT name FROM customer", description="  "), shop)
    assert "the description is empty" in reasons(verdict)


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"type": "array"}, 'parameters must be a JSON schema with "type": "object"'),
        ({"type": "object", "properties": {}, "required": ["x"]}, "required names parameters that are not in"),
        ({"type": "object", "properties": {"x": {"type": "text"}}}, "parameters is not a valid JSON schema"),
    ],
)
def test_parameters_must_be_an_object_schema(shop: SQLDatabase, parameters: dict[str, Any], reason: str) -> None:
    verdict = validate_tool(tool("SELECT name FROM customer", parameters), shop)
    assert reason in reasons(verdict)


# Statement


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELEC name FROM customer", "the SQL does not parse"),
        ("SELECT name FROM customer; DELETE FROM customer", "exactly one statement is allowed, this SQL has 2"),
        ("DROP TABLE customer", "only SELECT, INSERT, UPDATE or DELETE is allowed"),
    ],
)
def test_the_sql_must_be_one_allowed_statement(shop: SQLDatabase, sql: str, reason: str) -> None:
    assert reason in reasons(validate_tool(tool(sql), shop))


def test_a_select_declared_write_is_rejected(shop: SQLDatabase) -> None:
    verdict = validate_tool(tool("SELECT name FROM customer", kind="write"), shop)
    assert "the statement (SELECT) only reads rows: declare kind 'read', not 'write'" in reasons(verdict)


def test_an_update_declared_read_is_rejected(shop: SQLDatabase) -> None:
    verdict = validate_tool(tool("UPDATE customer SET country = 'Peru' WHERE customer_id = 1"), shop)
    assert "the statement (UPDATE) changes rows: declare kind 'write', not 'read'" in reasons(verdict)


# Bind parameters


def test_a_parameter_the_sql_uses_must_be_declared(shop: SQLDatabase) -> None:
    verdict = validate_tool(tool("SELECT name FROM customer WHERE customer_id = :customerid", CUSTOMER_ID), shop)
    text = reasons(verdict)
    assert 'the SQL uses :customerid but parameters.properties does not declare it; did you mean "customer_id"?' in text
    assert "parameter 'customer_id' is declared but the SQL never uses :customer_id" in text


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT name FROM customer WHERE customer_id = ?", "positional '?' parameter: name it"),
        ("SELECT name FROM customer WHERE customer_id = @customer_id", "uses @customer_id: only :name parameters"),
        ("SELECT name FROM customer WHERE customer_id = $customer_id", "uses $customer_id: only :name parameters"),
    ],
)
def test_only_named_colon_parameters_are_supported(shop: SQLDatabase, sql: str, reason: str) -> None:
    assert reason in reasons(validate_tool(tool(sql, CUSTOMER_ID), shop))


# Tables and columns


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT name FROM customers", 'unknown table "customers"; did you mean "customer"?'),
        ("SELECT name FROM invoices", 'unknown table "invoices"; the tables are customer, Order Items, orders'),
        ("SELECT nme FROM customer", 'unknown column "nme": "customer" has no such column; did you mean "name"?'),
        ("SELECT c.emial FROM customer AS c", 'unknown column "emial": "customer" has no such column; did you mean'),
        ("SELECT x.name FROM customer AS c", 'no table or alias is named "x" (the statement has c)'),
        ('SELECT "Unit Prize" FROM "Order Items"', 'did you mean "Unit Price"?'),
        ("UPDATE customer SET nmae = 'X' WHERE customer_id = 1", 'unknown column "nmae"'),
        ("INSERT INTO customer (name, mail) VALUES ('A', 'a@b.c')", 'unknown column "mail"'),
        ("SELECT * FROM temp.customer", "only the tables of the database (main) can be used"),
        ("SELECT name FROM sqlite_master", 'unknown table "sqlite_master"'),
    ],
)
def test_tables_and_columns_must_resolve(shop: SQLDatabase, sql: str, reason: str) -> None:
    kind = "write" if sql.startswith(("UPDATE", "INSERT")) else "read"
    assert reason in reasons(validate_tool(tool(sql, kind=kind), shop))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT NAME, Email FROM Customer WHERE COUNTRY IS NOT NULL",  # SQLite names are case-insensitive
        'SELECT "unit price" FROM "order items"',
        "WITH spend AS (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id)"
        " SELECT c.name, s.n FROM spend AS s JOIN customer AS c USING (customer_id) ORDER BY s.n DESC",
        "WITH ids(cid) AS (SELECT customer_id FROM orders) SELECT cid FROM ids",
        "SELECT status AS state, count(*) AS n FROM orders GROUP BY state HAVING n > 0 ORDER BY n",
        "SELECT name, (SELECT count(*) FROM orders AS o WHERE o.customer_id = c.customer_id) AS n FROM customer AS c",
        'SELECT name FROM customer UNION SELECT sku FROM "Order Items" ORDER BY name',
        "SELECT rowid, name FROM customer",
        "SELECT t.name FROM (SELECT name FROM customer) AS t",
    ],
)
def test_ctes_aliases_and_subqueries_resolve(shop: SQLDatabase, sql: str) -> None:
    verdict = validate_tool(tool(sql), shop)
    assert verdict.valid, verdict.reasons


def test_upserts_and_returning_resolve_against_the_target(shop: SQLDatabase) -> None:
    parameters = {
        "type": "object",
        "properties": {"email": {"type": "string"}, "name": {"type": "string"}},
        "required": ["email", "name"],
    }
    sql = (
        "INSERT INTO customer (name, email) VALUES (:name, :email)"
        " ON CONFLICT (email) DO UPDATE SET name = excluded.name RETURNING customer_id"
    )
    verdict = validate_tool(tool(sql, parameters, kind="write"), shop)
    assert verdict.valid, verdict.reasons


# Trial execution


def test_a_statement_that_fails_when_run_is_rejected_with_the_message(shop: SQLDatabase) -> None:
    verdict = validate_tool(tool("SELECT abs(-9223372036854775807 - 1) AS too_big"), shop)

    assert "the trial run failed (execution_error)" in reasons(verdict)
    assert "integer overflow" in reasons(verdict)


def test_a_refused_statement_fails_at_the_first_trial(shop: SQLDatabase) -> None:
    verdict = validate_tool(tool("SELECT load_extension('evil') AS x"), shop)

    assert "the trial run failed (refused)" in reasons(verdict)
    assert verdict.trial is not None and verdict.trial["attempts"] == 1


def test_a_write_that_always_breaks_a_constraint_is_rejected(shop: SQLDatabase) -> None:
    parameters = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    verdict = validate_tool(tool("INSERT INTO customer (name) VALUES (:name)", parameters, kind="write"), shop)

    assert "constraint_violation" in reasons(verdict)
    assert "NOT NULL constraint failed: customer.email" in reasons(verdict)
    assert verdict.trial is not None and verdict.trial["attempts"] == 3


def test_a_constraint_violation_is_fine_when_another_trial_succeeds(
    shop: SQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute = SQLEnvironment.execute
    calls: list[dict[str, Any]] = []

    def first_fails(self: SQLEnvironment, name: str, arguments: dict[str, Any]) -> ToolResult:
        calls.append(arguments)
        if len(calls) == 1:
            return ToolResult.failure("constraint_violation", "CHECK constraint failed")
        return execute(self, name, arguments)

    monkeypatch.setattr(SQLEnvironment, "execute", first_fails)
    parameters = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
        "required": ["name", "email"],
    }
    sql = "INSERT INTO customer (name, email) VALUES (:name, :email)"
    verdict = validate_tool(tool(sql, parameters, kind="write"), shop)

    assert verdict.valid, verdict.reasons
    assert verdict.trial is not None
    assert verdict.trial["attempts"] == 2
    assert verdict.trial["result"] == "rows_affected 1, last_row_id 4"


def test_a_get_tool_that_finds_no_row_for_any_draw_proves_nothing(shop: SQLDatabase) -> None:
    parameters = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    sql = "SELECT customer_id FROM customer WHERE name = :name || ' the second'"
    verdict = validate_tool(tool(sql, parameters, returns={"type": "object"}), shop)

    assert "no trial returned a row" in reasons(verdict)
    assert verdict.trial is not None and verdict.trial["result"].startswith("not_found")


def test_arguments_come_from_the_column_a_parameter_meets(shop: SQLDatabase) -> None:
    parameters = {
        "type": "object",
        "properties": {"who": {"type": "string"}, "sku": {"type": "string"}},
        "required": ["who", "sku"],
    }
    sql = (
        'SELECT o.order_id FROM orders AS o JOIN "Order Items" AS i ON i.order_id = o.order_id'
        " JOIN customer AS c ON c.customer_id = o.customer_id WHERE lower(c.name) = lower(:who) AND i.sku = :sku"
    )
    verdict = validate_tool(tool(sql, parameters), shop)

    assert verdict.trial is not None
    assert verdict.trial["arguments"] == {"who": "Ana Lima", "sku": "A-1"}
    assert verdict.trial["result"] == "2 rows"


def test_a_delete_trial_picks_a_row_nothing_refers_to(shop: SQLDatabase) -> None:
    sql = "DELETE FROM customer WHERE customer_id = :customer_id"
    verdict = validate_tool(tool(sql, CUSTOMER_ID, kind="write"), shop)

    assert verdict.valid, verdict.reasons
    assert verdict.trial == {"arguments": {"customer_id": 3}, "result": "rows_affected 1", "attempts": 1, "rows": 1}


def test_results_must_be_json_serialisable(shop: SQLDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SQLEnvironment, "execute", lambda self, name, arguments: ToolResult(content=[{"x": object()}]))
    verdict = validate_tool(tool("SELECT name FROM customer"), shop)
    assert "the result is not JSON-serialisable" in reasons(verdict)


def test_trials_never_change_the_database(shop: SQLDatabase) -> None:
    before = shop.environment(()).digest()
    writes = [
        tool("DELETE FROM customer WHERE customer_id = :customer_id", CUSTOMER_ID, name="delete_it", kind="write"),
        tool("UPDATE orders SET status = 'shipped' WHERE customer_id = :customer_id", CUSTOMER_ID, kind="write"),
    ]
    assert all(verdict.valid for verdict in validate_tools(writes, shop))
    assert shop.environment(()).digest() == before


# The shared databases


@pytest.mark.parametrize("name", ["chinook", "northwind"])
def test_every_scaffolded_tool_validates_and_leaves_the_file_alone(test_data: Path, name: str) -> None:
    path = test_data / "db" / f"{name}.sqlite"
    file_digest = hashlib.sha256(path.read_bytes()).hexdigest()
    database = SQLDatabase.open(path)
    state = database.environment(()).digest()
    tools = scaffold_tools(database.schema)

    verdicts = validate_tools(tools, database)

    assert [v for v in verdicts if not v.valid] == []
    assert all(v.trial is not None for v in verdicts)
    assert database.environment(()).digest() == state
    assert hashlib.sha256(path.read_bytes()).hexdigest() == file_digest
