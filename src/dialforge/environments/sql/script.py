"""Build a database file from a SQL script, and when a statement fails, say which one (its line and first
words), what limit it hit and how to fix it: a dump of megabytes is otherwise impossible to search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw

from dialforge.environments.sql.sandbox import (
    Deadline,
    SandboxLimits,
    ScriptAuthorizer,
    harden,
    one_statement_only,
)
from dialforge.environments.sql.schema import single_row, table_names
from dialforge.environments.sql.source import DatabaseSourceError
from dialforge.environments.sql.sql_text import first_words, line_of, statement_start


class StatementTracker:
    """The exec tracer of a running script: where the statement that last started begins and ends."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.start: int | None = None
        self.end = 0

    def __call__(self, cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        found = self.script.find(sql, self.end)  # the tracer sees each statement as the next slice of the script
        if found >= 0:
            self.start, self.end = statement_start(self.script, found), found + len(sql)
        return True

    def failed(self, connection: apsw.Connection, error: apsw.Error) -> tuple[int | None, bool]:
        """Where the failing statement begins, and whether it failed to prepare (rather than while running).

        SQLite gives no offset for these errors. The statement after the last one that started is the culprit
        if preparing it alone (``EXPLAIN``, nothing runs) fails the same way; otherwise the one that started is.
        """
        following = statement_start(self.script, self.end)
        if following >= len(self.script):
            return self.start, False
        if self.start is None:
            return following, True
        cursor = connection.cursor()
        cursor.exec_trace = one_statement_only()
        try:
            cursor.execute("EXPLAIN " + self.script[following:]).fetchall()
        except apsw.ExecTraceAbort:
            pass
        except apsw.Error as again:
            if str(again) == str(error):
                return following, True
        return self.start, False


def build_database(path: Path, script: str, *, source: str, limits: SandboxLimits) -> None:
    """Run ``script`` into a new database file at ``path`` under the script sandbox (``ScriptAuthorizer``)."""
    connection = apsw.Connection(str(path))
    # the file is built once and thrown away on failure: no crash safety, so no journal file and no fsync
    connection.execute("PRAGMA journal_mode = MEMORY").fetchall()
    connection.execute("PRAGMA synchronous = OFF").fetchall()
    (page_size,) = single_row(connection, "PRAGMA page_size")
    assert isinstance(page_size, int)
    connection.execute(f"PRAGMA max_page_count = {limits.max_script_bytes // page_size}").fetchall()
    deadline = Deadline()
    harden(connection, limits, ScriptAuthorizer(), deadline)
    tracker = StatementTracker(script)
    connection.exec_trace = tracker
    deadline.start(limits.time_budget_s)
    try:
        for _ in connection.execute(script):  # a batch runs only as far as its rows are read
            pass
        connection.exec_trace = None
        connection.set_authorizer(None)
        created = table_names(connection)
    except apsw.Error as exc:
        timed_out = deadline()
        deadline.clear()
        connection.exec_trace = None
        start, at_prepare = (tracker.start, False) if timed_out else tracker.failed(connection, exc)
        where = "" if start is None else _statement_at(script, start)
        raise _script_error(source, exc, where, at_prepare=at_prepare, timed_out=timed_out, limits=limits) from None
    finally:
        connection.close()
    if not created:
        raise DatabaseSourceError(source, "the SQL script creates no tables", "add CREATE TABLE statements")


def _statement_at(script: str, start: int) -> str:
    return f"the statement at line {line_of(script, start)} ({first_words(script, start)})"


def _script_error(
    source: str, exc: apsw.Error, where: str, *, at_prepare: bool, timed_out: bool, limits: SandboxLimits
) -> DatabaseSourceError:
    statement = where or "a statement"
    if timed_out:
        problem = f"the SQL script ran longer than {limits.time_budget_s:g} s" + (f", at {where}" if where else "")
        return DatabaseSourceError(source, problem, "make it smaller")
    if isinstance(exc, apsw.TooBigError) and at_prepare:
        return DatabaseSourceError(
            source,
            f"{statement} is longer than {limits.max_sql_bytes:,} bytes, the most one statement may have",
            "split it into several INSERT statements of fewer rows each (mysqldump --net-buffer-length,"
            " or sqlite3's .dump, which writes one row per INSERT)",
        )
    if isinstance(exc, apsw.TooBigError):
        return DatabaseSourceError(
            source,
            f"{statement} makes a string or blob longer than {limits.max_value_bytes:,} bytes, the most one value"
            " may have",
            "keep such large values in files and store their paths",
        )
    return DatabaseSourceError(
        source,
        f"the SQL script does not run: {where + ': ' if where else ''}{exc}",
        "fix that statement (only schema and rows are allowed)",
    )
