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
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from dialforge.model.dialogue import Dialogue, DialogueState
from dialforge.model.tools import ToolSpec
from dialforge.pipeline.artifacts import ArtifactStore

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


class StoreError(Exception):
    """The store cannot be written (disk full, permissions): the run stops, and can resume later."""


class RunStore(ArtifactStore):
    def __init__(self, run_dir: Path, *, batch: int = 64, interval_s: float = 0.5) -> None:
        super().__init__(run_dir)
        self._db.executescript(_SCHEMA)
        self._pending: dict[str, tuple[bytes, str, bytes, bytes | None]] = {}
        self._toolsets: dict[int, tuple[list[ToolSpec], str]] = {}
        self._envs: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._batch = batch
        self._interval_s = interval_s
        self._last_flush = time.monotonic()

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

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
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write the checkpoint store {self.run_dir / 'state.sqlite'}: {exc}") from None
        for key, (_, _, _, record) in self._pending.items():
            if record is not None:
                self._envs.pop(key, None)
        self._pending.clear()
        self._last_flush = time.monotonic()

    def unfinished_states(self) -> dict[str, DialogueState]:
        rows = self._db.execute(
            "SELECT d.id, d.state, t.tools, d.env FROM dialogues d JOIN toolsets t ON t.key = d.toolset "
            "WHERE d.finished IS NULL"
        ).fetchall()
        states = {}
        for key, body, tools, env in rows:
            data = orjson.loads(body)
            data["tools"] = orjson.loads(tools)
            data["env"] = orjson.loads(env)
            states[key] = DialogueState.model_validate(data)
        return states

    def finished_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM dialogues WHERE finished = 1")}

    def write_dialogues(self) -> Path:
        """Rewrite ``dialogues.jsonl`` from the finished records, in id order."""
        path = self.run_dir / "dialogues.jsonl"
        partial = path.with_suffix(".jsonl.partial")
        with partial.open("wb") as handle:
            for (record,) in self._db.execute("SELECT record FROM dialogues WHERE finished = 1 ORDER BY id"):
                handle.write(orjson.dumps(orjson.loads(record)) + b"\n")
        partial.replace(path)
        return path

    def close(self) -> None:
        self.flush()
        super().close()
