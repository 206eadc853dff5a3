"""Who called what, how often it failed, and what it cost: per role and per model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dialforge.model.usage import Usage


class Price(BaseModel):
    """US dollars per million tokens; reasoning tokens are billed as completion tokens."""

    model_config = ConfigDict(extra="forbid")

    prompt_per_million: float = Field(ge=0)
    completion_per_million: float = Field(ge=0)

    def cost(self, usage: Usage) -> float:
        return (
            usage.prompt_tokens * self.prompt_per_million + usage.completion_tokens * self.completion_per_million
        ) / 1e6


class CallStats(BaseModel):
    """Counters for one (role, model) pair."""

    usage: Usage = Field(default_factory=Usage)
    retries: Counter[str] = Field(default_factory=Counter)
    failures: Counter[str] = Field(default_factory=Counter)
    output_problems: Counter[str] = Field(default_factory=Counter)
    max_seconds: float = 0.0
    cost: float | None = None


class LedgerRow(CallStats):
    """One row of ``UsageLedger.snapshot``, read back from where it was saved."""

    role: str
    model: str


class UsageLedger:
    """Shared, in-process accounting for every chat-model call of a run.

    Plain dict-and-counter updates: it sits on the hot path and runs on one event loop.
    """

    def __init__(self, prices: dict[str, Price] | None = None) -> None:
        self._prices = prices or {}
        self._stats: dict[tuple[str, str], CallStats] = {}

    def _entry(self, role: str, model: str) -> CallStats:
        key = (role, model)
        entry = self._stats.get(key)
        if entry is None:
            entry = self._stats[key] = CallStats()
        return entry

    def record_call(self, role: str, model: str, usage: Usage) -> None:
        entry = self._entry(role, model)
        entry.usage = entry.usage + usage
        entry.max_seconds = max(entry.max_seconds, usage.seconds)

    def record_retry(self, role: str, model: str, kind: str) -> None:
        self._entry(role, model).retries[kind] += 1

    def record_failure(self, role: str, model: str, kind: str) -> None:
        self._entry(role, model).failures[kind] += 1

    def record_output_problem(self, role: str, model: str, kind: str) -> None:
        self._entry(role, model).output_problems[kind] += 1

    def stats(self, role: str, model: str) -> CallStats:
        entry = self._entry(role, model).model_copy(deep=True)
        price = self._prices.get(model)
        entry.cost = price.cost(entry.usage) if price else None
        return entry

    def usage_by_role(self) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for (role, _model), entry in self._stats.items():
            out[role] = out.get(role, Usage()) + entry.usage
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        """One JSON-ready row per (role, model), for reports and the checkpoint store."""
        return [
            {"role": role, "model": model, **self.stats(role, model).model_dump(mode="json")}
            for role, model in sorted(self._stats)
        ]


_SUMMED = ("usage", "retries", "failures", "output_problems")
"""The fields of a snapshot row that hold counts, added up field by field when rows are merged."""


def merge_snapshots(snapshots: Iterable[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Ledger snapshots (of several sessions or workers) summed per (role, model): usage, retries, failures,
    output problems and cost; the longest call is the longest of any."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for rows in snapshots:
        for row in rows:
            key = (row["role"], row["model"])
            into = merged.get(key)
            if into is None:
                merged[key] = {**row, **{name: dict(row.get(name) or {}) for name in _SUMMED}}
                continue
            for name in _SUMMED:
                for field, value in (row.get(name) or {}).items():
                    into[name][field] = into[name].get(field, 0) + value
            into["max_seconds"] = max(into.get("max_seconds", 0.0), row.get("max_seconds", 0.0))
            if row.get("cost") is not None:
                into["cost"] = (into.get("cost") or 0.0) + row["cost"]
    return [merged[key] for key in sorted(merged)]
