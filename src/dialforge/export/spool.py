"""The spool: an export's records as JSON lines in a temporary file, each found again by its span.

Spooling lets an export hold one record at a time, however large the run: splits are cut over the spans, and
every output (JSONL copies, Arrow batches, template checks) reads the records back from the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson

Span = tuple[int, int]
"""where one record's JSON line lies in the spool file: (offset, length)"""


def append(spool: IO[bytes], record: dict[str, Any]) -> Span:
    """Write ``record`` as one JSON line at the end of ``spool``; returns where it lies."""
    line = orjson.dumps(record) + b"\n"
    span = (spool.tell(), len(line))
    spool.write(line)
    return span


def read_span(spool: IO[bytes], span: Span) -> bytes:
    """The JSON line at ``span``, newline included."""
    spool.seek(span[0])
    return spool.read(span[1])


def spooled_records(spool: str, spans: list[Span]) -> Iterator[dict[str, Any]]:
    """The records at ``spans``, in that order (a plain function of its arguments, as ``datasets`` wants)."""
    with open(spool, "rb") as handle:
        for span in spans:
            yield orjson.loads(read_span(handle, span))
