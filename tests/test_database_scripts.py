"""Database scripts as dump tools write them: long multi-row INSERTs load; a statement over the limit is
named by its line and first words, with the limit and the fix."""

from __future__ import annotations

import pytest

from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.sandbox import DATABASE_SCRIPT_LIMITS, MAX_SQL_CHARS, SandboxLimits
from dialforge.environments.sql.source import DatabaseSourceError
from dialforge.environments.sql.tool import SQLTool


def multi_row_insert(first: int, rows: int) -> str:
    values = ",\n".join(f"({i}, 'customer number {i}', 'note {'x' * 40}')" for i in range(first, first + rows))
    return f"INSERT INTO customer VALUES\n{values};\n"


def dump(statements: int, rows: int) -> str:
    header = "PRAGMA foreign_keys = OFF;\nCREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, note TEXT);\n"
    return header + "".join(multi_row_insert(i * rows, rows) for i in range(statements))


def test_a_dump_of_100_kb_inserts_loads() -> None:
    script = dump(statements=5, rows=1500)
    assert all(len(statement) > 100_000 for statement in script.split(";\n")[2:-1])
    database = SQLDatabase.from_script(script, source="dump.sql")
    assert database.schema.table("customer").row_count == 7500


def test_model_written_sql_keeps_its_tight_limit(chinook: SQLDatabase) -> None:
    long_sql = "SELECT 1 WHERE 1 IN (" + ", ".join(["1"] * 10_000) + ")"
    assert len(long_sql) > MAX_SQL_CHARS
    result = chinook.environment([]).query(long_sql)
    assert not result.ok
    assert DATABASE_SCRIPT_LIMITS.max_sql_bytes > SandboxLimits().max_sql_bytes == MAX_SQL_CHARS


def test_a_statement_over_the_limit_is_named_with_the_limit_and_the_fix() -> None:
    script = dump(statements=3, rows=1500)
    limits = SandboxLimits(time_budget_s=10, max_sql_bytes=150_000, max_value_bytes=150_000)
    script += multi_row_insert(10_000, 3000)  # about 200 KB, over this limit
    line = script.count("\n", 0, script.rindex("INSERT INTO customer")) + 1
    with pytest.raises(DatabaseSourceError) as error:
        SQLDatabase.from_script(script, source="dump.sql", limits=limits)
    message = str(error.value)
    assert f"line {line}" in message and "INSERT INTO customer" in message
    assert "150,000" in message and "split" in message


def test_a_sqlite3_dump_loads_with_its_pragma_and_transaction() -> None:
    script = (
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\n"
        + "".join(f"INSERT INTO t VALUES({i},'row {i}');\n" for i in range(2000))
        + "COMMIT;\nBEGIN;\nINSERT INTO t VALUES(2000,'after the commit');\n"
    )
    assert SQLDatabase.from_script(script, source="dump.sql").schema.table("t").row_count == 2001


def test_a_failing_statement_is_named_by_its_line() -> None:
    script = (
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT CHECK (v IN ('a', 'b')));\n\nINSERT INTO t VALUES (1, 'c');\n"
    )
    with pytest.raises(DatabaseSourceError, match="CHECK constraint failed") as error:
        SQLDatabase.from_script(script, source="t.sql")
    assert "line 3" in str(error.value) and "INSERT INTO t" in str(error.value)


def test_a_tool_reads_a_loaded_dump() -> None:
    database = SQLDatabase.from_script(dump(statements=2, rows=1500))
    tool = SQLTool(name="count_customers", description="How many.", sql="SELECT count(*) AS n FROM customer")
    assert database.environment([tool]).execute("count_customers", {}).content == [{"n": 3000}]


def test_a_statement_over_the_script_limit_is_refused_by_name() -> None:
    over = DATABASE_SCRIPT_LIMITS.max_sql_bytes + 10
    script = "CREATE TABLE t (v TEXT);\nINSERT INTO t VALUES ('" + "x" * over + "');\n"
    with pytest.raises(DatabaseSourceError, match="line 2") as error:
        SQLDatabase.from_script(script, source="huge.sql")
    assert f"{DATABASE_SCRIPT_LIMITS.max_sql_bytes:,}" in str(error.value)
