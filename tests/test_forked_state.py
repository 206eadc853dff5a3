"""Copy-on-access forks of a JSON state: no way of reaching a value lets a fork change the root, and the digest
and diff computed from what the fork touched equal those computed from the whole state."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from dialforge.environments.forked_state import ForkedDict, RootDigest, changes, is_plain_json, state_digest
from dialforge.environments.python_env import PythonEnvironment


def records() -> dict[str, Any]:
    return {
        "today": "2025-03-14",
        "orders": {
            "#W1": {"status": "pending", "items": [{"id": "i1", "price": 10.5}], "address": {"city": "Oslo"}},
            "#W2": {"status": "delivered", "items": [], "address": {"city": "Lima"}},
        },
        "users": {"ann": {"name": "Ann", "orders": ["#W1"]}, "bob": {"name": "Bob", "orders": ["#W2"]}},
        "log": [{"id": 1, "event": "opened"}],
    }


def changes_of(fork: ForkedDict) -> Any:
    found = changes(fork, fork.base)
    assert found is not None
    return found


def plain(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


WRITES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "nested set": lambda s: s["orders"]["#W1"]["address"].__setitem__("city", "Bergen"),
    "list append": lambda s: s["orders"]["#W1"]["items"].append({"id": "i2", "price": 1}),
    "values()": lambda s: [order.__setitem__("status", "x") for order in s["orders"].values()],
    "items()": lambda s: [user["orders"].clear() for _, user in s["users"].items()],
    "get()": lambda s: s["users"].get("ann")["orders"].append("#W9"),
    "dict(copy)": lambda s: dict(s["orders"])["#W2"].__setitem__("status", "lost"),
    "{**unpacked}": lambda s: {**s["orders"]}["#W2"]["items"].append(1),
    "update(fork)": lambda s: (target := {}, target.update(s["users"]), target["bob"].__setitem__("name", "B")),
    "copy()": lambda s: s["orders"].copy()["#W1"]["items"].clear(),
    "pop()": lambda s: s["orders"].pop("#W1")["items"].append(2),
    "popitem()": lambda s: s["users"].popitem()[1]["orders"].append("#W0"),
    "setdefault()": lambda s: s["users"].setdefault("ann", {})["orders"].append("#W3"),
    "json.dumps then write": lambda s: (json.dumps(s), s["log"].append({"id": 2})),
    "deepcopy then write": lambda s: copy.deepcopy(s)["orders"]["#W1"]["items"].clear(),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_no_way_of_reaching_a_value_changes_the_root(write: Callable[[dict[str, Any]], Any]) -> None:
    root = records()
    fork = ForkedDict(root)
    write(fork)
    assert root == records()


def test_a_fork_sees_its_own_writes_and_the_digest_follows_them() -> None:
    root = records()
    digests = RootDigest(root)
    fork = ForkedDict(root)
    assert digests.of(changes_of(fork)) == digests.digest == state_digest(root)
    fork["orders"]["#W1"]["status"] = "cancelled"
    fork["users"]["cy"] = {"name": "Cy", "orders": []}
    del fork["users"]["bob"]
    fork["today"] = "2025-03-15"
    assert plain(fork)["orders"]["#W1"]["status"] == "cancelled"
    assert digests.of(changes_of(fork)) == state_digest(plain(fork)) != state_digest(root)


def test_reading_without_changing_keeps_the_roots_digest() -> None:
    root = records()
    fork = ForkedDict(root)
    _ = [user["orders"] for user in fork["users"].values()], fork["orders"]["#W1"]["address"]["city"]
    assert fork.changed() == set()
    assert RootDigest(root).of(changes_of(fork)) == state_digest(root)


def test_undoing_a_change_gives_the_roots_digest_back() -> None:
    root = records()
    fork = ForkedDict(root)
    fork["orders"]["#W1"]["status"] = "cancelled"
    fork["orders"]["#W1"]["status"] = "pending"
    assert RootDigest(root).of(changes_of(fork)) == state_digest(root)


def noop() -> None:
    """Do nothing: only the state matters here."""


def test_random_writes_give_the_digest_and_diff_of_the_whole_state() -> None:
    """Many random edits: the fork's digest and diff equal those of a plain copy edited the same way."""
    rng = random.Random(3)
    root = {f"t{t}": {f"r{r}": {"n": r, "tags": [r]} for r in range(30)} for t in range(4)} | {"flag": True}
    env = PythonEnvironment([noop], root)
    for _ in range(25):
        fork, twin = env.fork(), PythonEnvironment([noop], copy.deepcopy(root))
        fork.state["flag"] = twin.state["flag"] = rng.random() < 0.5
        for _ in range(rng.randint(1, 6)):
            table, row = f"t{rng.randrange(5)}", f"r{rng.randrange(35)}"
            action = rng.choice(["set", "delete", "append", "new"])
            for state in (fork.state, twin.state):
                tables = state.setdefault(table, {})
                if action == "set" and row in tables:
                    tables[row]["n"] = -1
                elif action == "delete" and row in tables:
                    del tables[row]
                elif action == "append" and row in tables:
                    tables[row]["tags"].append(0)
                elif action == "new":
                    tables[row] = {"n": 0, "tags": []}
        assert fork.digest() == twin.digest()
        assert fork.diff(env) == twin.diff(env)
    assert env.state == {f"t{t}": {f"r{r}": {"n": r, "tags": [r]} for r in range(30)} for t in range(4)} | {
        "flag": True
    }


def test_only_plain_json_is_forked_on_access() -> None:
    assert is_plain_json(records())
    assert not is_plain_json({1: "int key"})
    assert not is_plain_json({"when": (2025, 3)})
    assert not is_plain_json({"tags": {"a"}})


# --- a pydantic database, as tau2-bench's --------------------------------------------------------------------


class Address(BaseModel):
    city: str
    state: str


class User(BaseModel):
    name: str
    address: Address
    orders: list[str]


class Order(BaseModel):
    status: str
    items: list[str]


class Shop(BaseModel):
    users: dict[str, User]
    orders: dict[str, Order]
    version: int = 1


class ShopTools:
    def __init__(self, db: Shop) -> None:
        self.db = db

    def cancel(self, order_id: str) -> Order:
        """Cancel an order."""
        order = self.db.orders[order_id]
        order.status = "cancelled"
        return order

    def move(self, user_id: str, city: str, state: str) -> User:
        """Change a user's address."""
        self.db.users[user_id].address = Address(city=city, state=state)
        return self.db.users[user_id]

    def find(self, name: str) -> str:
        """Find a user id by name (a scan of every user)."""
        return next(key for key, user in self.db.users.items() if user.name == name)


def shop() -> Shop:
    return Shop(
        users={
            f"u{i}": User(name=f"N{i}", address=Address(city="Oslo", state="NO"), orders=[f"o{i}"]) for i in range(50)
        },
        orders={f"o{i}": Order(status="pending", items=["a", "b"]) for i in range(50)},
    )


async def test_a_pydantic_state_is_forked_on_access_and_digested_as_a_whole_copy_would_be() -> None:
    root = PythonEnvironment.from_toolkit(ShopTools, shop())
    fork = root.fork()
    assert isinstance(fork.state.orders, ForkedDict), "forked on access, not copied"
    await fork.call("find", {"name": "N7"})
    await fork.call("cancel", {"order_id": "o3"})
    await fork.call("move", {"user_id": "u4", "city": "Albany", "state": "NY"})
    assert root.state == shop(), "the root is untouched"

    twin = PythonEnvironment.from_toolkit(ShopTools, shop())
    twin.state.orders["o3"].status = "cancelled"
    twin.state.users["u4"].address = Address(city="Albany", state="NY")
    assert fork.digest() == twin.digest() != root.digest()
    assert fork.diff(root) == twin.diff(root)
    assert fork.diff(root).counts() == {
        "orders": {"inserted": 0, "updated": 1, "deleted": 0},
        "users": {"inserted": 0, "updated": 1, "deleted": 0},
    }
