"""The view of a Python state goal writers are shown: bounded, drawn by the seed, whole records of every kind."""

from __future__ import annotations

import orjson
from pydantic import BaseModel

from dialforge.environments.state_view import state_view


class Order(BaseModel):
    status: str
    total: float


class Shop(BaseModel):
    orders: dict[str, Order]
    log: list[dict[str, str]]
    open: bool = True


def shop() -> Shop:
    return Shop(
        orders={f"#W{i}": Order(status="pending" if i % 2 else "delivered", total=i * 1.5) for i in range(400)},
        log=[{"event": f"e{i}"} for i in range(30)],
    )


def test_a_view_shows_counts_and_whole_records_within_its_budget() -> None:
    view = state_view(shop(), seed=1, tokens=300)
    assert len(view) <= 300 * 4 + 200
    assert "orders (400 records, " in view and "log (30 records, " in view and "open: true" in view
    lines = [line for line in view.splitlines() if line.startswith('"#W')]
    assert lines
    for line in lines:
        key, record = line.split(": ", 1)
        assert shop().orders[orjson.loads(key)].model_dump() == orjson.loads(record)


def test_views_are_drawn_by_their_seed() -> None:
    assert state_view(shop(), seed=1, tokens=300) == state_view(shop(), seed=1, tokens=300)
    assert state_view(shop(), seed=1, tokens=300) != state_view(shop(), seed=2, tokens=300)


def test_a_state_that_is_not_a_collection_is_shown_as_it_is() -> None:
    assert state_view([1, 2, 3], seed=0, tokens=100) == "state: [1,2,3]"
