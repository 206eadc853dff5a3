"""Which rows of the data views a text names, and how a set of goals spreads over the data.

Goals are written from views (``data_view.py``), so the rows a goal can name are the rows it was shown. A text
names a shown row when it holds one of the row's distinctive values ("maya.okafor@example.com", "The Salt
Orchard", as a whole word or phrase, in any case) or its integer key after the table's name ("order 1042",
"order #1042", "customer number 12", "InvoiceId 98"). Rows without either (an order line, keyed by order and
book) are named through the rows they belong to, and are not counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache

from pydantic import BaseModel, Field

from dialforge.environments.sql.data_view import DataView, Key, RowId, ShownRow
from dialforge.environments.sql.schema import DatabaseSchema, Table

_WORD_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


class TableSpread(BaseModel):
    """How a stage's goals spread over one table: rows in it, rows shown to the writers over all the stage's
    views, and shown rows its goals name."""

    table: str
    rows: int
    shown: int
    named: int = Field(description="distinct shown rows that at least one goal names")


def named_rows(text: str, rows: Iterable[ShownRow], schema: DatabaseSchema) -> set[RowId]:
    """The shown ``rows`` that ``text`` names."""
    folded = text.casefold()
    found: set[RowId] = set()
    numbers = _numbers_by_table(text, schema)
    for row in rows:
        by_key = len(row.key) == 1 and isinstance(row.key[0], int) and row.key[0] in numbers.get(row.table, ())
        if by_key or any(_holds(folded, name.casefold()) for name in row.names):
            found.add((row.table, row.key))
    return found


def goal_spread(goals: Sequence[str], views: Sequence[DataView], schema: DatabaseSchema) -> list[TableSpread]:
    """Per table whose shown rows can be named: rows, rows shown over ``views``, shown rows some goal names."""
    shown: dict[RowId, ShownRow] = {(row.table, row.key): row for view in views for row in view.rows}
    nameable = [row for row in shown.values() if row.names or (len(row.key) == 1 and isinstance(row.key[0], int))]
    named: set[RowId] = set()
    for goal in goals:
        named |= named_rows(goal, nameable, schema)
    spread = []
    for table in schema.tables:
        keys: set[Key] = {row.key for row in nameable if row.table == table.name}
        if keys:
            count = sum(1 for name, key in named if name == table.name and key in keys)
            spread.append(TableSpread(table=table.name, rows=table.row_count, shown=len(keys), named=count))
    return spread


def _holds(text: str, value: str) -> bool:
    """Whether ``value`` occurs in ``text`` as a whole word or phrase (not inside a longer word)."""
    value = value.strip()
    start = text.find(value)
    while start != -1:
        end = start + len(value)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() and value[0].isalnum()) and not (after.isalnum() and value[-1].isalnum()):
            return True
        start = text.find(value, start + 1)
    return False


def _numbers_by_table(text: str, schema: DatabaseSchema) -> dict[str, set[int]]:
    """Table -> the numbers ``text`` writes after the table's name or its key column's."""
    return {
        table.name: {int(match.group(1)) for match in _key_pattern(table).finditer(text)}
        for table in schema.tables
        if len(table.key_columns) == 1
    }


@cache
def _key_pattern(table: Table) -> re.Pattern[str]:
    """``order 1042``, ``Order #1042``, ``order number 1042``, ``order_id 1042``, ``InvoiceId: 98``."""
    names = {_phrase(table.name), _phrase(table.key_columns[0].name, drop_id=True)} - {""}
    words = "|".join(sorted(names, key=len, reverse=True))
    return re.compile(
        rf"\b(?:{words})(?:s|es)?(?:[\s_-]*(?:number|no\.?|nr\.?|id))?[\s_-]*[:#]?\s*(\d+)\b", re.IGNORECASE
    )


def _phrase(name: str, *, drop_id: bool = False) -> str:
    """A name as a pattern of its words in the singular: ``InvoiceLine`` -> ``invoice[\\s_-]*line``."""
    words = [word.casefold() for word in _WORD_PARTS.findall(name)]
    if drop_id and words and words[-1] == "id":
        words.pop()
    if not words:
        return ""
    last = words[-1]
    if last.endswith("ies") and len(last) > 4:
        words[-1] = last[:-3] + "y"
    elif last.endswith("s") and not last.endswith("ss") and len(last) > 3:
        words[-1] = last[:-1]
    return r"[\s_-]*".join(re.escape(word) for word in words)
