"""The run's checkpoint store: stage artifacts, every dialogue's latest state, finished records.

One SQLite file in WAL mode (``RUN_DIR/state.sqlite``). States are written after every step but
committed in batches (every ``batch`` writes or ``interval_s`` seconds), so checkpointing costs
little; a crash loses at most the last batch, whose dialogues continue from their previous state.
A state's tool list (shared by every dialogue of a domain) is kept once per tool set, and its
environment (a SQL fork's pages) is serialised again only when a tool step replaced it: both are
the same objects from step to step, so the work is done once per object.
``dialogues.jsonl`` is derived from the records here and rewritten whole, so it never holds a
duplicate or misses a record, however often the run was interrupted.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from dialforge.model.dialogue import Dialogue, DialogueState
from dialforge.model.tools import ToolSpec
from dialforge.pipeline.artifacts import STORE_FILE, ArtifactStore, guarded, store_error, write_whole
from dialforge.runner.usage_file import UsageFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dialogues (
    id TEXT PRIMARY KEY,
    state BLOB NOT NULL,
    toolset TEXT NOT NULL,
    env BLOB NOT NULL,
    record BLOB,
    finished INTEGER
);
CREATE TABLE IF NOT EXISTS toolsets (key TEXT PRIMARY KEY, tools BLOB NOT NULL);
"""
_TOOLS: TypeAdapter[list[ToolSpec]] = TypeAdapter(list[ToolSpec])
DIALOGUES_FILE = "dialogues.jsonl"


def _empty_store_notes(run_dir: Path) -> list[str]:
    """An empty (0-byte) store holds nothing to resume from, so the run starts over: say so, and keep the
    records of an earlier ``dialogues.jsonl`` under another name, since the new run rewrites that file."""
    path = run_dir / STORE_FILE
    if not path.is_file() or path.stat().st_size:
        return []
    note = f"note: {path} is empty (0 bytes), so nothing of an earlier run can be resumed from it; the run starts over"
    dialogues = run_dir / DIALOGUES_FILE
    if dialogues.is_file() and dialogues.stat().st_size:
        stamp = datetime.fromtimestamp(dialogues.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%S")
        kept = dialogues.with_name(f"dialogues.before-restart-{stamp}.jsonl")
        try:
            dialogues.replace(kept)
        except OSError as exc:
            raise store_error(kept, exc) from None
        note += f", and the earlier {DIALOGUES_FILE} is kept as {kept}"
    return [note]


class RunStore(ArtifactStore):
    def __init__(self, run_dir: Path, *, batch: int = 64, interval_s: float = 0.5) -> None:
        self.notes = _empty_store_notes(run_dir)  # before opening: SQLite writes its header into an empty file
        super().__init__(run_dir)
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None
        self._pending: dict[str, tuple[bytes, str, bytes, bytes | None]] = {}
        self._toolsets: dict[int, tuple[list[ToolSpec], str]] = {}
        self._envs: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._batch = batch
        self._interval_s = interval_s
        self._last_flush = time.monotonic()
        self.usage: UsageFile | None = None
        """The session's ``usage.json``, saved with every checkpoint; set by the session that owns the ledger."""

    @guarded
    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    @guarded
    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @guarded
    def save(self, state: DialogueState, record: Dialogue | None = None) -> None:
        """Keep the state (and the record, once finished); committed with the next batch."""
        encoded_record = record.model_dump_json().encode() if record is not None else None
        body = state.model_dump_json(exclude={"tools", "env"}).encode()
        self._pending[state.id] = (body, self._toolset(state), self._env_json(state), encoded_record)
        if len(self._pending) >= self._batch or time.monotonic() - self._last_flush >= self._interval_s:
            self.flush()

    def _toolset(self, state: DialogueState) -> str:
        cached = self._toolsets.get(id(state.tools))
        if cached is not None and cached[0] is state.tools:
            return cached[1]
        tools = _TOOLS.dump_json(state.tools)
        key = hashlib.blake2b(tools, digest_size=16).hexdigest()
        self._db.execute("INSERT OR IGNORE INTO toolsets (key, tools) VALUES (?, ?)", (key, tools))
        self._toolsets[id(state.tools)] = (state.tools, key)  # holding the list keeps its id from being reused
        return key

    def _env_json(self, state: DialogueState) -> bytes:
        cached = self._envs.get(state.id)
        if cached is None or cached[0] is not state.env:
            cached = self._envs[state.id] = (state.env, orjson.dumps(state.env))
        return cached[1]

    def flush(self) -> None:
        if not self._pending:
            self._save_usage()
            return
        rows = [
            (key, state, toolset, env, record, 1 if record else None)
            for key, (state, toolset, env, record) in self._pending.items()
        ]
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO dialogues (id, state, toolset, env, record, finished) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, toolset = excluded.toolset, "
                    "env = excluded.env, record = excluded.record, finished = excluded.finished",
                    rows,
                )
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from None
        for key, (_, _, _, record) in self._pending.items():
            if record is not None:
                self._envs.pop(key, None)
        self._pending.clear()
        self._last_flush = time.monotonic()
        self._save_usage()

    def _save_usage(self) -> None:
        if self.usage is not None:
            self.usage.save()

    @guarded
    def unfinished_states(self) -> dict[str, DialogueState]:
        """The dialogues in flight. Each tool set is read and validated once, and its one list is shared by the
        states that use it (and known to ``save``): thousands of dialogues resume without checking the same tool
        schemas thousands of times."""
        rows = self._db.execute("SELECT id, state, toolset, env FROM dialogues WHERE finished IS NULL").fetchall()
        toolsets: dict[str, list[ToolSpec]] = {}
        states = {}
        for key, body, toolset, env in rows:
            tools = toolsets.get(toolset)
            if tools is None:
                (encoded,) = self._db.execute("SELECT tools FROM toolsets WHERE key = ?", (toolset,)).fetchone()
                tools = toolsets[toolset] = _TOOLS.validate_json(encoded)
                self._toolsets[id(tools)] = (tools, toolset)
            data = orjson.loads(body)
            data["env"] = orjson.loads(env)
            state = DialogueState.model_validate(data | {"tools": []})
            state.tools = tools
            states[key] = state
        return states

    @guarded
    def finished_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM dialogues WHERE finished = 1")}

    @guarded
    def failed_ids(self) -> set[str]:
        """Finished dialogues whose record failed (a truncated dialogue is completed on the goals it kept)."""
        rows = self._db.execute("SELECT id, record FROM dialogues WHERE finished = 1")
        return {key for key, record in rows if orjson.loads(record).get("status") == "failed"}

    @guarded
    def write_dialogues(self) -> Path:
        """Rewrite ``dialogues.jsonl`` from the finished records, in id order."""
        rows = self._db.execute("SELECT record FROM dialogues WHERE finished = 1 ORDER BY id")
        try:
            return write_whole(
                self.run_dir / DIALOGUES_FILE, (orjson.dumps(orjson.loads(record)) + b"\n" for (record,) in rows)
            )
        finally:
            rows.close()  # a write cut short leaves the query open, and SQLite would keep the file open with it

    def close(self) -> None:
        try:
            self.flush()
        finally:
            super().close()
