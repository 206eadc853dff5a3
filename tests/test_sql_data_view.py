"""The data view goal writers see, on the real databases: linked rows, every status over a few draws, within its
budget, one view per seed; and which of its rows a text names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from dialforge.environments.sql.data_view import CHARS_PER_TOKEN, DataView, draw_view, view_plan
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.mentions import TableSpread, goal_spread, named_rows
from dialforge.environments.sql.schema import introspect, quote_identifier
from test_sql_schema import odd_connection

BOOKSTORE = Path(__file__).resolve().parents[1] / "examples" / "bookstore.sql"


@pytest.fixture(scope="module")
def bookstore() -> SQLDatabase:
    return SQLDatabase.load(BOOKSTORE)


@pytest.fixture(scope="module")
def northwind(test_data: Path) -> SQLDatabase:
    return SQLDatabase.open(test_data / "db" / "northwind.sqlite")


def rows_of(database: SQLDatabase, view: DataView, table: str) -> Iterator[dict[str, Any]]:
    """The rows of ``table`` the view shows, read back from the database by their keys."""
    schema_table = database.schema.table(table)
    keys = [column.name for column in schema_table.key_columns]
    where = " AND ".join(f"{quote_identifier(name)} = ?" for name in keys)
    connection = apsw.Connection(str(database.path), flags=apsw.SQLITE_OPEN_READONLY)
    cursor = connection.cursor()
    for row in view.rows:
        if row.table == table:
            found = cursor.execute(f"SELECT * FROM {quote_identifier(table)} WHERE {where}", row.key)
            names = [name for name, _ in found.getdescription()]
            yield dict(zip(names, found.fetchone(), strict=True))
    connection.close()


def shown(view: DataView, table: str) -> set[tuple[Any, ...]]:
    return {row.key for row in view.rows if row.table == table}


def run_views(database: SQLDatabase, count: int) -> list[DataView]:
    """The views of a run's ``count`` batches of goals: each drawn after the ones before it."""
    views: list[DataView] = []
    for seed in range(count):
        views.append(database.data_view(seed=seed, earlier=views))
    return views


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_row_shown_has_the_rows_it_refers_to_shown(
    bookstore: SQLDatabase, chinook: SQLDatabase, northwind: SQLDatabase, seed: int
) -> None:
    for database in (bookstore, chinook, northwind):
        view = database.data_view(seed=seed)
        for table in database.schema.tables:
            for row in rows_of(database, view, table.name):
                for fk in table.foreign_keys:
                    values = tuple(row[name] for name in fk.columns)
                    parent = database.schema.table(fk.table)
                    if None not in values and tuple(fk.ref_columns) == parent.primary_key:
                        assert values in shown(view, fk.table), f"{table.name} {row} refers to {fk.table} {values}"


def test_a_customer_is_shown_with_the_rows_that_hang_off_it(bookstore: SQLDatabase) -> None:
    view = bookstore.data_view(seed=4)
    orders = list(rows_of(bookstore, view, "orders"))
    lines = list(rows_of(bookstore, view, "order_line"))

    assert {(order["customer_id"],) for order in orders} <= shown(view, "customer")
    assert {(line["order_id"],) for line in lines} <= shown(view, "orders")
    with_orders = {order["customer_id"] for order in orders}
    assert len(with_orders) >= 3, "several customers, each with their orders"
    assert {(line["book_id"],) for line in lines} <= shown(view, "book")


@pytest.mark.parametrize(
    ("path", "table", "column"),
    [
        ("bookstore", "orders", "status"),
        ("bookstore", "review", "rating"),
        ("bookstore", "book", "genre"),
        ("northwind", "Employees", "Title"),
    ],
)
def test_every_value_of_a_status_or_category_is_shown_over_a_runs_views(
    request: pytest.FixtureRequest, path: str, table: str, column: str
) -> None:
    database: SQLDatabase = request.getfixturevalue(path)
    connection = apsw.Connection(str(database.path), flags=apsw.SQLITE_OPEN_READONLY)
    present = {value for (value,) in connection.execute(f"SELECT DISTINCT {quote_identifier(column)} FROM {table}")}

    seen = {row[column] for view in run_views(database, 4) for row in rows_of(database, view, table)}

    assert seen == present


def test_the_years_of_dates_are_spread_over_a_runs_views(chinook: SQLDatabase) -> None:
    connection = apsw.Connection(str(chinook.path), flags=apsw.SQLITE_OPEN_READONLY)
    present = {year for (year,) in connection.execute("SELECT DISTINCT substr(InvoiceDate, 1, 4) FROM Invoice")}

    years = {row["InvoiceDate"][:4] for view in run_views(chinook, 3) for row in rows_of(chinook, view, "Invoice")}

    assert len(present) > 1 and years == present


def test_a_runs_views_show_every_stratum_between_them_even_when_small(
    bookstore: SQLDatabase, chinook: SQLDatabase
) -> None:
    for database in (bookstore, chinook):
        views: list[DataView] = []
        for seed in range(4):
            views.append(database.data_view(seed=seed, tokens=1000, earlier=views))
        alone = [database.data_view(seed=seed, tokens=1000) for seed in range(4)]
        everything = {stratum for view in run_views(database, 8) for stratum in view.strata}

        assert {stratum for view in views for stratum in view.strata} == everything
        assert {stratum for view in alone for stratum in view.strata} < everything, "drawn apart, some are missed"


@pytest.mark.parametrize("tokens", [100, 400, 1000, 2500])
def test_a_view_stays_within_its_budget(chinook: SQLDatabase, tokens: int) -> None:
    view = chinook.data_view(seed=1, tokens=tokens)

    assert len(view.text) <= tokens * CHARS_PER_TOKEN
    if tokens >= 1000:
        assert len(view.text) > tokens * CHARS_PER_TOKEN / 2, "the budget is used"


def test_a_larger_budget_shows_more_rows(bookstore: SQLDatabase) -> None:
    assert len(bookstore.data_view(seed=1, tokens=800).rows) < len(bookstore.data_view(seed=1, tokens=3000).rows)


def test_one_seed_gives_one_view_and_another_seed_another(test_data: Path, chinook: SQLDatabase) -> None:
    again = SQLDatabase.open(test_data / "db" / "chinook.sqlite")

    assert chinook.data_view(seed=5) == again.data_view(seed=5)
    views = [chinook.data_view(seed=seed) for seed in range(4)]
    assert len({view.text for view in views}) == 4
    customers = [shown(view, "Customer") for view in views]
    assert len(set().union(*customers)) > max(len(keys) for keys in customers), "other seeds, other customers"


def test_the_view_tells_rows_shown_and_names_tables_without_any(bookstore: SQLDatabase) -> None:
    text = bookstore.data_view(seed=1, tokens=600).text

    assert "customer: 40 rows, " in text and " shown\ncustomer_id | first_name | last_name | email" in text
    assert text.splitlines()[-1].startswith("No rows shown of: ") or "review: 103 rows" in text


def test_odd_identifiers_blobs_and_long_values() -> None:
    conn = odd_connection()
    schema = introspect(conn)

    text = draw_view(conn, schema, view_plan(conn, schema), seed=0, tokens=2000, max_value_chars=8).text

    assert 'where: 2 rows, 2 shown\n_rowid_ | rowid | value | blob\n1 | "r1" | 42 | <blob 2 bytes>' in text
    assert '2 | "second …" | NULL' in text
    assert "Tags: 2 rows, 2 shown\nTag | weight" in text  # WITHOUT ROWID
    assert "CustomerDemographics" not in text


def test_empty_tables_are_named_as_such(northwind: SQLDatabase) -> None:
    text = northwind.data_view(seed=0).text

    assert "CustomerDemographics (0 rows)" in text.splitlines()[-1]


# Which rows a text names


def test_a_text_names_rows_by_distinctive_values_and_by_number_after_the_table(bookstore: SQLDatabase) -> None:
    view = bookstore.data_view(seed=1)
    customer = next(rows_of(bookstore, view, "customer"))
    order = next(rows_of(bookstore, view, "orders"))
    text = (
        f"You are {customer['first_name'].upper()} {customer['last_name']} ({customer['email']}). "
        f"You want Order #{order['order_id']} checked, and customer number 99999 does not exist."
    )

    named = named_rows(text, view.rows, bookstore.schema)

    assert ("customer", (customer["customer_id"],)) in named
    assert ("orders", (order["order_id"],)) in named
    assert not any(key == (99999,) for _, key in named)


def test_a_value_inside_a_longer_word_names_nothing(bookstore: SQLDatabase) -> None:
    view = bookstore.data_view(seed=1)
    customer = next(rows_of(bookstore, view, "customer"))
    glued = f"x{customer['email']}x {customer['first_name']}son, the order 10423"

    named = named_rows(glued, [row for row in view.rows if row.table in ("customer", "orders")], bookstore.schema)

    assert not named


def test_the_spread_counts_rows_shown_and_rows_named_per_table(bookstore: SQLDatabase) -> None:
    views = [bookstore.data_view(seed=seed) for seed in (1, 2)]
    first, second = (next(rows_of(bookstore, view, "customer")) for view in views)
    goals = [f"You are {first['email']}.", f"You are {second['email']}, and so is {first['email']}."]

    spread = {row.table: row for row in goal_spread(goals, views, bookstore.schema)}

    customers = len(shown(views[0], "customer") | shown(views[1], "customer"))
    named = len({first["customer_id"], second["customer_id"]})
    assert spread["customer"] == TableSpread(table="customer", rows=40, shown=customers, named=named)
    assert "order_line" not in spread, "rows named only through others are not counted"


def test_tables_without_references_are_sampled_too() -> None:
    database = SQLDatabase.from_script(
        "CREATE TABLE note (body TEXT, kind TEXT) ;"
        "INSERT INTO note VALUES ('a', 'x'), ('b', 'y'), ('c', 'x'), ('d', 'y'), ('e', 'x'), ('f', 'x');"
        "CREATE TABLE tag (name TEXT PRIMARY KEY) WITHOUT ROWID; INSERT INTO tag VALUES ('red'), ('blue');"
    )

    view = database.data_view(seed=0)

    assert len(shown(view, "note")) >= 4 and shown(view, "tag") == {("blue",), ("red",)}
