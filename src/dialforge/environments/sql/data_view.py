"""The limited view of the data that task writers see: linked samples, stratified, sized by a token budget, seeded.

A writer grounds goals only in the rows it is shown (docs/method.md, "Tasks"). The first rows of each table show
every writer the same three customers, next to orders of other customers, all from the same month. A view is
made of *entity groups* instead: a root row (a customer) with the rows that hang off it, two levels down (their
orders, the orders' lines, their reviews), and every row those rows refer to (the book of an order line, its
author), so that an id shown in a referencing column is shown in its table too.

- Roots are rows of the tables that others hang off: a table's *score* is the number of tables within two levels
  below it whose rows per parent row stay few (at most ``MAX_FANOUT``), so a customer (orders, lines, reviews)
  is a root and a genre with its thousands of tracks is not.
- Roots are stratified: each low-cardinality column (a status, a category, a rating) and each date column (by
  year, or by month when the data spans one year) of every table splits its rows into *strata*. Each next group
  is rooted at (the root above) a row of a stratum the view does not show yet, rare ones first (weight
  1 / rows), and strata that the run's earlier views showed last, so that every value present in the data turns
  up in some view over a run.
- Groups are added while the rendered text stays within the budget, estimated as ``CHARS_PER_TOKEN``
  characters a token; tables no group reached then get a few rows of their own (with the rows they refer to).
- The draw is seeded: one seed, one view; another seed, other rows.

Cost on a large database: a plan made once per database (a sample of each table, read by rowid, and one
``GROUP BY`` per stratifying column), then per group indexed lookups by key with ``LIMIT`` (children by their
foreign key: fast where that column is indexed, as foreign keys usually are).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import apsw
import orjson

from dialforge.environments.sql.schema import Column, DatabaseSchema, ForeignKey, Table, quote_identifier, single_row

Key = tuple[Any, ...]
RowId = tuple[str, Key]
"""A row as (table name, key values)."""

CHARS_PER_TOKEN = 4
"""The budget's estimate: about four characters of this text make one token."""
DEFAULT_VIEW_TOKENS = 2500
MAX_FANOUT = 50.0
"""Rows per parent row above which a child table is not part of a group (a genre's tracks)."""
MAX_STRATUM_VALUES = 12
"""Distinct values (in a sample) up to which a column stratifies its table."""
_MAX_VALUES_IN_DATA = 2 * MAX_STRATUM_VALUES
_SAMPLE_ROWS = 200
_READ_WHOLE = 1000
"""Tables up to this size are sampled whole."""
_CHILDREN = (3, 2)
"""Rows kept per parent row and child table, one level and two levels below a root."""
_CHILD_CANDIDATES = 50
_UP_HOPS = 5
"""References followed upwards from a row (a chain of managers ends somewhere)."""
_CLIMB = 3
_GROUP_SHARE = 0.85
"""The share of the budget groups may fill; the rest is for tables no group reached."""
_FILL_ROWS = 2
_MAX_GROUPS = 40
_MISSES = 3
_NAME_CHARS = (4, 60)
_DISTINCT_SHARE = 0.9
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ShownRow:
    """A row a view shows: its table, its key, and the distinctive values (a name, an email, a title) that a
    text can name it by."""

    table: str
    key: Key
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataView:
    """The text a prompt shows and the rows it holds (what goals written from it can name)."""

    text: str
    rows: tuple[ShownRow, ...] = ()
    strata: frozenset[Stratum] = frozenset()
    """The strata its rows show: a later view of the same run goes to the others first."""


@dataclass(frozen=True)
class Stratum:
    """The rows of ``table`` whose ``column`` holds ``value``: the whole value, or a date's first ``prefix``
    characters (``2024``, ``2024-03``)."""

    table: str
    column: str
    value: Any
    rows: int
    prefix: int = 0

    def sql(self) -> str:
        column = quote_identifier(self.column)
        return f"substr({column}, 1, {self.prefix}) = ?" if self.prefix else f"{column} = ?"

    def holds(self, value: Any) -> bool:
        if self.prefix:
            return isinstance(value, str) and value[: self.prefix] == self.value
        return bool(value == self.value)


@dataclass(frozen=True)
class ViewPlan:
    """What every view of one database starts from; made once (``view_plan``)."""

    roots: Mapping[str, int]
    """Root table -> score: tables within two levels below it with few rows per parent row."""
    strata: tuple[Stratum, ...]
    names: Mapping[str, tuple[str, ...]]
    """Table -> its distinctive text columns (nearly every value different: names, emails, titles)."""
    rowids: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Rowid table -> (smallest, largest rowid), for random probes by an indexed range."""


def view_plan(conn: apsw.Connection, schema: DatabaseSchema) -> ViewPlan:
    """Roots, strata and distinctive columns of the database, from a sample of each table."""
    strata: list[Stratum] = []
    names: dict[str, tuple[str, ...]] = {}
    rowids: dict[str, tuple[int, int]] = {}
    for table in schema.tables:
        if not table.row_count or not table.key_columns:
            continue
        if (rowid := table.rowid_name) is not None:
            low, high = single_row(conn, f"SELECT min({rowid}), max({rowid}) FROM main.{quote_identifier(table.name)}")
            assert isinstance(low, int) and isinstance(high, int)
            rowids[table.name] = (low, high)
        sample = _sample(conn, table, rowids.get(table.name))
        names[table.name] = tuple(column.name for column in _distinctive_columns(table, sample))
        strata += _strata(conn, table, sample)
    return ViewPlan(roots=_root_scores(schema), strata=tuple(strata), names=names, rowids=rowids)


def draw_view(
    conn: apsw.Connection,
    schema: DatabaseSchema,
    plan: ViewPlan,
    *,
    seed: int,
    tokens: int = DEFAULT_VIEW_TOKENS,
    max_value_chars: int = 60,
    earlier: frozenset[Stratum] = frozenset(),
) -> DataView:
    """A view of at most ``tokens`` (estimated) drawn with ``seed``: groups, then rows of tables they missed.
    Groups go to the strata ``earlier`` views did not show first."""
    draw = _Draw(conn, schema, plan, random.Random(seed), max_value_chars, earlier)
    budget = tokens * CHARS_PER_TOKEN
    misses = groups = 0
    while misses < _MISSES and groups < _MAX_GROUPS:
        group = draw.group()
        if group is None or not draw.fits(group, budget * _GROUP_SHARE):
            misses += 1
            continue
        draw.add(group)
        groups += 1
    for table in schema.tables:
        if table.row_count and table.key_columns and not draw.shows(table.name):
            rows = draw.loose_rows(table, _FILL_ROWS)
            if draw.fits(rows, budget):
                draw.add(rows)
    strata = frozenset(stratum for stratum in plan.strata if draw.covers(draw.rows, stratum))
    return DataView(text=_cut(draw.render(), budget), rows=draw.shown_rows(), strata=strata)


# The plan


def _sample(conn: apsw.Connection, table: Table, rowids: tuple[int, int] | None) -> list[tuple[Any, ...]]:
    """Rows of ``table`` in ``result_columns`` order: all of a small table, else rows at random rowids (fixed
    seed: a database always gets the same plan)."""
    select = _select(table)
    rowid = table.rowid_name
    if table.row_count <= _READ_WHOLE or rowids is None or rowid is None:
        return list(conn.execute(f"{select} LIMIT ?", (_READ_WHOLE,)))
    rng = random.Random(0)
    rows = []
    for _ in range(_SAMPLE_ROWS):
        row = conn.execute(f"{select} WHERE {rowid} >= ? ORDER BY {rowid} LIMIT 1", (rng.randint(*rowids),)).fetchone()
        if row is not None:
            rows.append(row)
    return rows


def _plain_columns(table: Table) -> list[tuple[int, Column]]:
    """Columns that carry a value of their own: no key, no reference, not generated; with their position."""
    referencing = {name.casefold() for fk in table.foreign_keys for name in fk.columns}
    keys = {column.name.casefold() for column in table.key_columns}
    return [
        (index, column)
        for index, column in enumerate(table.result_columns)
        if column.name.casefold() not in referencing | keys and not column.generated
    ]


def _distinctive_columns(table: Table, sample: Sequence[tuple[Any, ...]]) -> list[Column]:
    """Text columns in which nearly every value differs (names, emails, titles, text keys): a text that holds
    one of their values names the row."""
    referencing = {name.casefold() for fk in table.foreign_keys for name in fk.columns}
    found = []
    for index, column in enumerate(table.result_columns):
        values = [row[index] for row in sample if isinstance(row[index], str)]
        if len(values) < 2 or column.name.casefold() in referencing:
            continue
        if sum(bool(_DATE.match(value)) for value in values) > len(values) / 2:
            continue
        if sum(len(value) <= _NAME_CHARS[1] for value in values) < len(values) / 2:
            continue  # prose (a review's body), not a name
        if len(set(values)) >= _DISTINCT_SHARE * len(values):
            found.append(column)
    return found


def _strata(conn: apsw.Connection, table: Table, sample: Sequence[tuple[Any, ...]]) -> list[Stratum]:
    """The strata of ``table``: one per value of each low-cardinality column, one per year (or month) of each
    date column; counted over the whole table, one ``GROUP BY`` per column."""
    found: list[Stratum] = []
    for index, column in _plain_columns(table):
        values = [row[index] for row in sample if row[index] is not None and not isinstance(row[index], bytes)]
        if len(values) < 4:
            continue
        dates = [value for value in values if isinstance(value, str) and _DATE.match(value)]
        if len(dates) > 0.9 * len(values):
            found += _date_strata(conn, table, column)
        elif 2 <= len(set(values)) <= min(MAX_STRATUM_VALUES, len(values) / 2):
            found += _value_strata(conn, table, column, f"{quote_identifier(column.name)}", 0)
    return found


def _date_strata(conn: apsw.Connection, table: Table, column: Column) -> list[Stratum]:
    """By year; by month when every date falls in one year."""
    for prefix in (4, 7):
        expression = f"substr({quote_identifier(column.name)}, 1, {prefix})"
        strata = _value_strata(conn, table, column, expression, prefix)
        if len(strata) > 1:
            return strata
    return []


def _value_strata(conn: apsw.Connection, table: Table, column: Column, expression: str, prefix: int) -> list[Stratum]:
    counts = conn.execute(
        f"SELECT {expression}, count(*) FROM main.{quote_identifier(table.name)} WHERE {expression} IS NOT NULL"
        f" GROUP BY 1 ORDER BY 1 LIMIT ?",
        (_MAX_VALUES_IN_DATA + 1,),
    ).fetchall()
    if len(counts) > _MAX_VALUES_IN_DATA:
        return []
    return [Stratum(table.name, column.name, value, int(count or 0), prefix) for value, count in counts]


def _children(schema: DatabaseSchema) -> dict[str, list[tuple[Table, ForeignKey]]]:
    """Parent table -> the tables that refer to it, with the reference."""
    below: dict[str, list[tuple[Table, ForeignKey]]] = {table.name: [] for table in schema.tables}
    for table in schema.tables:
        for fk in table.foreign_keys:
            if fk.table in below:
                below[fk.table].append((table, fk))
    return below


def _root_scores(schema: DatabaseSchema) -> dict[str, int]:
    """Tables with a positive score: the tables within two levels below, with few rows per parent row."""
    below = _children(schema)
    counts = {table.name: table.row_count for table in schema.tables}

    def few(parent: str, child: Table) -> bool:
        return child.name != parent and child.row_count <= MAX_FANOUT * max(counts[parent], 1)

    scores = {}
    for table in schema.tables:
        reached = set()
        for child, _ in below[table.name]:
            if few(table.name, child):
                reached.add(child.name)
                reached |= {grandchild.name for grandchild, _ in below[child.name] if few(child.name, grandchild)}
        reached.discard(table.name)
        if reached and table.row_count and table.key_columns:
            scores[table.name] = len(reached)
    return scores


# One draw


@dataclass
class _Draw:
    """The rows a view shows so far, and how to add more."""

    conn: apsw.Connection
    schema: DatabaseSchema
    plan: ViewPlan
    rng: random.Random
    max_value_chars: int
    earlier: frozenset[Stratum] = frozenset()
    rows: dict[RowId, tuple[Any, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tables = {table.name: table for table in self.schema.tables}
        self.below = _children(self.schema)

    # what the view shows

    def shows(self, table: str) -> bool:
        return any(name == table for name, _ in self.rows)

    def fits(self, rows: Mapping[RowId, tuple[Any, ...]], budget: float) -> bool:
        return bool(rows.keys() - self.rows.keys()) and len(self.render({**self.rows, **rows})) <= budget

    def add(self, rows: Mapping[RowId, tuple[Any, ...]]) -> None:
        self.rows.update(rows)

    def shown_rows(self) -> tuple[ShownRow, ...]:
        shown = []
        for (name, key), values in sorted(self.rows.items(), key=lambda item: _order(item[0])):
            table = self.tables[name]
            columns = [column.name for column in table.result_columns]
            texts = (values[columns.index(column)] for column in self.plan.names.get(name, ()))
            low, high = _NAME_CHARS
            names = tuple(text for text in texts if isinstance(text, str) and low <= len(text.strip()) <= high)
            shown.append(ShownRow(name, key, names))
        return tuple(shown)

    def render(self, rows: Mapping[RowId, tuple[Any, ...]] | None = None) -> str:
        """Each table with rows shown, in schema order, its rows by key; then the tables with none."""
        rows = self.rows if rows is None else rows
        by_table: dict[str, list[tuple[Key, tuple[Any, ...]]]] = {}
        for (name, key), values in rows.items():
            by_table.setdefault(name, []).append((key, values))
        sections, unshown = [], []
        for table in self.schema.tables:
            members = sorted(by_table.get(table.name, []), key=lambda member: _sort_key(member[0]))
            if not members:
                unshown.append(f"{table.name} ({_rows(table.row_count)})")
                continue
            lines = [
                f"{table.name}: {_rows(table.row_count)}, {len(members)} shown",
                " | ".join(column.name for column in table.result_columns),
            ]
            lines += [" | ".join(_show(value, self.max_value_chars) for value in values) for _, values in members]
            sections.append("\n".join(lines))
        if unshown:
            sections.append(f"No rows shown of: {', '.join(unshown)}")
        return "\n\n".join(sections)

    # groups

    def group(self) -> dict[RowId, tuple[Any, ...]] | None:
        """A root row with the rows below it and every row they refer to; None when no row was found."""
        start = self._target_row()
        if start is None:
            return None
        path = self._climb(*start)
        root = path[-1]
        group = dict(path)
        level = [root]
        for keep in _CHILDREN:
            below = []
            for (name, _), values in level:
                for child, fk in self.below[name]:
                    below += self._children_of(self.tables[name], values, child, fk, keep, group)
            group.update(below)
            level = below
        return self._with_references(group)

    def loose_rows(self, table: Table, count: int) -> dict[RowId, tuple[Any, ...]]:
        """A few rows of ``table`` at random, with the rows they refer to."""
        return self._with_references(dict(self._random_rows(table, count)))

    def _target_row(self) -> tuple[RowId, tuple[Any, ...]] | None:
        """A row of a stratum the view does not show yet (one no earlier view showed if there is one; rare ones
        first), else a row of a root table (of any table when none refers to another)."""
        shown = self.rows
        open_strata = [stratum for stratum in self.plan.strata if not self.covers(shown, stratum)]
        if open_strata:
            open_strata = [stratum for stratum in open_strata if stratum not in self.earlier] or open_strata
            stratum = self.rng.choices(open_strata, weights=[1 / stratum.rows for stratum in open_strata])[0]
            return self._random_row(self.tables[stratum.table], stratum)
        roots = self.plan.roots or {t.name: 1 for t in self.schema.tables if t.row_count and t.key_columns}
        if not roots:
            return None
        names = sorted(roots)
        name = self.rng.choices(names, weights=[roots[name] for name in names])[0]
        return self._random_row(self.tables[name])

    def covers(self, rows: Mapping[RowId, tuple[Any, ...]], stratum: Stratum) -> bool:
        table = self.tables[stratum.table]
        index = [column.name for column in table.result_columns].index(stratum.column)
        return any(name == stratum.table and stratum.holds(values[index]) for (name, _), values in rows.items())

    def _random_row(self, table: Table, stratum: Stratum | None = None) -> tuple[RowId, tuple[Any, ...]] | None:
        return next(iter(self._random_rows(table, 1, stratum)), None)

    def _random_rows(
        self, table: Table, count: int, stratum: Stratum | None = None
    ) -> list[tuple[RowId, tuple[Any, ...]]]:
        """Up to ``count`` rows (of the stratum) from a random place on: those at or after a random rowid, by the
        rowid's index, going on from the start when the end comes first; from a random offset in a table without
        rowid."""
        where = [stratum.sql()] if stratum else []
        values = [stratum.value] if stratum else []
        span, rowid = self.plan.rowids.get(table.name), table.rowid_name
        select = _select(table)
        if span is None or rowid is None:
            rows = stratum.rows if stratum else table.row_count
            condition = f" WHERE {where[0]}" if where else ""
            offset = self.rng.randrange(max(rows - count + 1, 1))
            found = list(self.conn.execute(f"{select}{condition} LIMIT ? OFFSET ?", (*values, count, offset)))
        else:
            start = self.rng.randint(*span)
            found = []
            for bound in (f"{rowid} >= ?", f"{rowid} < ?"):
                condition = " AND ".join([*where, bound])
                query = f"{select} WHERE {condition} ORDER BY {rowid} LIMIT ?"
                found += self.conn.execute(query, (*values, start, count - len(found)))
                if len(found) == count:
                    break
        return [((table.name, _key(table, row)), row) for row in found]

    def _climb(self, start: RowId, values: tuple[Any, ...]) -> list[tuple[RowId, tuple[Any, ...]]]:
        """From a row up to the root its group hangs from: the referenced row of a higher-scoring root table,
        while there is one (an order climbs to its customer, a review to its customer rather than its book)."""
        path = [(start, values)]
        for _ in range(_CLIMB):
            (name, _), values = path[-1]
            table = self.tables[name]
            score = self.plan.roots.get(name, 0)
            parents = sorted(
                (
                    (self.plan.roots[fk.table], index, fk)
                    for index, fk in enumerate(table.foreign_keys)
                    if self.plan.roots.get(fk.table, 0) > score
                ),
                key=lambda option: (-option[0], option[1]),
            )
            parent = next((found for _, _, fk in parents if (found := self._referenced(table, values, fk))), None)
            if parent is None:
                break
            path.append(parent)
        return path

    def _children_of(
        self,
        parent: Table,
        values: tuple[Any, ...],
        child: Table,
        fk: ForeignKey,
        keep: int,
        group: Mapping[RowId, tuple[Any, ...]],
    ) -> list[tuple[RowId, tuple[Any, ...]]]:
        """Up to ``keep`` rows of ``child`` that refer to the parent row: those already in the group first, the
        rest at random among the first ``_CHILD_CANDIDATES``."""
        columns = [column.name for column in parent.result_columns]
        try:
            bound = [values[columns.index(name)] for name in fk.ref_columns]
        except ValueError:
            return []  # a reference to columns the parent does not have: SQLite accepts it until enforced
        if not fk.ref_columns or any(value is None for value in bound):
            return []
        condition = " AND ".join(f"{quote_identifier(name)} = ?" for name in fk.columns)
        rows = self.conn.execute(f"{_select(child)} WHERE {condition} LIMIT ?", (*bound, _CHILD_CANDIDATES))
        found = [((child.name, _key(child, row)), row) for row in rows]
        kept = [member for member in found if member[0] in group]
        rest = [member for member in found if member[0] not in group]
        return kept + self.rng.sample(rest, min(len(rest), max(keep - len(kept), 0)))

    def _referenced(
        self, table: Table, values: tuple[Any, ...], fk: ForeignKey
    ) -> tuple[RowId, tuple[Any, ...]] | None:
        """The row a reference points to, by its (indexed) key; None for NULL or a dangling reference."""
        parent = self.tables.get(fk.table)
        if parent is None or not parent.key_columns or len(fk.ref_columns) != len(fk.columns):
            return None
        columns = [column.name for column in table.result_columns]
        bound = [values[columns.index(name)] for name in fk.columns]
        if any(value is None for value in bound):
            return None
        condition = " AND ".join(f"{quote_identifier(name)} = ?" for name in fk.ref_columns)
        try:
            row = self.conn.execute(f"{_select(parent)} WHERE {condition} LIMIT 1", bound).fetchone()
        except apsw.SQLError:
            return None  # the reference names a column the parent does not have
        return None if row is None else ((parent.name, _key(parent, row)), row)

    def _with_references(self, rows: Mapping[RowId, tuple[Any, ...]]) -> dict[RowId, tuple[Any, ...]]:
        """``rows`` and every row they refer to, up to ``_UP_HOPS`` references away."""
        closed = dict(rows)
        frontier = list(rows.items())
        for _ in range(_UP_HOPS):
            found = []
            for (name, _), values in frontier:
                table = self.tables[name]
                for fk in table.foreign_keys:
                    parent = self._referenced(table, values, fk)
                    if parent is not None and parent[0] not in closed:
                        closed[parent[0]] = parent[1]
                        found.append(parent)
            frontier = found
        return closed


# Rendering


def _select(table: Table) -> str:
    columns = ", ".join(quote_identifier(column.name) for column in table.result_columns)
    return f"SELECT {columns} FROM main.{quote_identifier(table.name)}"


def _key(table: Table, row: tuple[Any, ...]) -> Key:
    columns = [column.name for column in table.result_columns]
    return tuple(row[columns.index(column.name)] for column in table.key_columns)


def _sort_key(key: Key) -> tuple[tuple[int, Any], ...]:
    """Keys of mixed types in SQLite's order: NULL, numbers, text, blobs."""
    rank = {type(None): 0, int: 1, float: 1, str: 2, bytes: 3}
    return tuple((rank.get(type(value), 4), value if value is not None else 0) for value in key)


def _order(row: RowId) -> tuple[str, tuple[tuple[int, Any], ...]]:
    return row[0], _sort_key(row[1])


def _rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count} rows"


def _show(value: Any, max_chars: int) -> str:
    """NULL, numbers as SQL writes them, text as a JSON string (one line, quotes visible), blobs by size."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    if isinstance(value, str):
        return orjson.dumps(_cut(value, max_chars)).decode()
    return repr(value)


def _cut(text: str, max_chars: float) -> str:
    limit = int(max_chars)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
