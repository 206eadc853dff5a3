"""PythonEnvironment: plain functions as tools, over a bookstore whose state forks per dialogue."""

from __future__ import annotations

import asyncio
import re
import threading
import types
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from dialforge.environments.base import Environment, RestoreError, StateDiff, TableDiff
from dialforge.environments.python_env import PythonEnvironment, PythonEnvironments
from dialforge.environments.python_errors import ErrorRule
from dialforge.model.tasks import PythonCheck, SQLCheck

# --- the bookstore -------------------------------------------------------------------------------------------


class Cover(Enum):
    PAPERBACK = "paperback"
    HARDCOVER = "hardcover"


class Address(BaseModel):
    """Where a parcel goes."""

    street: str
    city: str
    country: str = "FR"


class Order(BaseModel):
    id: int
    book_id: int
    quantity: int
    cover: Cover
    address: Address
    status: str = "placed"


@dataclass
class DeliveryEstimate:
    country: str
    days: int


def bookstore() -> dict[str, Any]:
    return {
        "books": [
            {"id": 1, "title": "Dune", "author": "Frank Herbert", "stock": 3},
            {"id": 2, "title": "Children of Dune", "author": "Frank Herbert", "stock": 0},
            {"id": 3, "title": "Solaris", "author": "Stanisław Lem", "stock": 5},
        ],
        "orders": [{"id": 100, "book_id": 3, "quantity": 1, "status": "shipped"}],
    }


def search_books(state: dict[str, Any], query: str, max_results: int = 5) -> list[dict[str, Any]]:
    """Find books whose title or author contains the query.

    Results are in catalogue order.

    Args:
        query: Words to look for in titles and authors,
            case-insensitive.
        max_results: At most this many books come back.
    """
    found = [book for book in state["books"] if query.lower() in f"{book['title']} {book['author']}".lower()]
    return found[:max_results]


def get_order(state: dict[str, Any], order_id: int) -> dict[str, Any]:
    """Look up one order.

    :param order_id: The order number printed on the receipt.
    :returns: The order.
    """
    for order in state["orders"]:
        if order["id"] == order_id:
            return order
    raise LookupError(f"no order {order_id}")


def place_order(
    state: dict[str, Any], book_id: int, quantity: int, address: Address, cover: Cover = Cover.PAPERBACK
) -> Order:
    """Order copies of a book, taken from stock."""
    book = next((book for book in state["books"] if book["id"] == book_id), None)
    if book is None:
        raise KeyError(f"no book {book_id}")
    if quantity > book["stock"]:
        raise ValueError(f"only {book['stock']} copies of {book['title']!r} in stock")
    book["stock"] -= quantity
    order = Order(
        id=max(o["id"] for o in state["orders"]) + 1, book_id=book_id, quantity=quantity, cover=cover, address=address
    )
    state["orders"].append(order.model_dump(mode="json", exclude={"address", "cover"}))
    return order


def cancel_order(state: dict[str, Any], order_id: int, reason: Literal["late", "changed_mind"]) -> dict[str, Any]:
    """Cancel an order that has not shipped yet."""
    order = get_order(state, order_id)
    if order["status"] == "shipped":
        raise PermissionError(f"order {order_id} has already shipped")
    order["status"] = f"cancelled ({reason})"
    return order


def average_order_size(state: dict[str, Any], status: str | None = None) -> float:
    """Mean number of copies per order, optionally only orders with one status."""
    orders = [order for order in state["orders"] if status is None or order["status"] == status]
    return sum(order["quantity"] for order in orders) / len(orders)


async def estimate_delivery(country: str, express: bool = False) -> DeliveryEstimate:
    """How many days a parcel takes to reach a country."""
    await asyncio.sleep(0)
    return DeliveryEstimate(country=country, days=1 if express else 4)


FUNCTIONS = [search_books, get_order, place_order, cancel_order, average_order_size, estimate_delivery]
SHIP_TO = {"street": "1 rue de Rivoli", "city": "Paris"}


@pytest.fixture
def env() -> PythonEnvironment[dict[str, Any]]:
    return PythonEnvironment(FUNCTIONS, bookstore(), name="bookstore")


def spec(env: PythonEnvironment[Any], name: str) -> dict[str, Any]:
    return next(tool for tool in env.tools() if tool.name == name).model_dump()


# --- specs ---------------------------------------------------------------------------------------------------


def test_is_an_environment(env: PythonEnvironment[Any]) -> None:
    assert isinstance(env, Environment)
    assert [tool.name for tool in env.tools()] == [function.__name__ for function in FUNCTIONS]


def test_spec_comes_from_the_signature_and_google_docstring(env: PythonEnvironment[Any]) -> None:
    search = spec(env, "search_books")
    assert search["description"] == "Find books whose title or author contains the query."
    assert search["parameters"] == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Words to look for in titles and authors, case-insensitive."},
            "max_results": {"type": "integer", "description": "At most this many books come back.", "default": 5},
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    assert search["returns"] == {"type": "array", "items": {"type": "object"}}


def test_state_parameter_is_hidden_from_the_agent(env: PythonEnvironment[Any]) -> None:
    for tool in env.tools():
        assert "state" not in tool.parameters["properties"]


def test_rest_param_descriptions_are_read(env: PythonEnvironment[Any]) -> None:
    get = spec(env, "get_order")
    assert get["description"] == "Look up one order."
    assert get["parameters"]["properties"]["order_id"] == {
        "type": "integer",
        "description": "The order number printed on the receipt.",
    }


def test_literals_and_enums_become_enums_and_models_are_inlined(env: PythonEnvironment[Any]) -> None:
    cancel = spec(env, "cancel_order")["parameters"]
    assert cancel["properties"]["reason"] == {"enum": ["late", "changed_mind"], "type": "string"}
    assert cancel["required"] == ["order_id", "reason"]

    place = spec(env, "place_order")["parameters"]
    assert place["properties"]["cover"] == {
        "enum": ["paperback", "hardcover"],
        "type": "string",
        "default": "paperback",
    }
    address = place["properties"]["address"]
    assert address["type"] == "object"
    assert address["required"] == ["street", "city"]
    assert address["description"] == "Where a parcel goes."
    assert place["required"] == ["book_id", "quantity", "address"]
    assert "$ref" not in str(spec(env, "place_order"))  # the Order return schema nests Address and Cover, inlined


def test_optional_types_are_nullable(env: PythonEnvironment[Any]) -> None:
    average = spec(env, "average_order_size")
    assert average["parameters"]["properties"]["status"] == {"type": ["string", "null"], "default": None}
    assert "required" not in average["parameters"]
    assert average["returns"] == {"type": "number"}


def test_variadic_parameters_are_refused_naming_the_function() -> None:
    def log_event(kind: str, *details: str) -> None:
        """Record an event."""

    def update_book(book_id: int, **fields: Any) -> None:
        """Change a book."""

    with pytest.raises(TypeError, match=r"log_event: \*details is not supported"):
        PythonEnvironment([log_event])
    with pytest.raises(TypeError, match=r"update_book: \*\*fields is not supported"):
        PythonEnvironment([update_book])


def test_parameters_without_a_json_schema_are_refused() -> None:
    def export(path: object, target: type) -> None:
        """Export the catalogue."""

    with pytest.raises(TypeError, match="export: parameter 'target'"):
        PythonEnvironment([export])


# --- calls ---------------------------------------------------------------------------------------------------


async def test_a_call_returns_json(env: PythonEnvironment[Any]) -> None:
    result = await env.call("search_books", {"query": "dune", "max_results": 1})
    assert result.ok
    assert result.content == [{"id": 1, "title": "Dune", "author": "Frank Herbert", "stock": 3}]


async def test_models_are_built_from_dicts_and_results_dumped_as_json(env: PythonEnvironment[Any]) -> None:
    result = await env.call("place_order", {"book_id": 1, "quantity": 2, "address": SHIP_TO, "cover": "hardcover"})
    assert result.ok, result.error
    assert result.content == {
        "id": 101,
        "book_id": 1,
        "quantity": 2,
        "cover": "hardcover",
        "address": {"street": "1 rue de Rivoli", "city": "Paris", "country": "FR"},
        "status": "placed",
    }
    assert env.state["books"][0]["stock"] == 1


async def test_async_functions_are_awaited_and_dataclasses_serialised(env: PythonEnvironment[Any]) -> None:
    result = await env.call("estimate_delivery", {"country": "PL", "express": True})
    assert result.content == {"country": "PL", "days": 1}


async def test_unknown_tool_names_the_available_ones(env: PythonEnvironment[Any]) -> None:
    result = await env.call("refund_order", {"order_id": 100})
    assert result.error is not None
    assert result.error.kind == "unknown_tool"
    assert "refund_order" in result.error.message
    assert "cancel_order" in result.error.message
    assert result.error.details["tools"] == sorted(function.__name__ for function in FUNCTIONS)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "missing required argument(s) ['order_id', 'reason']"),
        ({"order_id": 100, "reason": "late", "refund": True}, "unexpected argument(s) ['refund']"),
        ({"order_id": "100", "reason": "late"}, "'100' is not of type 'integer'"),
        ({"order_id": 100, "reason": "bored"}, "'bored' is not one of ['late', 'changed_mind']"),
    ],
    ids=["missing", "extra", "mistyped", "not-in-enum"],
)
async def test_bad_arguments_are_reported_before_the_function_runs(
    env: PythonEnvironment[Any], arguments: dict[str, Any], expected: str
) -> None:
    result = await env.call("cancel_order", arguments)
    assert result.error is not None
    assert result.error.kind == "invalid_arguments"
    assert expected in result.error.message
    assert env.state == bookstore()


async def test_arguments_must_be_an_object(env: PythonEnvironment[Any]) -> None:
    result = await env.call("get_order", [100])  # type: ignore[arg-type]
    assert result.error is not None
    assert result.error.kind == "invalid_arguments"


@pytest.mark.parametrize(
    ("name", "arguments", "kind", "message"),
    [
        ("get_order", {"order_id": 7}, "not_found", "get_order: no order 7"),
        ("place_order", {"book_id": 9, "quantity": 1, "address": SHIP_TO}, "not_found", "place_order: no book 9"),
        ("place_order", {"book_id": 2, "quantity": 1, "address": SHIP_TO}, "constraint_violation", "only 0 copies"),
        ("cancel_order", {"order_id": 100, "reason": "late"}, "refused", "order 100 has already shipped"),
        (
            "average_order_size",
            {"status": "lost"},
            "execution_error",
            "average_order_size failed with ZeroDivisionError: division by zero",
        ),
    ],
    ids=["lookup-error", "key-error", "value-error", "permission-error", "crash"],
)
async def test_exceptions_become_errors_the_agent_can_read(
    env: PythonEnvironment[Any], name: str, arguments: dict[str, Any], kind: str, message: str
) -> None:
    result = await env.call(name, arguments)
    assert result.error is not None
    assert result.error.kind == kind
    assert message in result.error.message


async def test_a_result_that_is_not_json_is_an_execution_error() -> None:
    class Receipt:
        pass

    def print_receipt(order_id: int) -> Receipt:
        """Print a receipt."""
        return Receipt()

    result = await PythonEnvironment([print_receipt]).call("print_receipt", {"order_id": 1})
    assert result.error is not None
    assert result.error.kind == "execution_error"
    assert "Receipt is not JSON-serialisable" in result.error.message


# --- forks, digests, diffs -----------------------------------------------------------------------------------


async def test_forks_never_see_each_others_changes(env: PythonEnvironment[Any]) -> None:
    first, second = env.fork(), env.fork()
    assert (await first.call("place_order", {"book_id": 1, "quantity": 3, "address": SHIP_TO})).ok
    assert second.state == env.state == bookstore()
    assert (await second.call("get_order", {"order_id": 101})).error.kind == "not_found"
    assert (await first.call("get_order", {"order_id": 101})).ok


def test_a_state_with_its_own_fork_method_is_forked_by_it() -> None:
    class Ledger:
        def __init__(self, entries: list[str]) -> None:
            self.entries = entries
            self.forked_from: Ledger | None = None

        def fork(self) -> Ledger:
            child = Ledger(list(self.entries))
            child.forked_from = self
            return child

    def add_entry(state: Ledger, text: str) -> None:
        """Append a ledger entry."""
        state.entries.append(text)

    env = PythonEnvironment([add_entry], Ledger(["opening"]))
    assert env.fork().state.forked_from is env.state


def test_digest_is_stable_and_ignores_key_order(env: PythonEnvironment[Any]) -> None:
    reordered = {key: [dict(reversed(row.items())) for row in rows] for key, rows in reversed(bookstore().items())}
    assert env.digest() == PythonEnvironment(FUNCTIONS, reordered).digest()
    assert env.digest() == env.fork().digest()
    env.state["books"][0]["stock"] = 2
    assert env.digest() != PythonEnvironment(FUNCTIONS, bookstore()).digest()


async def test_diff_reports_inserted_and_updated_rows(env: PythonEnvironment[Any]) -> None:
    fork = env.fork()
    await fork.call("place_order", {"book_id": 3, "quantity": 2, "address": SHIP_TO})
    diff = fork.diff(env)
    assert diff.tables == {
        "orders": TableDiff(inserted=[{"id": 101, "book_id": 3, "quantity": 2, "status": "placed"}]),
        "books": TableDiff(
            updated=[
                {
                    "key": 3,
                    "before": {"id": 3, "title": "Solaris", "author": "Stanisław Lem", "stock": 5},
                    "after": {"id": 3, "title": "Solaris", "author": "Stanisław Lem", "stock": 3},
                }
            ]
        ),
    }
    assert env.diff(env.fork()).empty


def test_diff_of_keyed_tables_and_other_entries() -> None:
    def noop() -> None:
        """Do nothing."""

    before = PythonEnvironment([noop], {"members": {"ann": {"tier": "gold"}, "bob": {"tier": "silver"}}, "open": True})
    after = before.fork()
    after.state["members"]["ann"]["tier"] = "platinum"
    del after.state["members"]["bob"]
    after.state["open"] = False
    assert after.diff(before) == StateDiff(
        tables={
            "members": TableDiff(
                updated=[{"key": "ann", "before": {"tier": "gold"}, "after": {"tier": "platinum"}}],
                deleted=[{"tier": "silver"}],
            ),
            "state": TableDiff(updated=[{"key": "open", "before": True, "after": False}]),
        }
    )


def test_a_state_that_is_not_a_dict_is_diffed_as_a_whole() -> None:
    def noop() -> None:
        """Do nothing."""

    before = PythonEnvironment([noop], ["a"])
    after = before.fork()
    after.state.append("b")
    assert after.diff(before).tables == {
        "state": TableDiff(updated=[{"key": "state", "before": ["a"], "after": ["a", "b"]}])
    }


# --- modules -------------------------------------------------------------------------------------------------

MODULE_SOURCE = '''
from json import dumps


def renew_loan(state, loan_id: int) -> dict:
    """Extend a loan by two weeks."""
    state[loan_id] += 14
    return {"loan_id": loan_id, "days": state[loan_id]}


def _days_left(loan_id: int) -> int:
    return 0
'''


async def test_from_module_uses_the_public_functions_it_defines() -> None:
    module = types.ModuleType("library_tools")
    exec(MODULE_SOURCE, module.__dict__)
    env = PythonEnvironment.from_module(module, {7: 14})
    assert [tool.name for tool in env.tools()] == ["renew_loan"]
    assert env.name == "library_tools"
    assert (await env.call("renew_loan", {"loan_id": 7})).content == {"loan_id": 7, "days": 28}


# --- the state, by name or bound to a toolkit ------------------------------------------------------------------


def test_the_state_parameter_is_named_so_a_tool_may_have_its_own_state_argument() -> None:
    def modify_address(db: dict[str, Any], user_id: str, city: str, state: str) -> dict[str, Any]:
        """Change a user's address.

        Args:
            user_id: the user.
            city: the city.
            state: the US state, such as NY.
        """
        db[user_id] = {"city": city, "state": state}
        return db[user_id]

    env = PythonEnvironment([modify_address], {}, state_parameter="db")
    assert set(spec(env, "modify_address")["parameters"]["properties"]) == {"user_id", "city", "state"}
    fork = env.fork()
    result = asyncio.run(fork.call("modify_address", {"user_id": "ann", "city": "Albany", "state": "NY"}))
    assert result.content == {"city": "Albany", "state": "NY"}


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}


class ToolkitBase:
    def __init__(self, db: Counter) -> None:
        self.db = db

    def describe(self) -> str:
        """Not a tool: inherited from the base class."""
        return "base"


class CounterTools(ToolkitBase):
    def bump(self, name: str, state: str = "on") -> int:
        """Add one to a counter.

        Args:
            name: the counter.
            state: a label kept with it (a tool's own argument, not the state).
        """
        self.db.counts[name] = self.db.counts.get(name, 0) + 1
        return self.db.counts[name]

    def _helper(self) -> None:
        """Private: not a tool."""


async def test_a_toolkit_class_is_built_per_dialogue_around_its_own_state() -> None:
    env = PythonEnvironment.from_toolkit(CounterTools, Counter())
    assert [tool.name for tool in env.tools()] == ["bump"]
    assert "state" in spec(env, "bump")["parameters"]["properties"]
    first, second = env.fork(), env.fork()
    assert (await first.call("bump", {"name": "a", "state": "off"})).content == 1
    assert (await first.call("bump", {"name": "a"})).content == 2
    assert (await second.call("bump", {"name": "a"})).content == 1
    assert env.state.counts == {}


async def test_sync_tools_run_off_the_event_loop() -> None:
    def where(state: None) -> str:
        """Which thread runs the tool."""
        return threading.current_thread().name

    result = await PythonEnvironment([where]).fork().call("where", {})
    assert result.content != threading.current_thread().name


# --- error kinds -------------------------------------------------------------------------------------------------


class OrderNotFound(Exception):
    pass


class Frozen(Exception):
    pass


def order_action(state: dict[str, Any], order_id: str) -> str:
    """Act on an order.

    Args:
        order_id: the order.
    """
    raise {
        "a": ValueError("Order not found"),
        "b": OrderNotFound(order_id),
        "c": ValueError("Non-pending order cannot be cancelled"),
        "d": Frozen("the account is frozen"),
        "e": RuntimeError("Payment gateway timed out"),
    }[order_id]


@pytest.mark.parametrize(
    ("order_id", "kind"),
    [("a", "not_found"), ("b", "not_found"), ("c", "constraint_violation"), ("d", "execution_error")],
    ids=["not-found-message", "not-found-class", "value-error", "other"],
)
async def test_default_error_kinds(order_id: str, kind: str) -> None:
    result = await PythonEnvironment([order_action], {}).call("order_action", {"order_id": order_id})
    assert result.error is not None and result.error.kind == kind


async def test_error_rules_come_before_the_defaults() -> None:
    rules = [
        ErrorRule("refused", Frozen),
        ErrorRule("refused", ValueError, re.compile("cannot be cancelled", re.IGNORECASE)),
        ErrorRule("unavailable", message=re.compile("timed out")),
    ]
    env = PythonEnvironment([order_action], {}, errors=rules)
    kinds = {key: (await env.call("order_action", {"order_id": key})).error.kind for key in "acde"}  # type: ignore[union-attr]
    assert kinds == {"a": "not_found", "c": "refused", "d": "refused", "e": "unavailable"}


# --- checks, snapshots, restore ----------------------------------------------------------------------------------


def ordered_copies(state: dict[str, Any], diff: StateDiff, book_id: int, quantity: int) -> bool:
    return (
        any(o["book_id"] == book_id and o["quantity"] == quantity for o in state["orders"]) and "orders" in diff.tables
    )


def broken_check(state: dict[str, Any], diff: StateDiff) -> bool:
    raise KeyError("orders")


async def test_python_checks_run_on_the_final_state_with_the_diff(env: PythonEnvironment[Any]) -> None:
    fork = env.fork()
    await fork.call("place_order", {"book_id": 3, "quantity": 2, "address": SHIP_TO})
    here = f"{__name__}:"
    verification = fork.verify(
        [
            PythonCheck(
                description="two Solaris", python=here + "ordered_copies", arguments={"book_id": 3, "quantity": 2}
            ),
            PythonCheck(
                description="two Dune", python=here + "ordered_copies", arguments={"book_id": 1, "quantity": 2}
            ),
            PythonCheck(description="raises", python=here + "broken_check"),
            PythonCheck(description="missing", python=here + "no_such_check"),
            SQLCheck(description="sql", sql="SELECT 1"),
        ]
    )
    outcomes = {o.description: o for o in verification.checks}
    assert [outcomes[name].passed for name in ("two Solaris", "two Dune", "raises", "missing", "sql")] == [
        True, False, False, False, False,
    ]  # fmt: skip
    assert outcomes["two Solaris"].source == here + 'ordered_copies({"book_id":3,"quantity":2})'
    assert "KeyError" in outcomes["raises"].detail
    assert "no attribute 'no_such_check'" in outcomes["missing"].detail
    assert verification.diff.counts() == {"orders": {"inserted": 1, "updated": 0, "deleted": 0}, "books": {
        "inserted": 0, "updated": 1, "deleted": 0}}  # fmt: skip
    assert verification.initial_digest == env.digest() != verification.final_digest


class Journal:
    """A state with its own fork and digest hooks, counting how often it is digested."""

    def __init__(self, entries: list[str]) -> None:
        self.entries = entries
        self.digested = 0

    def fork(self) -> Journal:
        return Journal(list(self.entries))

    def digest(self) -> str:
        self.digested += 1
        return str(len(self.entries))


def write(state: Journal, text: str) -> int:
    """Write an entry."""
    state.entries.append(text)
    return len(state.entries)


async def test_calls_and_snapshots_never_hash_the_state() -> None:
    env = PythonEnvironment([write], Journal([]))
    fork = env.fork()
    for text in "abc":
        await fork.call("write", {"text": text})
        fork.snapshot()
    assert fork.state.digested == 0
    assert fork.digest() == fork.digest() == "3"
    assert fork.state.digested == 1, "the digest is kept until the next call"


async def test_restore_runs_the_calls_again_and_checks_their_results() -> None:
    factory = PythonEnvironments(PythonEnvironment(FUNCTIONS, bookstore()))
    live = factory.new(seed=1, clock="2025-01-01T00:00:00")
    calls = [("place_order", {"book_id": 3, "quantity": 2, "address": SHIP_TO}), ("get_order", {"order_id": 101})]
    for name, arguments in calls:
        await live.call(name, arguments)
    restored = await factory.restore(live.snapshot(), seed=1, calls=calls)
    assert restored.digest() == live.digest() and restored.snapshot() == live.snapshot()

    with pytest.raises(RestoreError, match="did not give the results"):
        await factory.restore(live.snapshot(), seed=1, calls=calls[:1])
    changed = PythonEnvironments(PythonEnvironment(FUNCTIONS, {**bookstore(), "books": []}))
    with pytest.raises(RestoreError, match="not the one this dialogue started from"):
        await changed.restore(live.snapshot(), seed=1, calls=calls)
