"""Model-written SQL is untrusted input: what it may touch, how long it may run, how much it may return.

Defence in depth, each layer enough on its own for what it guards:
- the overlay VFS opens no file but the fork's own (ATTACH, VACUUM INTO cannot reach the disk);
- the authorizer allows reads, row writes and plain functions only: no ATTACH/DETACH, no PRAGMA,
  no DDL (CREATE/DROP/ALTER, triggers, views, virtual tables), no transaction control, no
  writes to the schema tables, no extension loading;
- SQLite run-time limits cap string/blob sizes, expression depth, compound selects and attached
  databases, and a process-wide heap limit stops sorts, DISTINCT and aggregates that would build
  gigabytes in memory (calls run one at a time on the event loop, so it acts as a per-call limit);
- a progress handler enforces a time budget per call (recursive CTEs included), and row and
  result-size caps cut long results with a "truncated" marker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apsw

_ALLOWED_READS = {apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_RECURSIVE}
_ROW_WRITES = {apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE}
# load_extension and fts3_tokenizer exist in this build; readfile, writefile and edit are the sqlite3
# shell's file functions, denied in case an application registers them.
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"})


HEAP_LIMIT_BYTES = 1 << 30
"""SQLite's heap for the whole process (every fork's page cache plus the statement running), set once
unless the application set its own with ``apsw.hard_heap_limit``."""

MAX_SQL_CHARS = 20_000
"""The longest SQL a tool, a check or a query may have (real tools are well under 2,000)."""


@dataclass(frozen=True)
class SandboxLimits:
    time_budget_s: float = 1.0
    max_rows: int = 200
    max_result_chars: int = 20_000
    max_overlay_bytes: int = 64 << 20
    max_value_bytes: int = 1 << 20
    max_script_bytes: int = 256 << 20
    """The largest database a script (a model's schema and rows) may build."""
    max_sql_bytes: int = MAX_SQL_CHARS
    """The longest statement SQLite prepares (``SQLITE_LIMIT_SQL_LENGTH``)."""


SCRIPT_STATEMENT_BYTES = 100_000_000
"""The longest statement, and value, of a database script (a ``.sql`` file the user names). Dump tools write
long multi-row INSERTs (mysqldump up to its 16 MiB buffer); SQLite's own ceiling is 1,000,000,000 bytes, but
compiling a statement takes about seven bytes of heap per byte of SQL, so under ``HEAP_LIMIT_BYTES`` a longer
statement could only fail for want of memory."""

DATABASE_SCRIPT_LIMITS = SandboxLimits(
    time_budget_s=10.0, max_value_bytes=SCRIPT_STATEMENT_BYTES, max_sql_bytes=SCRIPT_STATEMENT_BYTES
)
"""The limits a database script runs under; model-written SQL keeps the defaults."""


class Authorizer:
    """Decides, statement by statement at prepare time, what untrusted SQL may do.

    ``written`` collects the tables row writes touch (triggers included), which is how a fork knows
    which tables may differ from its base. ``trusted`` lifts the rules for the environment's own
    bookkeeping statements; ``read_only`` forbids row writes (verification checks, data views).
    """

    def __init__(self, written: set[str]) -> None:
        self.written = written
        self.trusted = False
        self.read_only = False

    def __call__(self, op: int, p1: str | None, p2: str | None, database: str | None, trigger: str | None) -> int:
        if self.trusted or op in _ALLOWED_READS:
            return apsw.SQLITE_OK
        if op in _ROW_WRITES:
            if self.read_only or (p1 or "").lower() in _SCHEMA_TABLES:
                return apsw.SQLITE_DENY
            self.written.add(p1 or "")
            return apsw.SQLITE_OK
        if op == apsw.SQLITE_FUNCTION:
            return apsw.SQLITE_DENY if (p2 or "").lower() in _DENIED_FUNCTIONS else apsw.SQLITE_OK
        return apsw.SQLITE_DENY


# Transaction control is denied too (BEGIN and COMMIT aside, which are ignored): a script's COMMIT; BEGIN
# would leave its last rows uncommitted, and its ROLLBACK or savepoints would undo rows to no purpose.
_SCRIPT_DENIED = {
    apsw.SQLITE_ATTACH,
    apsw.SQLITE_DETACH,
    apsw.SQLITE_PRAGMA,
    apsw.SQLITE_CREATE_VTABLE,
    apsw.SQLITE_TRANSACTION,
    apsw.SQLITE_SAVEPOINT,
}


_SCRIPT_PRAGMAS = frozenset({"foreign_keys", "defer_foreign_keys"})
"""The pragmas a script may run: dumps open with ``PRAGMA foreign_keys``, which only decides what the rows
are checked against."""
_IGNORED_TRANSACTIONS = frozenset({"BEGIN", "COMMIT"})
"""Run as nothing (``SQLITE_IGNORE``): dumps wrap their rows in ``BEGIN TRANSACTION; ... COMMIT;``, and every
statement of a script commits on its own anyway."""


class ScriptAuthorizer:
    """For building a database from an untrusted script (a model's schema): schema and rows, no file access."""

    def __call__(self, op: int, p1: str | None, p2: str | None, database: str | None, trigger: str | None) -> int:
        if op == apsw.SQLITE_PRAGMA and (p1 or "").lower() in _SCRIPT_PRAGMAS:
            return apsw.SQLITE_OK
        if op == apsw.SQLITE_TRANSACTION and p1 in _IGNORED_TRANSACTIONS:
            return apsw.SQLITE_IGNORE
        if op in _SCRIPT_DENIED:
            return apsw.SQLITE_DENY
        # Writes to sqlite_master are how DDL records itself; explicit ones need writable_schema (a PRAGMA).
        if op == apsw.SQLITE_FUNCTION and (p2 or "").lower() in _DENIED_FUNCTIONS:
            return apsw.SQLITE_DENY
        return apsw.SQLITE_OK


class Deadline:
    """The progress handler: aborts a statement (``apsw.InterruptError``) once its time budget is spent."""

    def __init__(self) -> None:
        self.until = float("inf")

    def start(self, budget_s: float) -> None:
        self.until = time.monotonic() + budget_s

    def clear(self) -> None:
        self.until = float("inf")

    def __call__(self) -> bool:
        return time.monotonic() > self.until


def harden(
    connection: apsw.Connection, limits: SandboxLimits, authorizer: Authorizer | ScriptAuthorizer, deadline: Deadline
) -> None:
    """Install every guard on a fresh fork connection."""
    for limit, value in (
        (apsw.SQLITE_LIMIT_ATTACHED, 0),
        (apsw.SQLITE_LIMIT_LENGTH, limits.max_value_bytes),
        (apsw.SQLITE_LIMIT_SQL_LENGTH, limits.max_sql_bytes),
        (apsw.SQLITE_LIMIT_EXPR_DEPTH, 100),
        (apsw.SQLITE_LIMIT_COMPOUND_SELECT, 50),
        (apsw.SQLITE_LIMIT_VARIABLE_NUMBER, 100),
        (apsw.SQLITE_LIMIT_TRIGGER_DEPTH, 10),
        (apsw.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000),
    ):
        connection.limit(limit, value)
    # SQLite would read an unknown "double-quoted" name as a string literal: a typo would run silently.
    connection.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
    connection.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
    connection.enable_load_extension(False)
    connection.set_authorizer(authorizer)
    connection.set_progress_handler(deadline, 1000)
    if apsw.hard_heap_limit(-1) == 0:
        apsw.hard_heap_limit(HEAP_LIMIT_BYTES)


def one_statement_only() -> Callable[[apsw.Cursor, str, Any], bool]:
    """An exec tracer that stops a cursor before a second statement: apsw would run every statement
    in a string, and this holds even if a parser were fooled into counting one."""
    seen = 0

    def trace(cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        nonlocal seen
        seen += 1
        return seen == 1

    return trace
