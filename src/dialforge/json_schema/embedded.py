"""JSON values written inside other text: a model's reply in prose, or the examples in a prompt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_PLAIN = json.JSONDecoder()


def embedded_json(text: str, decoder: json.JSONDecoder = _PLAIN) -> Iterator[Any]:
    """Every complete JSON object or array in ``text``, in order; each scan resumes after the value it found."""
    start = 0
    while (start := _next_opening(text, start)) >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start += 1
            continue
        yield value
        start = end


def _next_opening(text: str, start: int) -> int:
    positions = [p for p in (text.find("{", start), text.find("[", start)) if p >= 0]
    return min(positions) if positions else -1
