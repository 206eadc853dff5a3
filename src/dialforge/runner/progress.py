"""What a running generation shows: a live rich panel on a terminal, plain log lines elsewhere (CI)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from dialforge.llm.accounting import UsageLedger
from dialforge.model.dialogue import DialogueState


@dataclass(frozen=True)
class CallCounts:
    """A ledger snapshot's calls per role and, over all roles, its retries, failed calls and output problems
    by kind; ``repaired`` (a kind of output problem in the ledger) counts the unusable replies a repair saved."""

    calls: Counter[str]
    retries: Counter[str]
    failures: Counter[str]
    problems: Counter[str]
    repaired: int

    @classmethod
    def of(cls, rows: Sequence[dict[str, Any]]) -> CallCounts:
        calls: Counter[str] = Counter()
        retries: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        problems: Counter[str] = Counter()
        for row in rows:
            calls[row["role"]] += row["usage"]["calls"]
            retries.update(row["retries"])
            failures.update(row["failures"])
            problems.update(row["output_problems"])
        repaired = problems.pop("repaired", 0)
        return cls(calls, retries, failures, problems, repaired)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def trouble(self) -> dict[str, str]:
        """Retries, failed calls and unusable replies, each with its kinds, most frequent first."""
        return {
            "retries": _by_kind(self.retries),
            "failed calls": _by_kind(self.failures),
            "output problems": _by_kind(self.problems) + (f", {self.repaired:,} repaired" if self.problems else ""),
        }


def _by_kind(counts: Counter[str]) -> str:
    """``12 (rate_limited 8, server_error 4)``; ``0`` for none."""
    total = sum(counts.values())
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in counts.most_common())
    return f"{total:,} ({kinds})" if total else "0"


class Reporter:
    """Counts dialogues and reads the ledger; subclasses decide how often and how to show it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = self.already = self.done = self.failed = self.valid = self.in_flight = 0
        self.ledger: UsageLedger | None = None
        self.started_at = time.monotonic()

    def stage(self, text: str) -> None:
        print(f"dialforge: {text}", file=self.stream, flush=True)

    def start(self, *, total: int, already: int, ledger: UsageLedger) -> None:
        self.total, self.already, self.ledger = total, already, ledger
        self.started_at = time.monotonic()
        if already:
            self.stage(f"resuming: {already} dialogues were already finished")

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, state: DialogueState) -> None:
        self.in_flight -= 1
        self.done += 1
        self.failed += state.status == "failed"
        self.valid += state.judgment is not None and state.judgment.judgment == "valid"
        self.refresh()

    def refresh(self) -> None:
        """Show progress now; called after each finished dialogue."""

    def stop(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    def figures(self) -> dict[str, str]:
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        remaining = self.total - self.already - self.done
        rate = self.done / elapsed
        rows = self.ledger.snapshot() if self.ledger else []
        counts = CallCounts.of(rows)
        tokens = {row["role"]: row["usage"]["prompt_tokens"] + row["usage"]["completion_tokens"] for row in rows}
        costs = [row["cost"] for row in rows if row["cost"] is not None]
        judged = self.done - self.failed
        return {
            "dialogues": f"{self.already + self.done}/{self.total} done, {self.failed} failed, "
            f"{self.in_flight} in flight",
            "model calls/s": f"{counts.total / elapsed:.1f}",
            **counts.trouble(),
            "tokens": ", ".join(f"{role} {count:,}" for role, count in sorted(tokens.items())) or "-",
            "cost": f"${sum(costs):.2f}" if costs else "-",
            "judge pass rate": f"{self.valid / judged:.0%}" if judged else "-",
            "eta": f"{remaining / rate:.0f} s" if rate and remaining else "-",
        }

    def line(self) -> str:
        return "dialforge: " + " | ".join(f"{key}: {value}" for key, value in self.figures().items())

    def summary(self) -> str:
        """What this session asked of the models, for the end of a run: calls per role, then the trouble."""
        counts = CallCounts.of(self.ledger.snapshot() if self.ledger else [])
        per_role = ", ".join(f"{role} {n:,}" for role, n in sorted(counts.calls.items()))
        lines = [f"model calls this session: {counts.total:,}" + (f" ({per_role})" if per_role else "")]
        return "\n".join([*lines, *(f"  {key}: {value}" for key, value in counts.trouble().items())])


class LogReporter(Reporter):
    """One line every ``every_s`` seconds: readable in CI logs and files."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        super().__init__(stream)
        self.every_s = every_s
        self._last = 0.0

    def refresh(self) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            print(self.line(), file=self.stream, flush=True)


class LiveReporter(Reporter):
    """A rich table that redraws itself, for a terminal."""

    def __init__(self) -> None:
        super().__init__()
        self._live = Live(self._table(), console=Console(file=self.stream), refresh_per_second=4, transient=False)

    def _table(self) -> Table:
        table = Table(show_header=False, box=None)
        for key, value in self.figures().items():
            table.add_row(key, value)
        return table

    def start(self, *, total: int, already: int, ledger: UsageLedger) -> None:
        super().start(total=total, already=already, ledger=ledger)
        self._live.start()

    def refresh(self) -> None:
        self._live.update(self._table())

    def stop(self) -> None:
        self._live.update(self._table())
        self._live.stop()


def reporter_for(stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    return LiveReporter() if stream.isatty() else LogReporter(stream)
