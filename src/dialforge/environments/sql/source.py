"""Open a SQLite file as a read-only source, so that a bad path fails at once, by name, before any model call."""

from __future__ import annotations

from pathlib import Path

import apsw

from dialforge.environments.sql.schema import single_row, table_names

BUSY_TIMEOUT_MS = 2000
"""How long to wait for another process's write lock before calling the database locked."""


class DatabaseSourceError(ValueError):
    """A file that cannot serve as a database source; the message names the file, the problem and a hint."""

    def __init__(
        self, path: str | Path, problem: str, hint: str = "expected a readable SQLite 3 database file"
    ) -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"{self.path}: {problem}; {hint}")


def open_readonly(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> apsw.Connection:
    """A read-only connection to ``path``, checked to be an intact SQLite database with at least one table.

    The integrity check (``PRAGMA quick_check``) reads every page once: milliseconds for a small database,
    and the only way to catch corruption before a dialogue stumbles on it.
    """
    path = Path(path)
    if not path.exists():
        raise DatabaseSourceError(path, "the file does not exist", "check the path")
    if not path.is_file():
        raise DatabaseSourceError(path, "is not a regular file")
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error as exc:
        raise DatabaseSourceError(path, f"cannot be opened ({exc})", "check the file permissions") from None
    try:
        conn.set_busy_timeout(busy_timeout_ms)
        _check(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _check(conn: apsw.Connection, path: Path) -> None:
    try:
        (verdict,) = single_row(conn, "PRAGMA quick_check(1)")
        tables = table_names(conn)
    except apsw.NotADBError:
        raise DatabaseSourceError(
            path, "is not a SQLite database", "a SQLite 3 file starts with 'SQLite format 3'"
        ) from None
    except apsw.CorruptError as exc:
        raise DatabaseSourceError(path, f"the database is corrupt ({exc})", "restore it from a good copy") from None
    except apsw.BusyError:
        raise DatabaseSourceError(
            path, "the database is locked by another process", "retry when that process has finished writing"
        ) from None
    except apsw.Error as exc:
        raise DatabaseSourceError(path, f"cannot be read ({exc})") from None
    if verdict != "ok":
        raise DatabaseSourceError(path, f"the database is corrupt ({verdict})", "restore it from a good copy")
    if not tables:
        raise DatabaseSourceError(path, "the database has no tables", "create the schema first, or pick another file")
