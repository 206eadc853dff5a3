"""SQL tools run on real SQLite: each dialogue's fork is isolated, persistent, hashable and diffable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import apsw
import pytest

from dialforge.environments.base import Environment
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.source import DatabaseSourceError
from dialforge.environments.sql.tool import SQLTool
from samples import DATE_INVOICE

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
    with pytest.raises(ValueError, match="'two': exactly one statement is allowed, this SQL has 2"):
        chinook.environment([bad])


def test_a_thousand_forks_hold_only_what_they_wrote(root: SQLEnvironment) -> None:
    forks = [root.fork() for _ in range(1000)]
    for index, fork in enumerate(forks[:10]):
        fork.execute("refund_invoice", {"invoice_id": index + 1})
    assert sum(fork.changed_bytes for fork in forks) <= 10 * 4 * 4096
    for fork in forks:
        fork.close()


async def test_verification_reports_checks_digests_and_the_row_diff(root: SQLEnvironment) -> None:
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
    untouched = dialogue_state.verify(task.checks)
    assert not untouched.passed and untouched.diff.empty and untouched.initial_digest == untouched.final_digest
    await dialogue_state.call("refund_invoice", {"invoice_id": 412})
    verification = dialogue_state.verify(task.checks)
    assert verification.passed
    assert [c.passed for c in verification.checks] == [True, True]
    assert verification.diff.counts() == {"Invoice": {"inserted": 0, "updated": 1, "deleted": 0}}
    assert verification.initial_digest != verification.final_digest
    assert verification.model_dump(mode="json")["checks"][0]["detail"] == "the check returned 1"


async def test_odd_argument_values_become_tool_errors_not_crashes(chinook: SQLDatabase) -> None:
    tool = SQLTool(
        name="echo",
        description="Echo a value.",
        parameters={"type": "object", "properties": {"value": {}}, "required": ["value"]},
        sql="SELECT :value AS value",
    )
    fork = chinook.environment([tool]).fork()
    assert (await fork.call("echo", {"value": 2**70})).error.kind == "invalid_arguments"
    assert (await fork.call("echo", {"value": "\ud800"})).error.kind == "invalid_arguments"
    assert (await fork.call("echo", None)).error.kind == "invalid_arguments"  # type: ignore[arg-type]
    assert (await fork.call("echo", {"value": [1, 2]})).content == [{"value": "[1,2]"}]


async def test_a_list_argument_is_bound_as_json_for_json_each(chinook: SQLDatabase) -> None:
    tool = SQLTool(
        name="get_genres",
        description="Genres by ids.",
        parameters={"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"}}}},
        sql='SELECT "Name" FROM "Genre" WHERE "GenreId" IN (SELECT value FROM json_each(:ids)) ORDER BY "GenreId"',
    )
    result = await chinook.environment([tool]).fork().call("get_genres", {"ids": [1, 2]})
    assert result.content == [{"Name": "Rock"}, {"Name": "Jazz"}]


async def test_text_that_is_not_utf8_is_reported_and_does_not_break_digest_or_diff(root: SQLEnvironment) -> None:
    poison = SQLTool(
        name="poison",
        description="Write bytes that are not UTF-8.",
        kind="write",
        sql='UPDATE "Genre" SET "Name" = CAST(x\'ff\' AS TEXT) WHERE "GenreId" = 1',
    )
    read = SQLTool(name="genres", description="All genres.", sql='SELECT "Name" FROM "Genre"')
    fork = root.database.environment([poison, read]).fork()
    assert (await fork.call("poison", {})).ok
    result = await fork.call("genres", {})
    assert result.error.kind == "execution_error" and "not valid UTF-8" in result.error.message
    assert fork.digest() != root.digest()
    assert fork.diff(root).tables["Genre"].updated[0]["after"]["Name"] == "\ufffd"


async def test_a_read_only_query_cannot_reuse_an_authorized_write(root: SQLEnvironment) -> None:
    fork = root.fork()
    sql = "UPDATE Invoice SET Total = 0 WHERE InvoiceId = :invoice_id"
    assert (await fork.call("refund_invoice", {"invoice_id": 1})).ok
    assert fork.query(sql, {"invoice_id": 2}).error.kind == "refused"
    assert fork.check(sql)[0] is False
    assert (await fork.call("get_invoice", {"invoice_id": 2})).content["Total"] != 0


def test_digest_and_diff_see_types_blobs_and_keyless_rows_alike(tmp_path: Path) -> None:
    database = SQLDatabase.from_script(
        "CREATE TABLE loose (k TEXT PRIMARY KEY, v);"
        "INSERT INTO loose VALUES ('a', 1), ('b', x'00112233'), (NULL, 'p'), (NULL, 'q');"
    )
    set_value = SQLTool(
        name="set_value",
        description="Set v.",
        kind="write",
        parameters={"type": "object", "properties": {"k": {"type": "string"}, "v": {}}, "required": ["k", "v"]},
        sql="UPDATE loose SET v = :v WHERE k = :k",
    )
    swap = SQLTool(
        name="swap_keyless",
        description="Swap the two keyless rows' values.",
        kind="write",
        sql="UPDATE loose SET v = CASE v WHEN 'p' THEN 'q' ELSE 'p' END WHERE k IS NULL",
    )
    root = database.environment([set_value, swap])
    real = root.fork()
    real.execute("set_value", {"k": "a", "v": 1.0})
    assert real.digest() != root.digest(), "1 and 1.0 are different values in an untyped column"
    assert real.diff(root).tables["loose"].updated[0]["after"]["v"] == 1.0
    text = root.fork()
    text.execute("set_value", {"k": "b", "v": "00112233"})
    assert text.digest() != root.digest(), "a blob and the text of its hex differ"
    assert text.diff(root).tables["loose"].updated[0]["before"]["v"] == "x'00112233'"
    swapped = root.fork()
    swapped.execute("swap_keyless", {})
    assert swapped.digest() == root.digest() and swapped.diff(root).empty, "the same rows in another order"


def test_insert_or_ignore_that_inserts_nothing_reports_no_row_id(chinook: SQLDatabase) -> None:
    tool = SQLTool(
        name="add_genre_once",
        description="Add a genre unless the id exists.",
        kind="write",
        sql="INSERT OR IGNORE INTO Genre (GenreId, Name) VALUES (1, 'Rock again')",
    )
    assert chinook.environment([tool]).fork().execute("add_genre_once", {}).content == {"rows_affected": 0}


def test_check_follows_sqlite_truth(root: SQLEnvironment) -> None:
    assert root.check("SELECT '0'")[0] is False
    assert root.check("SELECT '1'")[0] is True
    assert root.check("SELECT 'yes'")[0] is False


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("CREATE TABLE t (x); INSERT INTO t VALUES (1); ROLLBACK;", "not authorized"),
        ("CREATE TABLE t (x); SAVEPOINT s; INSERT INTO t VALUES (1);", "not authorized"),
        (
            "CREATE TABLE t (x); WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)"
            " INSERT INTO t SELECT zeroblob(100000) FROM r;",
            "database or disk is full",
        ),
    ],
)
def test_a_script_may_not_control_transactions_or_grow_without_bound(script: str, problem: str) -> None:
    from dialforge.environments.sql.sandbox import SandboxLimits

    with pytest.raises(DatabaseSourceError, match=problem):
        SQLDatabase.from_script(script, limits=SandboxLimits(time_budget_s=5, max_script_bytes=8 << 20))


def test_a_script_that_runs_too_long_says_so() -> None:
    from dialforge.environments.sql.sandbox import SandboxLimits

    endless = (
        "CREATE TABLE t (x); WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r;"
    )
    with pytest.raises(DatabaseSourceError, match=r"ran longer than 0.2 s"):
        SQLDatabase.from_script(endless, limits=SandboxLimits(time_budget_s=0.2))


def test_a_wal_source_gets_no_files_beside_it_and_close_releases_it(tmp_path: Path) -> None:
    import os

    path = tmp_path / "wal.sqlite"
    connection = apsw.Connection(str(path))
    for statement in ("PRAGMA journal_mode=WAL", "CREATE TABLE t (v TEXT)", "INSERT INTO t VALUES ('a')"):
        connection.execute(statement).fetchall()
    connection.close()
    database = SQLDatabase.open(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]
    fd = database.base.fd
    database.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_memory_hungry_sql_is_stopped_by_the_heap_limit(chinook: SQLDatabase) -> None:
    hungry = SQLTool(
        name="hungry",
        description="Sort a mountain of blobs.",
        sql="WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 2000)"
        " SELECT count(*) FROM (SELECT n, zeroblob(100000) || n AS b FROM r ORDER BY 2)",
    )
    fork = chinook.environment([hungry]).fork()
    previous = apsw.hard_heap_limit(64 << 20)
    try:
        result = fork.execute("hungry", {})
    finally:
        apsw.hard_heap_limit(previous)
    assert result.error.kind == "too_large" and "more memory" in result.error.message
    assert fork.execute("hungry", {}).ok, "with the usual limit the same query fits"


async def test_a_snapshot_restores_the_exact_state_even_after_nondeterministic_sql(root: SQLEnvironment) -> None:
    import orjson

    noisy = SQLTool(
        name="add_random_genre",
        description="A genre with a random name.",
        kind="write",
        sql="INSERT INTO Genre (Name) VALUES ('g' || random() || CURRENT_TIMESTAMP)",
    )
    base = root.database.environment([*root.sql_tools, noisy])
    fork = base.fork()
    await fork.call("add_random_genre", {})
    await fork.call("refund_invoice", {"invoice_id": 9})
    stored = orjson.loads(orjson.dumps(fork.snapshot()))
    again = base.restore(stored)
    assert again.digest() == fork.digest()
    assert again.diff(fork).empty
    await again.call("add_genre", {"name": "After restore"})
    assert fork.digest() != again.digest(), "the restored state is its own fork"


def test_sql_now_is_the_dialogues_own_time_in_every_fork_and_after_a_restore(chinook: SQLDatabase) -> None:
    stamp = DATE_INVOICE
    root = chinook.environment([stamp])
    monday = root.fork(clock=datetime(2025, 11, 17, 9, 30))
    friday = root.fork(clock=datetime(2025, 11, 21, 16, 5, 7))
    now_sql = "SELECT CURRENT_TIMESTAMP AS ts, date('now') AS day, julianday('now') AS jd"
    assert monday.query(now_sql).content[0]["ts"] == "2025-11-17 09:30:00"
    assert friday.query(now_sql).content[0]["day"] == "2025-11-21"
    monday.execute("date_invoice", {"invoice_id": 1})
    friday.execute("date_invoice", {"invoice_id": 2})
    dates = "SELECT InvoiceDate FROM Invoice WHERE InvoiceId IN (1, 2) ORDER BY InvoiceId"
    untouched = [row["InvoiceDate"] for row in root.query(dates).content]
    assert [row["InvoiceDate"] for row in monday.query(dates).content] == ["2025-11-17 09:30:00", untouched[1]]
    assert [row["InvoiceDate"] for row in friday.query(dates).content] == [untouched[0], "2025-11-21 16:05:07"]
    later = root.restore(monday.snapshot()).fork()
    assert later.clock == datetime(2025, 11, 17, 9, 30)
    assert later.query(now_sql).content[0]["ts"] == "2025-11-17 09:30:00"
    wall = root.fork().query("SELECT CAST(strftime('%Y', 'now') AS INTEGER) AS year").content[0]["year"]
    assert wall == datetime.now(UTC).year, "without a clock, 'now' is the wall clock"
