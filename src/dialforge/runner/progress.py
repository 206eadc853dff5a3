"""What a running generation shows: a live rich panel on a terminal, plain log lines elsewhere (CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

from dialforge.llm.accounting import UsageLedger
from dialforge.model.dialogue import DialogueState


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
        calls = sum(row["usage"]["calls"] for row in rows)
        tokens = {row["role"]: row["usage"]["prompt_tokens"] + row["usage"]["completion_tokens"] for row in rows}
        costs = [row["cost"] for row in rows if row["cost"] is not None]
        judged = self.done - self.failed
        return {
            "dialogues": f"{self.already + self.done}/{self.total} done, {self.failed} failed, "
            f"{self.in_flight} in flight",
            "model calls/s": f"{calls / elapsed:.1f}",
            "tokens": ", ".join(f"{role} {count:,}" for role, count in sorted(tokens.items())) or "-",
            "cost": f"${sum(costs):.2f}" if costs else "-",
            "judge pass rate": f"{self.valid / judged:.0%}" if judged else "-",
            "eta": f"{remaining / rate:.0f} s" if rate and remaining else "-",
        }

    def line(self) -> str:
        return "dialforge: " + " | ".join(f"{key}: {value}" for key, value in self.figures().items())


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
