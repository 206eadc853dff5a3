"""Model-written SQL is untrusted input: what it may touch, how long it may run, how much it may return.

Defence in depth, each layer enough on its own for what it guards:
- the overlay VFS opens no file but the fork's own (ATTACH, VACUUM INTO cannot reach the disk);
- the authorizer allows reads, row writes and plain functions only: no ATTACH/DETACH, no PRAGMA,
  no DDL (CREATE/DROP/ALTER, triggers, views, virtual tables), no transaction control, no
  writes to the schema tables, no extension loading;
- SQLite run-time limits cap string/blob sizes, expression depth, compound selects and attached
  databases, so no single value can exhaust memory;
- a progress handler enforces a time budget per call (recursive CTEs included), and row and
  result-size caps cut long results with a "truncated" marker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import apsw

_ALLOWED_READS = {apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_RECURSIVE}
_ROW_WRITES = {apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE}
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "sqlite_dbpage"})
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"})


@dataclass(frozen=True)
class SandboxLimits:
    time_budget_s: float = 1.0
    max_rows: int = 200
    max_result_chars: int = 20_000
    max_overlay_bytes: int = 64 << 20
    max_value_bytes: int = 1 << 20
    max_sql_chars: int = 100_000


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


_SCRIPT_DENIED = {apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH, apsw.SQLITE_PRAGMA, apsw.SQLITE_CREATE_VTABLE}


class ScriptAuthorizer:
    """For building a database from an untrusted script (a model's schema): schema and rows, no file access."""

    def __call__(self, op: int, p1: str | None, p2: str | None, database: str | None, trigger: str | None) -> int:
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
        (apsw.SQLITE_LIMIT_SQL_LENGTH, limits.max_sql_chars),
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
