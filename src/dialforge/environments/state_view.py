"""What goal writers are shown of a Python environment's state: a bounded sample of its records, as JSON.

A goal written without seeing the data names records that do not exist, and with real tools its dialogue then
only finds out that nothing is there. The view shows, for each collection of the state (a dict of records keyed
by id, or a list), how many records it holds and a few whole records drawn at random (by the batch's seed, so
batches see different ones), one JSON line each, taken in turn from every collection until the budget is spent;
other top-level values are shown as they are. Long lines are cut.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
from pydantic import BaseModel

from dialforge.environments.forked_state import entries, to_json

LINE_CHARS = 600
"""a record's line is cut beyond this"""


def state_view(state: Any, *, seed: int, tokens: int) -> str:
    """The sample, within about ``tokens`` (characters / 4)."""
    budget = tokens * 4
    top = entries(state) if isinstance(state, dict | BaseModel) else {"state": state}
    rng = random.Random(seed)
    collections: dict[str, tuple[int, list[tuple[Any, Any]]]] = {}
    values: list[str] = []
    for name, value in top.items():
        if isinstance(value, dict) and value and not all(_scalar(item) for item in value.values()):
            keys = list(value)
            chosen = rng.sample(keys, min(len(keys), 50))
            collections[str(name)] = (len(keys), [(key, value[key]) for key in chosen])
        elif isinstance(value, list) and value and not all(_scalar(item) for item in value):
            chosen = rng.sample(range(len(value)), min(len(value), 50))
            collections[str(name)] = (len(value), [(None, value[index]) for index in sorted(chosen)])
        else:
            values.append(_cut(f"{name}: {_json(value)}"))
    used = sum(len(line) + 1 for line in values)
    shown: dict[str, list[str]] = {name: [] for name in collections}
    for turn in range(max((len(rows) for _, rows in collections.values()), default=0)):
        added = False
        for name, (_, rows) in collections.items():
            if turn >= len(rows):
                continue
            key, record = rows[turn]
            line = _cut(_json(record) if key is None else f"{_json(key)}: {_json(record)}")
            if used + len(line) + 1 > budget and shown[name]:
                continue
            shown[name].append(line)
            used += len(line) + 1
            added = True
        if not added:
            break
    parts = ["\n".join(values)] if values else []
    for name, (count, _) in collections.items():
        lines = shown[name]
        parts.append(f"{name} ({count} records, {len(lines)} shown):\n" + "\n".join(lines))
    return "\n\n".join(parts)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _json(value: Any) -> str:
    return orjson.dumps(to_json(value)).decode()


def _cut(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"
