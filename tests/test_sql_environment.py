"""SQL tools run on real SQLite: each dialogue's fork is isolated, persistent, hashable and diffable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw
import pytest

from dialforge.environments.base import Environment
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.source import DatabaseSourceError
from dialforge.environments.sql.tool import SQLTool

INVOICE_ID = {"type": "object", "properties": {"invoice_id": {"type": "integer"}}, "required": ["invoice_id"]}
TOOLS = [
    SQLTool(
        name="get_invoice",
        description="One invoice by id.",
        parameters=INVOICE_ID,
        sql="SELECT InvoiceId, CustomerId, Total FROM Invoice WHERE InvoiceId = :invoice_id",
        returns={"type": "object"},
    ),
    SQLTool(
        name="list_invoices",
        description="Invoices of a country, optionally.",
        parameters={"type": "object", "properties": {"country": {"type": "string"}}},
        sql="SELECT InvoiceId, Total FROM Invoice WHERE (:country IS NULL OR BillingCountry = :country)"
        " ORDER BY InvoiceId",
    ),
    SQLTool(
        name="refund_invoice",
        description="Set an invoice's total to zero.",
        kind="write",
        parameters=INVOICE_ID,
        sql="UPDATE Invoice SET Total = 0 WHERE InvoiceId = :invoice_id",
    ),
    SQLTool(
        name="add_genre",
        description="Create a genre.",
        kind="write",
        parameters={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        sql="INSERT INTO Genre (Name) VALUES (:name)",
    ),
    SQLTool(
        name="delete_genre",
        description="Delete a genre.",
        kind="write",
        parameters={"type": "object", "properties": {"genre_id": {"type": "integer"}}, "required": ["genre_id"]},
        sql="DELETE FROM Genre WHERE GenreId = :genre_id",
    ),
    SQLTool(
        name="add_invoice_line",
        description="Add a line to an invoice.",
        kind="write",
        parameters={
            "type": "object",
            "properties": {"invoice_id": {"type": "integer"}, "track_id": {"type": "integer"}},
            "required": ["invoice_id", "track_id"],
        },
        sql="INSERT INTO InvoiceLine (InvoiceId, TrackId, UnitPrice, Quantity)"
        " VALUES (:invoice_id, :track_id, 0.99, 1)",
    ),
]


@pytest.fixture
def root(chinook: SQLDatabase) -> SQLEnvironment:
    return chinook.environment(TOOLS)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sql_environment_is_an_environment(root: SQLEnvironment) -> None:
    assert isinstance(root, Environment)
    assert [spec.name for spec in root.tools()][:2] == ["get_invoice", "list_invoices"]


async def test_reads_return_row_objects_with_column_names(root: SQLEnvironment) -> None:
    result = await root.call("get_invoice", {"invoice_id": 1})
    assert result.content == {"InvoiceId": 1, "CustomerId": 2, "Total": 1.98}
    rows = (await root.call("list_invoices", {"country": "Norway"})).content
    assert rows and all(set(row) == {"InvoiceId", "Total"} for row in rows)


async def test_a_missing_optional_parameter_binds_as_null(root: SQLEnvironment) -> None:
    result = await root.call("list_invoices", {})
    assert len(result.content) == root.limits.max_rows and result.truncated


async def test_writes_report_affected_rows_and_new_row_id(root: SQLEnvironment) -> None:
    fork = root.fork()
    assert (await fork.call("refund_invoice", {"invoice_id": 1})).content == {"rows_affected": 1}
    inserted = (await fork.call("add_genre", {"name": "Polka"})).content
    assert inserted == {"rows_affected": 1, "last_row_id": 26}


async def test_state_persists_across_calls_and_forks_are_isolated(root: SQLEnvironment) -> None:
    first, second = root.fork(), root.fork()
    await first.call("refund_invoice", {"invoice_id": 5})
    assert (await first.call("get_invoice", {"invoice_id": 5})).content["Total"] == 0
    assert (await second.call("get_invoice", {"invoice_id": 5})).content["Total"] != 0
    assert (await root.call("get_invoice", {"invoice_id": 5})).content["Total"] != 0
    grandchild = first.fork()
    assert (await grandchild.call("get_invoice", {"invoice_id": 5})).content["Total"] == 0
    await grandchild.call("refund_invoice", {"invoice_id": 6})
    assert (await first.call("get_invoice", {"invoice_id": 6})).content["Total"] != 0


async def test_the_source_file_is_never_written(chinook_path: Path, root: SQLEnvironment) -> None:
    before = file_hash(chinook_path)
    fork = root.fork()
    for genre in range(50):
        await fork.call("add_genre", {"name": f"genre {genre}"})
    await fork.call("refund_invoice", {"invoice_id": 1})
    fork.close()
    assert file_hash(chinook_path) == before


async def test_structured_errors_the_agent_can_read(root: SQLEnvironment) -> None:
    fork = root.fork()
    unknown = await fork.call("drop_everything", {})
    assert unknown.error.kind == "unknown_tool" and "get_invoice" in unknown.error.message
    mistyped = await fork.call("get_invoice", {"invoice_id": "one"})
    assert mistyped.error.kind == "invalid_arguments" and "'one' is not of type 'integer'" in mistyped.error.message
    missing = await fork.call("get_invoice", {})
    assert (
        missing.error.kind == "invalid_arguments"
        and "missing required argument(s) ['invoice_id']" in missing.error.message
    )
    extra = await fork.call("get_invoice", {"invoice_id": 1, "force": True})
    assert extra.error.kind == "invalid_arguments" and "unexpected argument(s) ['force']" in extra.error.message
    absent = await fork.call("get_invoice", {"invoice_id": 99_999})
    assert absent.error.kind == "not_found"
    violation = await fork.call("add_invoice_line", {"invoice_id": 1, "track_id": 999_999})
    assert violation.error.kind == "constraint_violation" and "FOREIGN KEY" in violation.error.message
    assert '"error"' in violation.to_text()


async def test_digest_names_the_state_not_the_path_to_it(root: SQLEnvironment) -> None:
    start = root.digest()
    fork = root.fork()
    assert fork.digest() == start
    await fork.call("add_genre", {"name": "Polka"})
    changed = fork.digest()
    assert changed != start
    await fork.call("delete_genre", {"genre_id": 26})
    assert fork.digest() == start, "insert then delete returns to the same state"
    again = root.fork()
    await again.call("add_genre", {"name": "Polka"})
    assert again.digest() == changed, "the same calls on a fresh fork give the same digest"


async def test_diff_lists_inserted_updated_and_deleted_rows(root: SQLEnvironment) -> None:
    parent = root.fork()
    await parent.call("add_genre", {"name": "Polka"})
    await parent.call("add_genre", {"name": "Ska"})
    child = parent.fork()
    await child.call("delete_genre", {"genre_id": 26})
    await child.call("add_genre", {"name": "Zydeco"})
    await child.call("refund_invoice", {"invoice_id": 3})
    diff = child.diff(parent)
    assert diff.counts() == {
        "Genre": {"inserted": 1, "updated": 0, "deleted": 1},
        "Invoice": {"inserted": 0, "updated": 1, "deleted": 0},
    }
    assert diff.tables["Genre"].deleted == [{"GenreId": 26, "Name": "Polka"}]
    update = diff.tables["Invoice"].updated[0]
    assert update["key"] == {"InvoiceId": 3} and update["after"]["Total"] == 0 and update["before"]["Total"] != 0
    assert root.diff(root.fork()).empty


async def test_foreign_keys_are_enforced_like_in_production(root: SQLEnvironment) -> None:
    result = await root.fork().call("delete_genre", {"genre_id": 1})
    assert result.error.kind == "constraint_violation" and "FOREIGN KEY constraint failed" in result.error.message


async def test_task_checks_run_read_only_on_the_final_state(root: SQLEnvironment) -> None:
    fork = root.fork()
    await fork.call("refund_invoice", {"invoice_id": 412})
    assert fork.check("SELECT Total = 0 FROM Invoice WHERE InvoiceId = 412") == (True, "the check returned 1")
    assert root.check("SELECT Total = 0 FROM Invoice WHERE InvoiceId = 412")[0] is False
    assert fork.check("SELECT 1 FROM Invoice WHERE InvoiceId = -1") == (False, "the check returned no row")
    passed, why = fork.check("DELETE FROM Invoice")
    assert not passed and "could not run" in why
    assert (await fork.call("get_invoice", {"invoice_id": 1})).ok, "a refused check changes nothing"


def test_a_script_builds_a_database(tmp_path: Path) -> None:
    script = tmp_path / "clinic.sql"
    script.write_text(
        "CREATE TABLE patient (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
        "INSERT INTO patient (name) VALUES ('Ada'), ('Grace');\n"
    )
    database = SQLDatabase.from_sql_file(script)
    tool = SQLTool(name="list_patients", description="All patients.", sql="SELECT name FROM patient ORDER BY id")
    assert database.environment([tool]).execute("list_patients", {}).content == [{"name": "Ada"}, {"name": "Grace"}]


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO nope VALUES (1);", "no such table: nope"),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY); ATTACH 'x.db' AS x;", "not authorized"),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY); PRAGMA writable_schema = 1;", "not authorized"),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY); DROP TABLE t;", "creates no tables"),
        ("CREATE TABLE t (id INTEGER PRIMARY KEY", "incomplete input"),
    ],
)
def test_a_script_that_does_not_run_is_rejected_with_its_reason(script: str, problem: str) -> None:
    with pytest.raises(DatabaseSourceError, match=problem) as error:
        SQLDatabase.from_script(script, source="model schema for 'clinic'")
    assert "model schema for 'clinic'" in str(error.value)


def test_a_wal_mode_database_is_snapshotted_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite"
    connection = apsw.Connection(str(path))
    for statement in (
        "PRAGMA journal_mode=WAL",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO t (v) VALUES ('a')",
    ):
        connection.execute(statement).fetchall()
    connection.close()
    before = file_hash(path)
    database = SQLDatabase.open(path)
    assert database.path != path and database.source == str(path)
    tool = SQLTool(name="all_rows", description="Every row.", sql="SELECT v FROM t")
    assert database.environment([tool]).execute("all_rows", {}).content == [{"v": "a"}]
    assert file_hash(path) == before


def test_a_tool_that_is_not_one_allowed_statement_is_refused_at_load(chinook: SQLDatabase) -> None:
    bad = SQLTool(name="two", description="x", sql="SELECT 1; DELETE FROM Invoice")
    with pytest.raises(ValueError, match="'two': a tool runs exactly one statement, this SQL has 2"):
        chinook.environment([bad])


def test_a_thousand_forks_hold_only_what_they_wrote(root: SQLEnvironment) -> None:
    forks = [root.fork() for _ in range(1000)]
    for index, fork in enumerate(forks[:10]):
        fork.execute("refund_invoice", {"invoice_id": index + 1})
    assert sum(fork.changed_bytes for fork in forks) <= 10 * 4 * 4096
    for fork in forks:
        fork.close()


async def test_verification_reports_checks_digests_and_the_row_diff(root: SQLEnvironment) -> None:
    from dialforge.environments.sql.verification import verify
    from dialforge.model import SQLCheck, Task

    task = Task(
        id="t1",
        description="Refund invoice 412.",
        checks=[
            SQLCheck(description="invoice 412 is refunded", sql="SELECT Total = 0 FROM Invoice WHERE InvoiceId = 412"),
            SQLCheck(description="invoice 411 untouched", sql="SELECT Total > 0 FROM Invoice WHERE InvoiceId = 411"),
        ],
    )
    dialogue_state = root.fork()
    untouched = verify(root, dialogue_state, task.checks)
    assert not untouched.passed and untouched.diff.empty and untouched.initial_digest == untouched.final_digest
    await dialogue_state.call("refund_invoice", {"invoice_id": 412})
    verification = verify(root, dialogue_state, task.checks)
    assert verification.passed
    assert [c.passed for c in verification.checks] == [True, True]
    assert verification.diff.counts() == {"Invoice": {"inserted": 0, "updated": 1, "deleted": 0}}
    assert verification.initial_digest != verification.final_digest
    assert verification.model_dump(mode="json")["checks"][0]["detail"] == "the check returned 1"
