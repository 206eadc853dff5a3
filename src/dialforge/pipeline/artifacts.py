"""Stage outputs, kept where a resumed run finds them and where a person can read them.

``RUN_DIR/state.sqlite`` (WAL) holds every finished model-backed item, keyed by stage, domain and
item key, committed as soon as it exists: a crash loses at most the call in flight, and a resumed
run asks the model only for what is missing. ``RUN_DIR/artifacts/*.jsonl`` are readable copies,
rewritten from the store when a stage finishes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


class ArtifactStore:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.artifacts_dir = run_dir / "artifacts"
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(run_dir / "state.sqlite", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, stage: str, domain: str, key: str = "") -> Any | None:
        row = self._db.execute(
            "SELECT value FROM artifacts WHERE stage = ? AND domain = ? AND key = ?", (stage, domain, key)
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    def put(self, stage: str, domain: str, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO artifacts (stage, domain, key, value) VALUES (?, ?, ?, ?)",
            (stage, domain, key, orjson.dumps(value)),
        )

    def write_jsonl(self, name: str, rows: Iterable[dict[str, Any]]) -> Path:
        """Replace ``artifacts/<name>.jsonl`` with ``rows`` (written whole, then renamed into place)."""
        path = self.artifacts_dir / f"{name}.jsonl"
        partial = path.with_suffix(".jsonl.partial")
        with partial.open("wb") as handle:
            for row in rows:
                handle.write(orjson.dumps(row) + b"\n")
        partial.replace(path)
        return path

    def write_text(self, relative: str, text: str) -> Path:
        path = self.artifacts_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def close(self) -> None:
        self._db.close()
