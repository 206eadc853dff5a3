"""SQL environment: fork cost, tool-call latency, and memory of 1,000 live forks.

    python benchmarks/sql_env.py [--chinook tests/data/db/chinook.sqlite] [--big-mb 100]

Databases: Chinook (1 MB, from tests/data) and a generated shop database of about
``--big-mb`` MB (customers, orders, order lines; built once into the temp directory and reused).
For each: fork time (median of 1,000 forks), indexed lookup and single-row update latency
(median and p95 of 5,000 calls on one fork), and for 1,000 live forks that each made a lookup and
a write: resident memory added, and the bytes the forks hold beyond the shared base. A full
in-memory copy (SQLite backup API) is measured once for comparison, as the naive way to fork.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw

from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.tool import SQLTool

REPO = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_shop(path: Path, target_mb: int) -> None:
    """A realistic-looking shop: 100k customers, orders and order lines scaled to the target size."""
    orders = target_mb * 5_000
    connection = apsw.Connection(str(path))
    statements = [
        "PRAGMA journal_mode=OFF",
        "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, city TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customer(id),"
        " status TEXT NOT NULL, placed_at TEXT NOT NULL, total REAL NOT NULL, note TEXT)",
        "CREATE TABLE order_line (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),"
        " sku TEXT NOT NULL, quantity INTEGER NOT NULL, price REAL NOT NULL)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)"
        " INSERT INTO customer SELECT i, 'Customer ' || i, 'c' || i || '@example.com',"
        " 'City ' || (i % 500) FROM n",
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders})"
        " INSERT INTO orders SELECT i, 1 + (i * 7919) % 100000, CASE i % 4 WHEN 0 THEN 'placed' WHEN 1 THEN"
        " 'shipped' WHEN 2 THEN 'delivered' ELSE 'returned' END, date('2024-01-01', '+' || (i % 700) || ' days'),"
        " round((i % 9000) / 7.0, 2), printf('%.60c', 'n') FROM n",
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders * 2})"
        " INSERT INTO order_line SELECT i, 1 + (i - 1) / 2, 'SKU-' || (i % 5000), 1 + i % 3, (i % 97) + 0.99 FROM n",
        "CREATE INDEX order_customer ON orders (customer_id)",
        "CREATE INDEX line_order ON order_line (order_id)",
    ]
    with connection:
        for statement in statements:
            connection.execute(statement).fetchall()
    connection.close()


def measure(label: str, database: SQLDatabase, lookup: SQLTool, write: SQLTool, max_id: int) -> dict[str, float]:
    root = database.environment([lookup, write])
    rng = random.Random(0)

    fork_times = []
    for _ in range(1_000):
        started = time.perf_counter()
        fork = root.fork()
        fork_times.append(time.perf_counter() - started)
        fork.close()

    fork = root.fork()
    lookups, writes = [], []
    for _ in range(5_000):
        arguments = {"id": rng.randint(1, max_id)}
        started = time.perf_counter()
        result = fork.execute(lookup.name, arguments)
        lookups.append(time.perf_counter() - started)
        assert result.ok, result
    for _ in range(5_000):
        arguments = {"id": rng.randint(1, max_id)}
        started = time.perf_counter()
        result = fork.execute(write.name, arguments)
        writes.append(time.perf_counter() - started)
        assert result.ok, result
    fork.close()

    gc.collect()
    before = rss_mb()
    forks: list[SQLEnvironment] = []
    for index in range(1_000):
        fork = root.fork()
        fork.execute(lookup.name, {"id": 1 + index * 37 % max_id})
        fork.execute(write.name, {"id": 1 + index * 53 % max_id})
        forks.append(fork)
    after = rss_mb()
    held = sum(fork.changed_bytes for fork in forks)
    for fork in forks:
        fork.close()

    def ms(values: list[float], q: float) -> float:
        return 1000 * statistics.quantiles(values, n=100)[int(q) - 1] if q < 100 else 1000 * max(values)

    row = {
        "fork_ms_median": 1000 * statistics.median(fork_times),
        "lookup_ms_median": 1000 * statistics.median(lookups),
        "lookup_ms_p95": ms(lookups, 95),
        "update_ms_median": 1000 * statistics.median(writes),
        "update_ms_p95": ms(writes, 95),
        "rss_mb_1000_forks": after - before,
        "held_mb_1000_forks": held / 2**20,
    }
    print(
        f"{label:<22} fork {row['fork_ms_median']:.3f} ms | lookup {row['lookup_ms_median']:.3f} ms"
        f" (p95 {row['lookup_ms_p95']:.3f}) | update {row['update_ms_median']:.3f} ms (p95 {row['update_ms_p95']:.3f})"
        f" | 1,000 live forks: +{row['rss_mb_1000_forks']:.0f} MB RSS, {row['held_mb_1000_forks']:.1f} MB own pages"
    )
    return row


def full_copy_cost(path: Path) -> tuple[float, float]:
    """The naive fork: copy the whole database into memory (SQLite backup API)."""
    gc.collect()
    before = rss_mb()
    source = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    target = apsw.Connection(":memory:")
    started = time.perf_counter()
    with target.backup("main", source, "main") as backup:
        backup.step()
    seconds = time.perf_counter() - started
    grown = rss_mb() - before
    target.close()
    source.close()
    return 1000 * seconds, grown


def database_and_tools(name: str, args: argparse.Namespace) -> tuple[Path, SQLTool, SQLTool, int]:
    if name == "chinook":
        lookup = SQLTool(
            name="get_invoice",
            description="One invoice.",
            parameters={"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
            sql="SELECT * FROM Invoice WHERE InvoiceId = :id",
            returns={"type": "object"},
        )
        update = SQLTool(
            name="refund_invoice",
            description="Refund.",
            kind="write",
            parameters=lookup.parameters,
            sql="UPDATE Invoice SET Total = 0 WHERE InvoiceId = :id",
        )
        return args.chinook, lookup, update, 412
    big = Path(tempfile.gettempdir()) / f"dialforge-bench-shop-{args.big_mb}mb.sqlite"
    if not big.exists():
        build_shop(big, args.big_mb)
    lookup = SQLTool(
        name="get_order",
        description="One order.",
        parameters={"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
        sql="SELECT * FROM orders WHERE id = :id",
        returns={"type": "object"},
    )
    update = SQLTool(
        name="ship_order",
        description="Mark shipped.",
        kind="write",
        parameters=lookup.parameters,
        sql="UPDATE orders SET status = 'shipped' WHERE id = :id",
    )
    return big, lookup, update, args.big_mb * 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chinook", type=Path, default=REPO / "tests" / "data" / "db" / "chinook.sqlite")
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--worker", nargs=2, metavar=("DATABASE", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, what = args.worker
        path, lookup, update, max_id = database_and_tools(name, args)
        label = f"{name} ({path.stat().st_size / 2**20:.0f} MB)"
        if what == "forks":
            measure(label, SQLDatabase.open(path), lookup, update, max_id)
        else:
            copy_ms, copy_mb = full_copy_cost(path)
            print(f"{label:<22} naive fork (full in-memory copy): {copy_ms:.1f} ms and +{copy_mb:.1f} MB RSS per fork")
        return
    for name in ("chinook", "shop"):
        for what in ("forks", "copy"):
            # A fresh process per measurement: freed memory in one would hide growth in the next.
            extra = ["--chinook", str(args.chinook), "--big-mb", str(args.big_mb)]
            subprocess.run([sys.executable, __file__, "--worker", name, what, *extra], check=True)


if __name__ == "__main__":
    main()
