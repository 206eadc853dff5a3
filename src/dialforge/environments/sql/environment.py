"""Real tool execution: SQL tools run on each dialogue's own copy-on-write fork of a SQLite database.

``SQLDatabase`` is the shared, read-only source (a ``.sqlite`` file, or one built from a SQL
script). ``SQLEnvironment`` is one state of it: tool calls change it, ``fork`` gives a dialogue
its own isolated copy, ``digest`` names the state, ``diff`` says which rows changed, and
``check`` evaluates a task's read-only SQL assertion on it. ``SQLEnvironments`` is a domain's factory:
each dialogue's fork, or one rebuilt from the pages its stored state kept.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import apsw
import orjson
import sqlglot
from sqlglot import exp

from dialforge.environments.arguments import call_problem
from dialforge.environments.base import (
    CheckOutcome,
    ExecutedCall,
    RestoreError,
    StateDiff,
    TableDiff,
    ToolErrorKind,
    ToolResult,
    Verification,
)
from dialforge.environments.sql.data_view import DEFAULT_VIEW_TOKENS, DataView, ViewPlan, draw_view, view_plan
from dialforge.environments.sql.overlay import BaseFile, PageOverlay, connect, julian_ms, sql_clock
from dialforge.environments.sql.sandbox import (
    DATABASE_SCRIPT_LIMITS,
    MAX_SQL_CHARS,
    Authorizer,
    Deadline,
    SandboxLimits,
    harden,
    one_statement_only,
)
from dialforge.environments.sql.schema import (
    DatabaseSchema,
    Table,
    introspect,
    quote_identifier,
)
from dialforge.environments.sql.script import build_database
from dialforge.environments.sql.source import DatabaseSourceError, open_readonly
from dialforge.environments.sql.tool import SQLTool
from dialforge.model.messages import Message
from dialforge.model.tasks import Check, SQLCheck
from dialforge.model.tools import ToolSpec

_WAL_FORMAT = 2
_DIFF_ROWS_CAP = 100
_TOOL_STATEMENTS = (exp.Select, exp.SetOperation, exp.Insert, exp.Update, exp.Delete)


class _NullForMissing(dict[str, Any]):
    """Bindings where a parameter the call left out binds as NULL (optional filters)."""

    def __missing__(self, key: str) -> None:
        return None


def _bindings(arguments: dict[str, Any]) -> _NullForMissing:
    """Arguments as SQLite values: lists and objects as JSON text (what ``json_each(:ids)`` reads)."""
    return _NullForMissing(
        {k: orjson.dumps(v).decode() if isinstance(v, list | dict) else v for k, v in arguments.items()}
    )


RawRowsByKey = dict[tuple[Any, ...], list[tuple[Any, ...]]]
"""Rows of (typeof, bytes) pairs, grouped by their key columns' (typeof, bytes) pairs."""


def _json_value(value: Any) -> Any:
    """A column value in a tool result: blobs are described, not dumped on the agent."""
    return f"<blob {len(value)} bytes>" if isinstance(value, bytes) else value


def _raw_columns(table: Table) -> str:
    """Each column as ``typeof`` and raw bytes: nothing is decoded, 1 and 1.0 and x'31' and '1' all differ."""
    return ", ".join(f"typeof({q}), CAST({q} AS BLOB)" for q in (quote_identifier(c.name) for c in table.columns))


def _display(kind: str, raw: bytes | None) -> Any:
    """A raw column value as a reader sees it in a diff: numbers, text, ``x'..'`` for blobs."""
    if raw is None or kind == "null":
        return None
    if kind == "integer":
        return int(raw)
    if kind == "real":
        return float(raw)
    if kind == "text":
        return raw.decode("utf-8", "replace")
    return f"x'{raw.hex()}'"


def _truthy(value: Any) -> bool:
    """SQLite's truth: numbers are true unless 0; text counts as the number it starts with ('0' is false)."""
    if isinstance(value, str):
        try:
            return float(value.strip()) != 0
        except ValueError:
            return False
    return bool(value)


def parse_statement(sql: str) -> exp.Expression:
    """The one statement of a tool or check; ``ValueError`` unless it is one SELECT, INSERT, UPDATE or DELETE."""
    if len(sql) > MAX_SQL_CHARS:
        raise ValueError(f"the SQL is {len(sql)} characters long; at most {MAX_SQL_CHARS} are allowed")
    try:
        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise ValueError(f"the SQL does not parse: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ValueError("the SQL is nested too deeply to parse") from None
    if len(statements) != 1:
        raise ValueError(f"exactly one statement is allowed, this SQL has {len(statements)}")
    if not isinstance(statements[0], _TOOL_STATEMENTS):
        keyword = sql.split(maxsplit=1)[0].upper() if sql.strip() else "nothing"
        raise ValueError(f"only SELECT, INSERT, UPDATE or DELETE is allowed; this SQL is a {keyword} statement")
    return statements[0]


class SQLDatabase:
    """A source database every dialogue forks from: a read-only file, its schema, cached table digests."""

    def __init__(self, path: Path, *, source: str | None = None, keep_alive: TemporaryDirectory[str] | None = None):
        connection = open_readonly(path)
        try:
            self.schema: DatabaseSchema = introspect(connection)
        finally:
            connection.close()
        self.path = path
        self.source = source or str(path)
        self.base = BaseFile.open(str(path))
        self._keep_alive = keep_alive
        self._table_digests: dict[str, str] = {}
        self._reader: SQLEnvironment | None = None
        self._view_plan: ViewPlan | None = None
        # The base file stays open while any fork may read it; released with the database object.
        self._finalizer = weakref.finalize(self, self.base.close)

    @classmethod
    def load(cls, path: str | Path) -> SQLDatabase:
        """A ``.sql`` script or a SQLite file, by its extension."""
        path = Path(path)
        return cls.from_sql_file(path) if path.suffix.lower() == ".sql" else cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> SQLDatabase:
        """An existing SQLite file, never modified.

        A WAL-mode file (whose readers write ``-shm`` and ``-wal`` files beside it) is copied with its
        WAL into a private folder first and read from there, so the source's folder is never touched.
        """
        path = Path(path)
        if not _is_wal(path):
            return cls(path)
        workdir = TemporaryDirectory(prefix="dialforge-db-")
        copy = Path(workdir.name) / "snapshot.sqlite"
        shutil.copyfile(path, copy)
        if (wal := path.with_name(path.name + "-wal")).is_file():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        connection = apsw.Connection(str(copy))
        connection.execute("PRAGMA journal_mode=DELETE").fetchall()  # folds the WAL in, leaves a plain file
        connection.close()
        return cls(copy, source=str(path), keep_alive=workdir)

    @classmethod
    def from_script(
        cls, script: str, *, source: str = "<SQL script>", limits: SandboxLimits | None = None
    ) -> SQLDatabase:
        """A database built from DDL and INSERTs (a ``.sql`` file, or a schema a model wrote).

        The script is untrusted: it runs under an authorizer that allows schema and rows but no ATTACH,
        PRAGMA (``foreign_keys`` aside), transaction control or extension loading, within a time budget and a
        size cap; its statements and values may be as long as dumps write them (``DATABASE_SCRIPT_LIMITS``).
        """
        workdir = TemporaryDirectory(prefix="dialforge-db-")
        path = Path(workdir.name) / "database.sqlite"
        build_database(path, script, source=source, limits=limits or DATABASE_SCRIPT_LIMITS)
        return cls(path, source=source, keep_alive=workdir)

    @classmethod
    def from_sql_file(cls, path: str | Path) -> SQLDatabase:
        path = Path(path)
        try:
            script = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DatabaseSourceError(path, f"cannot be read ({exc.strerror})", "check the path") from None
        except UnicodeDecodeError:
            raise DatabaseSourceError(path, "is not UTF-8 text", "a .sql file is a UTF-8 SQL script") from None
        return cls.from_script(script, source=str(path))

    def environment(self, tools: Sequence[SQLTool], limits: SandboxLimits | None = None) -> SQLEnvironment:
        """The root state; give each dialogue ``environment.fork()``."""
        return SQLEnvironment(self, tools, limits or SandboxLimits())

    def table_digest(self, table: Table) -> str:
        """The digest of a table as the base file holds it; computed once."""
        if table.name not in self._table_digests:
            if self._reader is None:
                self._reader = self.environment(())
            self._table_digests[table.name] = self._reader.table_digest(table)
        return self._table_digests[table.name]

    def data_view(
        self, *, seed: int = 0, tokens: int = DEFAULT_VIEW_TOKENS, earlier: Iterable[DataView] = ()
    ) -> DataView:
        """The limited view of the data that prompts show: linked rows drawn with ``seed``, within about
        ``tokens``, showing first what the ``earlier`` views of the run did not (``data_view.py``); the plan the
        draws start from is made once."""
        shown = frozenset(stratum for view in earlier for stratum in view.strata)
        connection = open_readonly(self.path)
        try:
            if self._view_plan is None:
                self._view_plan = view_plan(connection, self.schema)
            return draw_view(connection, self.schema, self._view_plan, seed=seed, tokens=tokens, earlier=shown)
        finally:
            connection.close()

    def close(self) -> None:
        """Release the base file now (forks still open must not be used afterwards)."""
        if self._reader is not None:
            self._reader.close()
        self._finalizer()


def _is_wal(path: Path) -> bool:
    """Whether the header says WAL mode, read from the bytes: opening such a file, even read-only,
    would create ``-wal`` and ``-shm`` files beside it. Anything odd is left to ``open_readonly``."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return header.startswith(b"SQLite format 3\x00") and header[18] == _WAL_FORMAT


class _ToolSet:
    """A list of SQL tools, checked once and shared by every fork (forking must stay cheap)."""

    def __init__(self, tools: Iterable[SQLTool]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.specs = {name: tool.to_spec() for name, tool in self.tools.items()}
        self.inserts: set[str] = set()
        for tool in self.tools.values():
            try:
                statement = parse_statement(tool.sql)
            except ValueError as exc:
                raise ValueError(f"SQL tool {tool.name!r}: {exc}") from None
            if isinstance(statement, exp.Insert):
                self.inserts.add(tool.name)


class SQLEnvironment:
    """One state of a ``SQLDatabase`` with its SQL tools; isolated from every other fork."""

    def __init__(
        self,
        database: SQLDatabase,
        tools: Iterable[SQLTool] | _ToolSet,
        limits: SandboxLimits,
        *,
        overlay: PageOverlay | None = None,
        written: Iterable[str] = (),
        clock: datetime | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        """what SQL's 'now' reads in this state (the dialogue's own date and time); ``None``: the wall clock"""
        self.limits = limits
        self._toolset = tools if isinstance(tools, _ToolSet) else _ToolSet(tools)
        self._tools = self._toolset.tools
        self._specs = self._toolset.specs
        base = database.base
        self._overlay = overlay or PageOverlay(base, {}, base.size, limits.max_overlay_bytes)
        self._written: set[str] = set(written)
        self._authorizer = Authorizer(self._written)
        self._deadline = Deadline()
        self._connection = connect(self._overlay, foreign_keys=database.schema.foreign_keys_enforced)
        harden(self._connection, limits, self._authorizer, self._deadline)

    def tools(self) -> list[ToolSpec]:
        return list(self._specs.values())

    @property
    def sql_tools(self) -> list[SQLTool]:
        return list(self._tools.values())

    async def call(self, name: str, arguments: dict[str, Any], *, conversation: Sequence[Message] = ()) -> ToolResult:
        return self.execute(name, arguments)

    def execute(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run one tool call; never raises: every problem is a ``ToolResult`` error the agent can read."""
        if problem := call_problem(name, arguments, self._specs):
            return problem
        tool = self._tools[name]
        return self._guarded(tool.name, lambda: self._run(tool, arguments))

    def _statement(
        self, sql: str, arguments: dict[str, Any], *, cache: bool = True
    ) -> tuple[list[dict[str, Any]], bool]:
        """Run exactly one statement and collect its rows. Uncached statements are authorized anew,
        which read-only queries need: a cached statement skips the authorizer."""
        cursor = self._connection.cursor()
        cursor.exec_trace = one_statement_only()
        try:
            cursor.execute(sql, _bindings(arguments), can_cache=cache)
            return self._collect(cursor)
        finally:
            cursor.close()

    def _run(self, tool: SQLTool, arguments: dict[str, Any]) -> ToolResult:
        rows, truncated = self._statement(tool.sql, arguments)
        if tool.kind == "write":
            changed = self._connection.changes()
            content: dict[str, Any] = {"rows_affected": changed}
            if tool.name in self._toolset.inserts and changed:
                content["last_row_id"] = self._connection.last_insert_rowid()
            if rows:
                content["rows"] = rows
            return ToolResult(content=content, truncated=truncated)
        if (tool.returns or {}).get("type") == "object":
            if not rows:
                return ToolResult.failure("not_found", f"{tool.name}: no row matches {arguments}", arguments=arguments)
            return ToolResult(content=rows[0])
        return ToolResult(content=rows, truncated=truncated)

    def result_fields(self, sql: str) -> list[str] | None:
        """The fields a tool with this SQL returns, as ``_run`` shapes its result: a read's columns; a write's
        ``rows_affected``, an INSERT's ``last_row_id`` and its RETURNING columns. Read off the prepared statement
        without running it (so a write changes nothing); None when the SQL does not prepare."""
        try:
            statement = parse_statement(sql)
        except ValueError:
            return None
        columns: list[str] = []

        def stop_before_running(cursor: apsw.Cursor, _sql: str, _bindings: Any) -> bool:
            columns.extend(_unique_names(column for column, _ in cursor.get_description()))
            return False

        cursor = self._connection.cursor()
        cursor.exec_trace = stop_before_running
        self._authorizer.trusted = True  # only prepared: nothing runs, and no table counts as written
        try:
            cursor.execute(sql, _bindings({}), can_cache=False)
        except apsw.ExecTraceAbort:
            pass
        except apsw.Error:
            return None
        finally:
            self._authorizer.trusted = False
            cursor.close()
        if not isinstance(statement, exp.Insert | exp.Update | exp.Delete):
            return columns
        return ["rows_affected", *(["last_row_id"] if isinstance(statement, exp.Insert) else []), *columns]

    def _collect(self, cursor: apsw.Cursor) -> tuple[list[dict[str, Any]], bool]:
        """Rows as objects, stopped at the row cap or the result-size cap."""
        rows: list[dict[str, Any]] = []
        names: list[str] | None = None
        chars = 0
        for row in cursor:
            if names is None:
                names = _unique_names(column for column, _ in cursor.get_description())
            if len(rows) >= self.limits.max_rows:
                return rows, True
            record = {name: _json_value(value) for name, value in zip(names, row, strict=True)}
            chars += len(orjson.dumps(record))
            if chars > self.limits.max_result_chars:
                return rows, True
            rows.append(record)
        return rows, False

    def _guarded(self, what: str, run: Callable[[], ToolResult]) -> ToolResult:
        """Run a statement under the time budget and this state's clock, and turn SQLite's errors into readable
        tool errors."""
        self._deadline.start(self.limits.time_budget_s)
        clock = sql_clock.set(None if self.clock is None else julian_ms(self.clock))
        try:
            return run()
        except apsw.ConstraintError as exc:
            return ToolResult.failure("constraint_violation", f"{what}: {exc}")
        except apsw.InterruptError:
            return ToolResult.failure(
                "timeout", f"{what}: stopped after the {self.limits.time_budget_s:g} s time budget of one tool call"
            )
        except apsw.AuthError as exc:
            return ToolResult.failure("refused", f"{what}: not allowed in the sandbox ({exc})")
        except (apsw.FullError, apsw.TooBigError) as exc:
            return ToolResult.failure("too_large", f"{what}: {exc}")
        except apsw.NoMemError:
            return ToolResult.failure("too_large", f"{what}: the statement needed more memory than the sandbox allows")
        except apsw.ExecTraceAbort:
            return ToolResult.failure("refused", f"{what}: only one statement may run")
        except apsw.Error as exc:
            message = str(exc)
            refused = "not authorized" in message or "may not be modified" in message
            kind: ToolErrorKind = "refused" if refused else "execution_error"
            return ToolResult.failure(kind, f"{what}: {message}")
        except (TypeError, OverflowError, UnicodeEncodeError) as exc:
            return ToolResult.failure("invalid_arguments", f"{what}: a value cannot be stored in SQLite ({exc})")
        except UnicodeDecodeError:
            return ToolResult.failure("execution_error", f"{what}: the data holds text that is not valid UTF-8")
        finally:
            sql_clock.reset(clock)
            self._deadline.clear()

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> ToolResult:
        """Run read-only SQL on this state (task checks, trial runs, data views): writes are refused."""
        try:
            parse_statement(sql)
        except ValueError as exc:
            return ToolResult.failure("refused", str(exc))

        def run() -> ToolResult:
            rows, truncated = self._statement(sql, parameters or {}, cache=False)
            return ToolResult(content=rows, truncated=truncated)

        self._authorizer.read_only = True
        try:
            return self._guarded("query", run)
        finally:
            self._authorizer.read_only = False

    def check(self, sql: str) -> tuple[bool, str]:
        """A task's verification: passes when the query's first value is truthy. Returns (passed, why)."""
        result = self.query(sql)
        if result.error is not None:
            return False, f"the check could not run: {result.error.message}"
        rows = result.content
        if not rows:
            return False, "the check returned no row"
        value = next(iter(rows[0].values()))
        return _truthy(value), f"the check returned {value!r}"

    def verify(self, checks: Sequence[Check]) -> Verification:
        """The checks on this state, read-only, and the rows changed from the database as it was."""
        outcomes = [self._outcome(check) for check in checks]
        initial = SQLEnvironment(self.database, self._toolset, self.limits)
        try:
            return Verification(
                initial_digest=initial.digest(), final_digest=self.digest(), diff=self.diff(initial), checks=outcomes
            )
        finally:
            initial.close()

    def _outcome(self, check: Check) -> CheckOutcome:
        if not isinstance(check, SQLCheck):
            return CheckOutcome.cannot_run(check, "a SQL database")
        passed, detail = self.check(check.sql)
        return CheckOutcome.of(check, passed=passed, detail=detail)

    def fork(self, *, clock: datetime | None = None) -> SQLEnvironment:
        """An isolated copy of this state: it shares unchanged pages with this one and sees none of its later writes.
        ``clock`` sets the time its SQL reads as 'now' (by default this state's)."""
        return SQLEnvironment(
            self.database,
            self._toolset,
            self.limits,
            overlay=self._overlay.copy(),
            written=self._written,
            clock=clock or self.clock,
        )

    def snapshot(self) -> dict[str, Any]:
        """This state as JSON-ready data: the pages it wrote (base64) and the tables it touched.

        Persisting pages rather than replaying calls keeps nondeterministic SQL (``random()``,
        ``CURRENT_TIMESTAMP``) exact across a crash.
        """
        return {
            "kind": "sql",
            "size": self._overlay.size,
            "pages": {str(index): base64.b64encode(page).decode() for index, page in self._overlay.pages.items()},
            "written": sorted(self._written),
            "clock": None if self.clock is None else self.clock.isoformat(),
        }

    def restore(self, snapshot: dict[str, Any]) -> SQLEnvironment:
        """A fork of this database in the state ``snapshot`` describes (from ``snapshot()`` of any fork)."""
        if snapshot.get("kind") != "sql":
            raise ValueError(f"not a SQL environment snapshot: kind {snapshot.get('kind')!r}")
        pages = {int(index): base64.b64decode(page) for index, page in snapshot["pages"].items()}
        overlay = PageOverlay(self.database.base, pages, int(snapshot["size"]), self.limits.max_overlay_bytes)
        clock = snapshot.get("clock")
        return SQLEnvironment(
            self.database,
            self._toolset,
            self.limits,
            overlay=overlay,
            written=snapshot["written"],
            clock=None if clock is None else datetime.fromisoformat(clock),
        )

    @property
    def changed_bytes(self) -> int:
        """Memory this state holds beyond the shared base (its written pages)."""
        return self._overlay.bytes_held

    def _written_tables(self) -> dict[str, Table]:
        tables = {table.name.casefold(): table for table in self.database.schema.tables}
        return {name.casefold(): tables[name.casefold()] for name in self._written if name.casefold() in tables}

    def _raw_rows(self, table: Table, *, leading: Sequence[str] = ()) -> apsw.Cursor:
        """Rows as (typeof, bytes) pairs, ``leading`` columns first, sorted by everything: a canonical order."""
        columns = [quote_identifier(name) for name in leading]
        selected = ", ".join([*(f"typeof({c}), CAST({c} AS BLOB)" for c in columns), _raw_columns(table)])
        width = 2 * (len(columns) + len(table.columns))
        order = ", ".join(str(position) for position in range(1, width + 1))
        sql = f"SELECT {selected} FROM {quote_identifier(table.name)} ORDER BY {order}"
        return self._connection.execute(sql, can_cache=False)

    def table_digest(self, table: Table) -> str:
        """Hash of a table's rows by value (type and bytes), in canonical order: equal contents hash equal."""
        digest = hashlib.blake2b(digest_size=16)
        self._authorizer.trusted = True
        try:
            for row in self._raw_rows(table):
                digest.update(repr(row).encode())
        finally:
            self._authorizer.trusted = False
        return digest.hexdigest()

    def digest(self) -> str:
        """A stable hash of the state: per-table row hashes (recomputed only for tables this lineage wrote)
        and the AUTOINCREMENT counters."""
        written = self._written_tables()
        digest = hashlib.blake2b(digest_size=16)
        for table in sorted(self.database.schema.tables, key=lambda t: t.name):
            own = table.name.casefold() in written
            table_hash = self.table_digest(table) if own else self.database.table_digest(table)
            digest.update(f"{table.name}\0{table_hash}\n".encode())
        self._authorizer.trusted = True
        try:
            if self._connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchall():
                counters = self._connection.execute("SELECT name, seq FROM sqlite_sequence ORDER BY name").fetchall()
                digest.update(repr(counters).encode())
        finally:
            self._authorizer.trusted = False
        return digest.hexdigest()

    def _keyed_rows(self, table: Table) -> RawRowsByKey:
        """Raw rows grouped by key (primary key, else rowid); a key may hold several rows (NULL keys)."""
        keys = [column.name for column in table.key_columns]
        self._authorizer.trusted = True
        try:
            grouped: RawRowsByKey = {}
            for row in self._raw_rows(table, leading=keys):
                grouped.setdefault(row[: 2 * len(keys)], []).append(row[2 * len(keys) :])
            return grouped
        finally:
            self._authorizer.trusted = False

    def diff(self, other: SQLEnvironment) -> StateDiff:
        """Rows inserted, updated and deleted from ``other`` to this state, per table (at most 100 of each)."""
        if other.database is not self.database:
            raise ValueError("only states of the same database can be compared")
        tables = {**other._written_tables(), **self._written_tables()}
        diff = StateDiff()
        for table in sorted(tables.values(), key=lambda t: t.name):
            changes = _table_diff(table, other._keyed_rows(table), self._keyed_rows(table))
            if not changes.empty:
                diff.tables[table.name] = changes
        return diff

    def close(self) -> None:
        self._connection.close()


def _unique_names(names: Iterable[str]) -> list[str]:
    """Column names as object keys; a JOIN's repeated names get ``_2``, ``_3`` suffixes instead of vanishing."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        out.append(name if count == 1 else f"{name}_{count}")
    return out


def _shown(names: Sequence[str], raw: tuple[Any, ...]) -> dict[str, Any]:
    return {name: _display(raw[2 * i], raw[2 * i + 1]) for i, name in enumerate(names)}


def _table_diff(
    table: Table,
    before: dict[tuple[Any, ...], list[tuple[Any, ...]]],
    after: dict[tuple[Any, ...], list[tuple[Any, ...]]],
) -> TableDiff:
    """Compare by key; a key holding several rows (NULL keys) is compared as a multiset of rows."""
    names = [column.name for column in table.columns]
    key_names = [column.name for column in table.key_columns]
    changes = TableDiff()
    for key in sorted(before.keys() | after.keys(), key=repr):
        old, new = before.get(key, []), after.get(key, [])
        if len(old) == len(new) == 1:
            if old != new:
                changes.updated.append(
                    {"key": _shown(key_names, key), "before": _shown(names, old[0]), "after": _shown(names, new[0])}
                )
            continue
        removed, added = Counter(old) - Counter(new), Counter(new) - Counter(old)
        changes.deleted += [_shown(names, row) for row in removed.elements()]
        changes.inserted += [_shown(names, row) for row in added.elements()]
    for rows in (changes.inserted, changes.updated, changes.deleted):
        del rows[_DIFF_ROWS_CAP:]
    return changes


class SQLEnvironments:
    """A SQL domain's environments: each dialogue works on its own fork of the database, whose SQL 'now' is the
    dialogue's; a stored state keeps the fork's pages, so it comes back exactly, random() and all."""

    prompts: tuple[str, ...] = ()

    def __init__(self, database: SQLDatabase, tools: Sequence[SQLTool], limits: SandboxLimits | None = None) -> None:
        self.root = database.environment(tools, limits)

    def tools(self) -> list[ToolSpec]:
        return self.root.tools()

    def new(self, *, seed: int, clock: str) -> SQLEnvironment:
        return self.root.fork(clock=datetime.fromisoformat(clock))

    async def restore(self, snapshot: dict[str, Any], *, seed: int, calls: Sequence[ExecutedCall]) -> SQLEnvironment:
        try:
            return self.root.restore(snapshot)
        except (ValueError, KeyError, TypeError) as exc:
            raise RestoreError(f"the stored SQL state cannot be read back: {exc}") from None

    async def close(self) -> None:
        """The root state's connection; every dialogue's fork is closed with its dialogue."""
        self.root.close()
