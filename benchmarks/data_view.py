"""The data view task writers see: time to plan it once per database and to draw one per batch of goals.

    python benchmarks/data_view.py [--big-mb 100] [--draws 20]

Databases: Chinook and Northwind (from tests/data) and the generated shop of ``sql_env.py`` of about
``--big-mb`` MB (100k customers, orders and order lines; built once into the temp directory and reused). For
each: the plan (a sample of each table, one GROUP BY per stratifying column), then the median and largest time
of ``--draws`` views drawn with different seeds at the default budget, with their size and rows.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sql_env import build_shop

from dialforge.environments.sql.data_view import DEFAULT_VIEW_TOKENS, draw_view, view_plan
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.source import open_readonly

REPO = Path(__file__).resolve().parents[1]


def measure(label: str, database: SQLDatabase, draws: int) -> None:
    connection = open_readonly(database.path)
    started = time.perf_counter()
    plan = view_plan(connection, database.schema)
    planned = time.perf_counter() - started
    times, sizes, rows = [], [], []
    for seed in range(draws):
        started = time.perf_counter()
        view = draw_view(connection, database.schema, plan, seed=seed)
        times.append(time.perf_counter() - started)
        sizes.append(len(view.text))
        rows.append(len(view.rows))
    connection.close()
    print(
        f"{label:<12} plan {planned * 1000:8.1f} ms  draw median {statistics.median(times) * 1000:7.1f} ms"
        f"  max {max(times) * 1000:7.1f} ms  chars {statistics.median(sizes):7.0f}"
        f" (budget {DEFAULT_VIEW_TOKENS * 4})  rows {statistics.median(rows):5.0f}  strata {len(plan.strata)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--draws", type=int, default=20)
    args = parser.parse_args()
    for name in ("chinook", "northwind"):
        measure(name, SQLDatabase.open(REPO / "tests" / "data" / "db" / f"{name}.sqlite"), args.draws)
    big = Path(tempfile.gettempdir()) / f"dialforge-bench-shop-{args.big_mb}mb.sqlite"
    if not big.exists():
        print(f"building {big} ...")
        build_shop(big, args.big_mb)
    measure(f"shop {big.stat().st_size // 2**20} MB", SQLDatabase.open(big), args.draws)


if __name__ == "__main__":
    main()
