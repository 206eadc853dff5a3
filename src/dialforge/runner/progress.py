"""What a running generation shows: a live rich panel on a terminal, plain log lines elsewhere (CI)."""

from __future__ import annotations

import math
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
from dialforge.pipeline.preparation import StageProgress


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


def significant(value: float) -> str:
    """``value`` to two significant digits and no exponent (730, 12, 3.4, 0.25, 0): a slow rate is not 0.0."""
    if value == 0:
        return "0"
    decimals = 1 - math.floor(math.log10(abs(value)))
    return f"{round(value, decimals):,.{max(decimals, 0)}f}"


def rate(count: float, seconds: float) -> str:
    """Per second, or per minute below one a second (a slow server's 0.04 calls/s reads ``2.4/min``)."""
    per_second = count / max(seconds, 1e-9)
    return f"{significant(per_second)}/s" if per_second >= 1 else f"{significant(per_second * 60)}/min"


def duration(seconds: float) -> str:
    """``42 s``, ``18 min 3 s``, ``2 h 5 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def stage_outcome(progress: StageProgress) -> str:
    """What a finished stage left: ``14 produced, 2 rejected, 1 repaired, 1 model error``."""
    report = progress.report
    assert report is not None, "only a finished stage has an outcome"
    counts = [
        (report.produced, "produced"),
        (len(report.rejected), "rejected"),
        (report.repaired, "repaired"),
        (len(report.errors), "model errors" if len(report.errors) > 1 else "model error"),
    ]
    return ", ".join(f"{n:,} {what}" for n, what in counts if n or what == "produced")


class Reporter:
    """Counts dialogues and reads the ledger; subclasses decide how often and how to show it. Preparation is
    shown as lines: a stage's start and end, and between them, at most every ``every_s``, its requests answered."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.total = self.already = self.already_failed = self.done = self.failed = self.valid = self.in_flight = 0
        self.ledger: UsageLedger | None = None
        self.calls_before = 0  # the ledger's calls when dialogues started: preparation's are not in their rate
        self.started_at = time.monotonic()
        self.preparing_since: float | None = None
        self.stage_started: dict[tuple[str, str], float] = {}
        self.last_told = 0.0

    def stage(self, text: str) -> None:
        print(f"dialforge: {text}", file=self.stream, flush=True)

    def preparing(self, progress: StageProgress) -> None:
        """One preparation stage of one domain started, had a request answered, or ended."""
        now = time.monotonic()
        if self.preparing_since is None:
            self.preparing_since = now
        key = (progress.domain, progress.stage)
        began = self.stage_started.setdefault(key, now)
        if progress.report is not None:
            what = f"done in {duration(now - began)}: {stage_outcome(progress)}"
        elif progress.done == 0:
            what = "started" + (f" ({progress.parts:,} requests)" if progress.parts > 1 else "")
        elif now - self.last_told < self.every_s:
            return
        else:
            what = f"{progress.done:,}/{progress.parts:,} requests answered in {duration(now - began)}"
        self.last_told = now
        self.stage(f"{progress.domain}: {progress.stage} {what} | preparing for {duration(now - self.preparing_since)}")

    def start(self, *, total: int, already: int, ledger: UsageLedger, already_failed: int = 0) -> None:
        """Dialogues start: ``already`` of the ``total`` were finished by an earlier session, ``already_failed``
        of them failed."""
        self.total, self.already, self.already_failed, self.ledger = total, already, already_failed, ledger
        self.calls_before = CallCounts.of(ledger.snapshot()).total
        self.started_at = time.monotonic()
        if already:
            self.stage(f"resuming: {already} dialogues were already finished ({already_failed} failed)")

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
        finishing = self.done / elapsed
        rows = self.ledger.snapshot() if self.ledger else []
        counts = CallCounts.of(rows)
        tokens = {row["role"]: row["usage"]["prompt_tokens"] + row["usage"]["completion_tokens"] for row in rows}
        costs = [row["cost"] for row in rows if row["cost"] is not None]
        judged = self.done - self.failed
        return {
            "dialogues": f"{self.already + self.done}/{self.total} done, {self.already_failed + self.failed} failed, "
            f"{self.in_flight} in flight",
            "elapsed": duration(elapsed),
            "model calls": rate(counts.total - self.calls_before, elapsed),
            **counts.trouble(),
            "tokens": ", ".join(f"{role} {count:,}" for role, count in sorted(tokens.items())) or "-",
            "cost": f"${sum(costs):.2f}" if costs else "-",
            "judge pass rate": f"{self.valid / judged:.0%}" if judged else "-",
            "eta": duration(remaining / finishing) if finishing and remaining else "-",
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
    """One line every ``every_s`` seconds: readable in CI logs and files. The line once every dialogue is done is
    left to ``stop``, which ends the run with it, so it is not printed twice."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        super().__init__(stream, every_s)
        self._last = 0.0

    def refresh(self) -> None:
        if self.already + self.done >= self.total:
            return
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

    def start(self, *, total: int, already: int, ledger: UsageLedger, already_failed: int = 0) -> None:
        super().start(total=total, already=already, ledger=ledger, already_failed=already_failed)
        self._live.start()

    def refresh(self) -> None:
        self._live.update(self._table())

    def stop(self) -> None:
        self._live.update(self._table())
        self._live.stop()


def reporter_for(stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    return LiveReporter() if stream.isatty() else LogReporter(stream)
