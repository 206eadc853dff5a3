"""``RUN_DIR/usage.json``: every model call of a run as its ledger counted it, session by session.

The dialogue records hold the usage of each dialogue; only the ledger sees the rest of what the models did:
the retries of the transport by kind (a 429, a 5xx, a broken body), the calls that finally failed by kind,
and the unusable replies by kind with how many a repair saved. A session is one ``dialforge run`` (or
``extend``) process on the run directory: its entry is rewritten with every checkpoint of the store, so an
interrupted session keeps what it counted up to its last checkpoint, and a resumed run adds a session of its
own instead of overwriting the earlier ones. ``total`` is every session's rows summed per (role, model).
The file is replaced whole, atomically: a reader never sees half of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from dialforge.llm.accounting import LedgerRow, UsageLedger, merge_snapshots
from dialforge.pipeline.artifacts import write_whole

USAGE_FILE = "usage.json"


class SessionCalls(BaseModel):
    """One session's ledger: per role and model, its calls, usage, retries, failures and output problems."""

    started: str = Field(description="UTC, ISO 8601")
    updated: str = Field(description="UTC, ISO 8601: the session's last checkpoint")
    calls: list[LedgerRow] = Field(default_factory=list)


class RunCalls(BaseModel):
    """What ``usage.json`` holds: the sessions in the order they ran, and their sum."""

    total: list[LedgerRow] = Field(default_factory=list)
    sessions: list[SessionCalls] = Field(default_factory=list)


def read_run_calls(run_dir: Path) -> RunCalls:
    """The run's ``usage.json`` (empty for a run without one); ValueError names a file that is not one."""
    path = run_dir / USAGE_FILE
    if not path.is_file():
        return RunCalls()
    try:
        return RunCalls.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise ValueError(f"{path} is not a usage file of dialforge ({problem}); move it away to count anew") from None


class UsageFile:
    """This session's entry in ``usage.json``, after the entries of the sessions before it."""

    def __init__(self, run_dir: Path, ledger: UsageLedger) -> None:
        self.path = run_dir / USAGE_FILE
        self.ledger = ledger
        self.earlier = read_run_calls(run_dir).sessions
        self.started = _now()

    def save(self) -> None:
        """Rewrite the file with this session's ledger as it is now (nothing while the session made no call);
        ``StoreError`` when it cannot be written."""
        rows = self.ledger.snapshot()
        if not rows:
            return
        session = SessionCalls(started=self.started, updated=_now(), calls=[LedgerRow.model_validate(r) for r in rows])
        sessions = [*self.earlier, session]
        total = merge_snapshots([[row.model_dump(mode="json") for row in s.calls] for s in sessions])
        content = RunCalls(total=[LedgerRow.model_validate(row) for row in total], sessions=sessions)
        write_whole(self.path, [content.model_dump_json(indent=2).encode() + b"\n"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
