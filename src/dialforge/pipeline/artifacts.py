"""Stage outputs, kept where a resumed run finds them and where a person can read them.

``RUN_DIR/state.sqlite`` (WAL) holds every finished model-backed item, keyed by stage, domain and
item key, committed as soon as it exists: a crash loses at most the call in flight, and a resumed
run asks the model only for what is missing. ``RUN_DIR/artifacts/*.jsonl`` are readable copies,
rewritten from the store when a stage finishes.

Whatever keeps the store from being opened, read or written (a full disk, a directory that cannot be
written, a damaged file) stops the run with a ``StoreError`` that names the file, the problem and the fix,
and leaves what was stored as it was.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    stage TEXT NOT NULL,
    domain TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (stage, domain, key)
)
"""


STORE_FILE = "state.sqlite"
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_SQLITE_NOT_WRITABLE = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}


class StoreError(Exception):
    """The run directory cannot be written or read: the run stops, and what was stored stays as it was.

    The message names the file, the problem and the fix; ``resumable`` says whether the same command
    continues the run once the problem is fixed (not so for a damaged store)."""

    def __init__(self, message: str, *, resumable: bool = True) -> None:
        super().__init__(message)
        self.resumable = resumable


def store_error(path: Path, exc: sqlite3.Error | OSError) -> StoreError:
    """What went wrong with ``path`` (the store, or a file of the run directory), in one line with the fix."""
    if isinstance(exc, OSError):
        path = Path(exc.filename) if exc.filename else path
        problem = exc.strerror or str(exc)
        full, not_writable, damaged = exc.errno in _DISK_FULL, exc.errno in _NOT_WRITABLE, False
        if exc.errno == errno.ENOTDIR:
            file = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
            if file is not None:
                return StoreError(
                    f"cannot write {path}: {file} is a file, not a directory; choose another --out directory",
                    resumable=False,
                )
    else:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        problem = str(exc)
        full = code == sqlite3.SQLITE_FULL or "disk is full" in problem
        not_writable, damaged = code in _SQLITE_NOT_WRITABLE, code in _DAMAGED
        if not_writable and not os.access(path.parent, os.W_OK):
            problem += f" ({path.parent} is read-only)"
    if damaged:
        return damaged_store(path, problem)
    if full:
        fix = f"free space on the disk of {path.parent}"
    elif not_writable:
        fix = f"make {path.parent} writable (or choose another --out directory)"
    else:
        fix = "fix that"
    return StoreError(f"cannot write {path}: {problem}; nothing stored was lost: {fix}")


def damaged_store(path: Path, problem: str) -> StoreError:
    """A store SQLite cannot read (truncated, pages overwritten): refused, since continuing would build on it."""
    finished = path.parent / "dialogues.jsonl"
    kept = f"the dialogues finished before are in {finished}; " if finished.is_file() else ""
    return StoreError(
        f"{path} is damaged ({problem}), so this run cannot continue from it; {kept}"
        "start the run again with a new --out directory",
        resumable=False,
    )


_Store = TypeVar("_Store", bound="ArtifactStore")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def guarded(method: Callable[Concatenate[_Store, _P], _R]) -> Callable[Concatenate[_Store, _P], _R]:
    """A store method whose SQLite errors (a full disk, a damaged file) stop the run as a ``StoreError``."""

    @functools.wraps(method)
    def call(store: _Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(store, *args, **kwargs)
        except sqlite3.Error as exc:
            raise store_error(store.path, exc) from None

    return call


def write_whole(path: Path, lines: Iterable[bytes]) -> Path:
    """Write ``lines`` to ``<path>.partial``, then rename it over ``path``: a reader never sees half a file, and a
    failure (a full disk) leaves the earlier file as it was and no partial file behind."""
    partial = path.with_name(f"{path.name}.partial")
    try:
        with partial.open("wb") as handle:
            handle.writelines(lines)
        partial.replace(path)
    except OSError as exc:
        raise store_error(path, exc) from None
    finally:
        partial.unlink(missing_ok=True)
    return path


class ArtifactStore:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.artifacts_dir = run_dir / "artifacts"
        self.path = run_dir / STORE_FILE
        try:
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(run_dir, exc) from None
        earlier = self.path.is_file() and self.path.stat().st_size > 0
        db = None
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            # A damaged store is refused before anything is written to it: SQLite's quick check of every page
            # takes a fraction of a second for a store of hundreds of MB.
            verdict = db.execute("PRAGMA quick_check(1)").fetchone()[0] if earlier else "ok"
            if verdict != "ok":
                db.close()
                raise damaged_store(self.path, f"database disk image is malformed: {verdict.splitlines()[-1]}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            raise store_error(self.path, exc) from None
        self._db = db

    @guarded
    def get(self, stage: str, domain: str, key: str = "") -> Any | None:
        row = self._db.execute(
            "SELECT value FROM artifacts WHERE stage = ? AND domain = ? AND key = ?", (stage, domain, key)
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    @guarded
    def put(self, stage: str, domain: str, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO artifacts (stage, domain, key, value) VALUES (?, ?, ?, ?)",
            (stage, domain, key, orjson.dumps(value)),
        )

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> Path:
        """Replace ``artifacts/<name>.jsonl`` with ``rows`` (written whole, then renamed into place)."""
        return write_whole(self.artifacts_dir / f"{name}.jsonl", (orjson.dumps(row) + b"\n" for row in rows))

    def write_text(self, relative: str, text: str) -> Path:
        path = self.artifacts_dir / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(path.parent, exc) from None
        return write_whole(path, [text.encode()])

    def close(self) -> None:
        self._db.close()
