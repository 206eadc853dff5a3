"""Python tool environments on a state of a few MB of the shape of tau2-bench's retail database.

    python benchmarks/python_env.py --orders 6000 --concurrency 100 --dialogues-per-slot 2 --latency-ms 200

Generates a database of users, orders and products (``--orders`` orders, a third as many users), serves the tools
of ``benchmarks/retail_tools.py`` from it, and measures, in this process's CPU time:

- fork: a dialogue's own state (copy-on-access), against a deep copy and pickle's round trip of the whole state;
- call: one tool call on a fork (a lookup, a scan of every user, a cancellation, an address change);
- digest: the fork's digest after its writes (only what it touched is hashed), against hashing the whole state;
- the whole pipeline: user+exec dialogues against ``dialforge mock-server`` (real HTTP client, real store), CPU
  per model call, with the SQL pipeline on Chinook at the same dialogue count and concurrency beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import pickle
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from dialforge.config import DialforgeConfig
from dialforge.environments.python_config import load_environments
from dialforge.environments.python_env import PythonEnvironment
from dialforge.model import Task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import CheckpointClock, measure, start_server

TOOLS = Path(__file__).resolve().parent / "retail_tools.py"


def retail_database(orders: int, seed: int = 0) -> dict[str, Any]:
    """Users with addresses and payment methods, products with variants, orders with items and payments."""
    rng = random.Random(seed)
    colors, sizes = ["red", "blue", "black", "white"], ["S", "M", "L", "XL"]
    products = {
        str(1_000_000 + p): {
            "name": f"Product {p}",
            "product_id": str(1_000_000 + p),
            "variants": {
                str(9_000_000 + p * 40 + v): {
                    "item_id": str(9_000_000 + p * 40 + v),
                    "options": {"color": rng.choice(colors), "size": rng.choice(sizes)},
                    "available": rng.random() < 0.8,
                    "price": round(rng.uniform(5, 500), 2),
                }
                for v in range(40)
            },
        }
        for p in range(50)
    }
    items = [(pid, iid, v["price"]) for pid, p in products.items() for iid, v in p["variants"].items()]
    users: dict[str, Any] = {}
    for u in range(orders // 3):
        user_id = f"user_{u}"
        users[user_id] = {
            "user_id": user_id,
            "name": {"first_name": f"First{u}", "last_name": f"Last{u}"},
            "address": {
                "address1": f"{u} Main St",
                "address2": "",
                "city": "Springfield",
                "state": "IL",
                "country": "USA",
                "zip": f"{10000 + u}",
            },
            "email": f"user{u}@example.com",
            "payment_methods": {
                f"credit_card_{u}": {
                    "source": "credit_card",
                    "id": f"credit_card_{u}",
                    "brand": "visa",
                    "last_four": f"{u % 10000:04d}",
                }
            },
            "orders": [],
        }
    table: dict[str, Any] = {}
    for o in range(orders):
        user = users[f"user_{o % len(users)}"]
        chosen = rng.sample(items, rng.randint(1, 4))
        order_id = f"#W{1_000_000 + o}"
        user["orders"].append(order_id)
        table[order_id] = {
            "order_id": order_id,
            "user_id": user["user_id"],
            "address": dict(user["address"]),
            "items": [
                {"name": f"Product {pid}", "product_id": pid, "item_id": iid, "price": price, "options": {}}
                for pid, iid, price in chosen
            ],
            "fulfillments": [],
            "status": rng.choice(["pending", "processed", "delivered", "cancelled"]),
            "payment_history": [
                {
                    "transaction_type": "payment",
                    "amount": round(sum(c[2] for c in chosen), 2),
                    "payment_method_id": next(iter(user["payment_methods"])),
                }
            ],
        }
    return {"users": users, "orders": table, "products": products}


def cpu_ms(action: Callable[[], Any], repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        action()
    return 1000 * (time.process_time() - started) / repeat


def micro(database_path: Path, repeat: int) -> None:
    database = orjson.loads(database_path.read_bytes())
    size = database_path.stat().st_size / 1e6
    environments = load_environments(name="retail", tools=str(TOOLS), state=str(database_path), state_parameter="db")
    root = environments.root
    users, orders = list(database["users"]), [k for k, v in database["orders"].items() if v["status"] == "pending"]
    print(
        f"state: {size:.1f} MB of JSON, {len(database['users'])} users, {len(database['orders'])} orders, "
        f"{len(database['products'])} products"
    )

    started = time.process_time()
    root.fork().digest()
    print(f"once per run: the root's digest and copy-on-access check {1000 * (time.process_time() - started):.0f} ms")
    print(
        f"fork: copy-on-access {1000 * cpu_ms(root.fork, repeat * 10):.1f} µs; "
        f"deep copy {cpu_ms(lambda: copy.deepcopy(database), 3):.0f} ms; "
        f"pickle round trip {cpu_ms(lambda: pickle.loads(pickle.dumps(database, -1)), 3):.0f} ms"
    )

    rng = random.Random(1)
    calls: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
        "get_order_details": lambda: ("get_order_details", {"order_id": rng.choice(orders)}),
        "find_user_id_by_email (scans every user)": lambda: (
            "find_user_id_by_email",
            {"email": f"{rng.choice(users).replace('_', '')}@example.com"},
        ),
        "cancel_pending_order": lambda: (
            "cancel_pending_order",
            {"order_id": rng.choice(orders), "reason": "no longer needed"},
        ),
        "modify_user_address": lambda: (
            "modify_user_address",
            {
                "user_id": rng.choice(users),
                "address1": "1 Elm",
                "address2": "",
                "city": "Albany",
                "state": "NY",
                "country": "USA",
                "zip": "12207",
            },
        ),
    }

    async def timed_calls() -> dict[str, float]:
        spent: dict[str, float] = {}
        for label, make in calls.items():
            total = 0.0
            for _ in range(repeat):
                fork = root.fork()
                name, arguments = make()
                started = time.process_time()
                result = await fork.call(name, arguments)
                total += time.process_time() - started
                assert result.ok, result.error
            spent[label] = 1000 * total / repeat
        return spent

    for label, ms in asyncio.run(timed_calls()).items():
        print(f"call: {label} {ms:.2f} ms")

    async def digests() -> tuple[float, float, float]:
        lazy = whole = verify = 0.0
        for _ in range(repeat):
            fork: PythonEnvironment[Any] = root.fork()
            for make in (calls["cancel_pending_order"], calls["modify_user_address"]):
                await fork.call(*make())
            started = time.process_time()
            fork.digest()
            lazy += time.process_time() - started
            started = time.process_time()
            hashlib.blake2b(orjson.dumps(fork.state, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
            whole += time.process_time() - started
            started = time.process_time()
            fork._digest = None
            fork.verify([])
            verify += time.process_time() - started
        return 1000 * lazy / repeat, 1000 * whole / repeat, 1000 * verify / repeat

    lazy, whole, verify = asyncio.run(digests())
    print(
        f"digest after two writes: {lazy:.3f} ms (hashing the whole state: {whole:.1f} ms); "
        f"verify (diff and digests) {verify:.3f} ms"
    )


def python_config(database_path: Path) -> Callable[[Path, str, int, int], DialforgeConfig]:
    def make(workdir: Path, base_url: str, concurrency: int, dialogues: int) -> DialforgeConfig:
        tasks = [
            Task(
                id="a",
                description="You are user_7 (user7@example.com): you want order #W1000007 cancelled.",
                tools=["find_user_id_by_email", "get_order_details", "cancel_pending_order"],
            ),
            Task(
                id="b",
                description="You are user_12: you moved to 1 Elm St, Albany, NY 12207, USA.",
                tools=["get_user_details", "modify_user_address"],
            ),
        ]
        (workdir / "tasks.jsonl").write_text("".join(task.model_dump_json() + "\n" for task in tasks))
        return DialforgeConfig.model_validate(
            {
                "mode": "user+exec",
                "domains": [
                    {
                        "name": "retail",
                        "python": {"tools": str(TOOLS), "state": str(database_path), "state_parameter": "db"},
                        "tasks": str(workdir / "tasks.jsonl"),
                        "policy": "Authenticate the user by email before acting; confirm before changing anything.",
                    }
                ],
                "generation": {"tasks_per_dialogue": [1, 2]},
                "dialogue": {"per_domain": dialogues, "max_turns": 24},
                "models": {
                    "default": {"model": "mock-model", "base_urls": base_url, "max_concurrency": concurrency * 2}
                },
            }
        )

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--dialogues-per-slot", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--no-sql", action="store_true", help="skip the SQL pipeline run beside it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database_path = Path(folder) / "retail_db.json"
        database_path.write_bytes(orjson.dumps(retail_database(args.orders)))
        micro(database_path, args.repeat)
        server, base_url = start_server(args.latency_ms)
        clock = CheckpointClock()
        try:
            runs = [("python", python_config(database_path))]
            if not args.no_sql:
                runs.append(("sql", None))  # type: ignore[arg-type]
            for label, make in runs:
                extra = {"make_config": make} if make is not None else {}
                row = asyncio.run(measure(base_url, args.concurrency, args.dialogues_per_slot, clock, **extra))
                print(
                    f"pipeline ({label}): {row['dialogues']:.0f} dialogues ({row['failed']:.0f} failed) at "
                    f"concurrency {args.concurrency}, {row['calls/s']:.0f} model calls/s, "
                    f"{row['cpu ms/call']:.2f} CPU ms per model call, "
                    f"checkpointing {100 * row['checkpoint share']:.0f}% of CPU"
                )
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
