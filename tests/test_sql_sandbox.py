"""Model-written SQL is untrusted: a hostile corpus, every case refused or contained with a clear reason.

Each case is SQL a model might write as a tool. "load" means the environment refuses the tool
before it can run; a ToolErrorKind means the call returns that structured error; "truncated"
means the result was cut at a cap; "contained" means it ran but changed nothing outside its fork.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.sandbox import SandboxLimits
from dialforge.environments.sql.tool import SQLTool

FAST = SandboxLimits(time_budget_s=0.3, max_rows=50, max_result_chars=5_000, max_overlay_bytes=2 << 20)
RECURSE = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)"

HOSTILE: list[tuple[str, str, str, str]] = [
    # (case, kind of tool, SQL, expected outcome and a word its reason must contain)
    ("attach a file", "read", "ATTACH DATABASE '/tmp/evil.db' AS evil", "load:ATTACH"),
    ("detach main", "read", "DETACH DATABASE main", "load:DETACH"),
    ("vacuum into a file", "read", "VACUUM INTO '/tmp/copy.db'", "load:VACUUM"),
    ("writable schema", "write", "PRAGMA writable_schema = 1", "load:PRAGMA"),
    ("journal off", "write", "PRAGMA journal_mode = OFF", "load:PRAGMA"),
    ("create table", "write", "CREATE TABLE evil (x)", "load:CREATE"),
    ("create temp table", "write", "CREATE TEMP TABLE evil (x)", "load:CREATE"),
    ("drop table", "write", "DROP TABLE Invoice", "load:DROP"),
    ("alter table", "write", "ALTER TABLE Invoice ADD COLUMN evil TEXT", "load:ALTER"),
    ("trigger", "write", "CREATE TRIGGER t AFTER INSERT ON Genre BEGIN DELETE FROM Invoice; END", "load:statement"),
    ("view", "write", "CREATE VIEW v AS SELECT 1", "load:CREATE"),
    ("index", "write", "CREATE INDEX i ON Invoice (Total)", "load:CREATE"),
    ("virtual table", "write", "CREATE VIRTUAL TABLE v USING fts5(x)", "load:CREATE"),
    ("stacked statements", "read", "SELECT 1; DELETE FROM Invoice", "load:exactly one statement"),
    ("transaction control", "write", "BEGIN; DELETE FROM Invoice; COMMIT", "load:exactly one statement"),
    ("savepoint", "write", "SAVEPOINT s", "load:SAVEPOINT"),
    ("reindex", "write", "REINDEX", "load:REINDEX"),
    ("analyze", "write", "ANALYZE", "load:ANALYZE"),
    ("nesting bomb", "read", "SELECT " + "(" * 400 + "1" + ")" * 400, "load:nested too deeply"),
    ("huge SQL text", "read", "SELECT '" + "x" * 30_000 + "'", "load:characters long"),
    ("load an extension", "read", "SELECT load_extension('/tmp/evil.so')", "refused:load_extension"),
    ("fts3 tokenizer pointer", "read", "SELECT fts3_tokenizer('simple')", "refused:fts3_tokenizer"),
    ("read a file", "read", "SELECT readfile('/etc/passwd')", "execution_error:no such function"),
    ("pragma function", "read", "SELECT * FROM pragma_table_info('Invoice')", "refused:not allowed"),
    ("rewrite the schema", "write", "UPDATE sqlite_master SET sql = 'x'", "refused:may not be modified"),
    ("insert into the schema", "write", "INSERT INTO sqlite_schema (type, name) VALUES ('table', 'x')", "refused:not"),
    ("another database", "read", "SELECT * FROM evil.Invoice", "execution_error:no such table"),
    ("endless recursion", "read", f"{RECURSE} SELECT count(*) FROM r", "timeout:time budget"),
    ("cartesian explosion", "read", "SELECT count(*) FROM Track a, Track b, Track c", "timeout:time budget"),
    ("endless rows", "read", f"{RECURSE} SELECT n FROM r", "truncated:"),
    ("wide rows", "read", "SELECT *, printf('%.500c', 'x') AS pad FROM Track", "truncated:"),
    ("zeroblob bomb", "read", "SELECT zeroblob(2000000000)", "too_large:too big"),
    ("randomblob bomb", "read", "SELECT randomblob(100000000)", "too_large:too big"),
    ("printf bomb", "read", "SELECT printf('%.*c', 1000000000, 'x')", "too_large:too big"),
    ("repeat bomb", "read", "SELECT replace(hex(zeroblob(600000)), '0', '00')", "too_large:too big"),
    ("compound bomb", "read", " UNION ALL ".join(["SELECT 1"] * 60), "execution_error:compound"),
    ("like pattern bomb", "read", "SELECT 'a' LIKE '" + "%" * 2000 + "'", "execution_error:LIKE"),
    (
        "write bomb",
        "write",
        "INSERT INTO Genre (Name) WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT 10000000)"
        " SELECT printf('%.200c', 'x') || n FROM r",
        "too_large|timeout:",
    ),
    ("delete everything", "write", "DELETE FROM InvoiceLine", "contained:"),
    ("typo read as a string", "read", 'SELECT "InvoiceIdd" FROM Invoice', "execution_error:no such column"),
]


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize(("case", "kind", "sql", "expected"), HOSTILE, ids=[case for case, *_ in HOSTILE])
def test_hostile_sql_is_refused_or_contained(
    chinook: SQLDatabase, case: str, kind: str, sql: str, expected: str
) -> None:
    outcome, _, reason_word = expected.partition(":")
    tool = SQLTool(name="hostile", description=case, sql=sql, kind=kind)  # type: ignore[arg-type]
    if outcome == "load":
        with pytest.raises(ValueError, match="'hostile'") as error:
            chinook.environment([tool], FAST)
        assert reason_word.lower() in str(error.value).lower()
        return
    root = chinook.environment([tool], FAST)
    fork = root.fork()
    result = fork.execute("hostile", {})
    if outcome == "truncated":
        assert result.ok and result.truncated
        assert len(result.to_text()) <= FAST.max_result_chars + 100
    elif outcome == "contained":
        assert result.ok
        assert root.digest() != fork.digest() and root.diff(root.fork()).empty
    else:
        assert result.error is not None, f"{case} ran: {result.to_text()[:200]}"
        assert result.error.kind in outcome.split("|"), result.error
        assert reason_word.lower() in result.error.message.lower()
    assert root.fork().digest() == root.digest(), "no fork ever sees another fork's writes"


def test_arguments_are_bound_never_spliced_into_sql(chinook: SQLDatabase) -> None:
    tool = SQLTool(
        name="find_genre",
        description="Genres by exact name.",
        parameters={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        sql="SELECT GenreId FROM Genre WHERE Name = :name",
    )
    fork = chinook.environment([tool], FAST).fork()
    for injection in ("x' OR '1'='1", "'; DROP TABLE Genre; --", "Rock' UNION SELECT sql FROM sqlite_master --"):
        assert fork.execute("find_genre", {"name": injection}).content == []
    assert fork.execute("find_genre", {"name": "Rock"}).content == [{"GenreId": 1}]


def test_after_the_whole_corpus_the_source_file_is_unchanged(chinook: SQLDatabase, chinook_path: Path) -> None:
    before = hashlib.sha256(chinook_path.read_bytes()).hexdigest()
    for case, kind, sql, expected in HOSTILE:
        if expected.startswith("load"):
            continue
        tool = SQLTool(name="hostile", description=case, sql=sql, kind=kind)  # type: ignore[arg-type]
        chinook.environment([tool], FAST).execute("hostile", {})
    assert hashlib.sha256(chinook_path.read_bytes()).hexdigest() == before
    assert not Path("/tmp/evil.db").exists() and not Path("/tmp/copy.db").exists()
