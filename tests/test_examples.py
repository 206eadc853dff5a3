"""The examples that ship with the project work as shipped: configs load, the bookstore database builds from its
script, every tool is valid on it, every task names real tools, and every check is false on the initial data
(and becomes true once the task is done). The example is also consistent with itself: nothing in the data lies
after the configs' `dialogue.today`, the facts the goals state are in the data, every ranking a goal asks for has
one answer, and the policy settles the amounts goals ask about."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dialforge.actors.generators.readable_fields import ReadableFields
from dialforge.config import load_config
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.scaffold import read_tools_json
from dialforge.environments.sql.schema import quote_identifier
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import validate_tools
from dialforge.model.tasks import Task
from dialforge.pipeline.supplied import load_tasks, load_tool_specs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPT = EXAMPLES / "bookstore.sql"
TOOLS = EXAMPLES / "bookstore_tools.json"
TASK_FILES = ("bookstore_tasks.jsonl", "bookstore_rubric_tasks.jsonl")
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
TODAY = load_config(EXAMPLES / "quickstart.yaml").dialogue.today
assert TODAY is not None
ROW_COUNTS = {"author": 30, "book": 62, "customer": 40, "order_line": 203, "orders": 111, "review": 103}


@pytest.fixture(scope="module")
def database() -> Iterator[SQLDatabase]:
    database = SQLDatabase.from_sql_file(SCRIPT)
    yield database
    database.close()


@pytest.fixture(scope="module")
def tools() -> list[SQLTool]:
    return read_tools_json(TOOLS)


@pytest.fixture(scope="module")
def root(database: SQLDatabase, tools: list[SQLTool]) -> Iterator[SQLEnvironment]:
    environment = database.environment(tools)
    yield environment
    environment.close()


def all_tasks() -> list[tuple[str, Task]]:
    return [(name, task) for name in TASK_FILES for task in load_tasks(EXAMPLES / name)]


def checks() -> list[Any]:
    return [
        pytest.param(check.sql, id=f"{task.id}-{index}")
        for _, task in all_tasks()
        for index, check in enumerate(task.checks, start=1)
    ]


def test_there_is_a_config_per_pipeline() -> None:
    modes = {path.name: load_config(path).mode for path in CONFIGS}

    assert modes == {"quickstart.yaml": "user+exec", "task_oriented.yaml": "task", "user_simulated.yaml": "user"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_loads_and_names_the_example_files(path: Path) -> None:
    config = load_config(path)

    [domain] = config.domains
    assert domain.name == "bookstore" and domain.policy and domain.description
    assert domain.tools == TOOLS
    assert domain.tasks is not None and domain.tasks.name in TASK_FILES
    assert (domain.database == SCRIPT) == (config.mode == "user+exec")
    assert config.models.is_configured()  # a real run needs no edit: it points at a local server


def test_the_database_builds_from_the_script_without_touching_it(database: SQLDatabase) -> None:
    before = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()
    rebuilt = SQLDatabase.from_sql_file(SCRIPT)
    rebuilt.close()

    assert {table.name: table.row_count for table in database.schema.tables} == ROW_COUNTS
    assert hashlib.sha256(SCRIPT.read_bytes()).hexdigest() == before
    assert len(SCRIPT.read_text(encoding="utf-8").splitlines()) < 600


def test_the_data_keeps_its_foreign_keys(root: SQLEnvironment) -> None:
    orphans = root.query(
        "SELECT (SELECT COUNT(*) FROM book WHERE author_id NOT IN (SELECT author_id FROM author))"
        " + (SELECT COUNT(*) FROM orders WHERE customer_id NOT IN (SELECT customer_id FROM customer))"
        " + (SELECT COUNT(*) FROM order_line WHERE order_id NOT IN (SELECT order_id FROM orders)"
        "    OR book_id NOT IN (SELECT book_id FROM book))"
        " + (SELECT COUNT(*) FROM review WHERE book_id NOT IN (SELECT book_id FROM book)"
        "    OR customer_id NOT IN (SELECT customer_id FROM customer)) AS orphans"
    )

    assert orphans.content == [{"orphans": 0}]


def test_every_tool_is_valid_on_the_database(database: SQLDatabase, tools: list[SQLTool]) -> None:
    verdicts = validate_tools(tools, database)

    assert [(v.name, v.reasons) for v in verdicts if not v.valid] == []
    assert 12 <= len(tools) <= 16
    assert {tool.kind for tool in tools} == {"read", "write"}
    assert all(tool.returns for tool in tools)


def test_the_tools_load_as_specs_for_simulated_modes(tools: list[SQLTool]) -> None:
    specs = load_tool_specs(TOOLS)

    assert [spec.name for spec in specs] == [tool.name for tool in tools]
    assert all(spec.returns for spec in specs)  # no return-schema stage needed in modes user and task


@pytest.mark.parametrize("name", TASK_FILES)
def test_tasks_load_and_use_only_example_tools(name: str, tools: list[SQLTool]) -> None:
    tasks = load_tasks(EXAMPLES / name)
    names = {tool.name for tool in tools}
    ids = [task.id for task in tasks]

    assert len(set(ids)) == len(ids)
    assert [(task.id, sorted(set(task.tools) - names)) for task in tasks if not set(task.tools) <= names] == []
    assert all(task.tools for task in tasks)
    primary = {task.id for task in tasks if task.follows is None}
    assert all(task.follows in primary for task in tasks if task.follows is not None)


def test_every_fact_a_goal_asks_to_see_is_returned_by_a_tool(root: SQLEnvironment, tools: list[SQLTool]) -> None:
    readable = ReadableFields.of([tool.to_spec() for tool in tools], root)

    assert all(task.asks_to_see for _, task in all_tasks())
    assert [(task.id, readable.unreachable(task.asks_to_see)) for _, task in all_tasks()] == [
        (task.id, []) for _, task in all_tasks()
    ]


def test_descriptive_tasks_have_the_shape_the_pipeline_expects() -> None:
    tasks = load_tasks(EXAMPLES / "bookstore_tasks.jsonl")
    primary = [task for task in tasks if task.follows is None]
    followups = [task for task in tasks if task.follows is not None]

    assert (len(primary), len(followups)) == (12, 4)
    assert {task.difficulty for task in primary} == {"easy", "medium", "hard"}
    assert all(task.description.startswith("You ") and 1 <= len(task.subtasks) <= 4 for task in tasks)
    writes = {
        "create_order",
        "add_book_to_order",
        "cancel_order",
        "request_return",
        "update_customer_email",
        "add_review",
    }
    assert all(task.checks for task in tasks if writes & set(task.tools))


def test_rubric_tasks_have_rubrics() -> None:
    tasks = load_tasks(EXAMPLES / "bookstore_rubric_tasks.jsonl")

    assert len(tasks) == 4
    assert all(task.rubric.success_criteria and task.rubric.expected_tool_pattern for task in tasks)
    assert all(task.rubric.checkpoints for task in tasks)


@pytest.mark.parametrize("sql", checks())
def test_every_check_runs_and_is_false_on_the_initial_data(root: SQLEnvironment, sql: str) -> None:
    passed, why = root.check(sql)

    assert "could not run" not in why and "no row" not in why, why
    assert not passed, why


def new_order(results: list[Any]) -> int:
    return results[0]["last_row_id"]


# Each task that changes data, done the way a good agent would do it: (tool, arguments); a callable argument
# reads the results so far. Tasks that continue another start from that one's end state.
SOLUTIONS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "bookstore-descriptive-02": [
        ("update_customer_email", {"customer_id": 17, "new_email": "priyanka.desai@example.com"}),
    ],
    "bookstore-descriptive-03": [("cancel_order", {"customer_id": 21, "order_id": 1109})],
    "bookstore-descriptive-04": [
        ("create_order", {"customer_id": 1}),
        ("add_book_to_order", {"customer_id": 1, "order_id": new_order, "book_id": 26, "quantity": 2}),
        ("add_book_to_order", {"customer_id": 1, "order_id": new_order, "book_id": 21, "quantity": 1}),
    ],
    "bookstore-descriptive-05": [("add_review", {"customer_id": 36, "book_id": 30, "rating": 4, "body": "Lovely."})],
    "bookstore-descriptive-06": [
        ("create_order", {"customer_id": 11, "shipping_method": "express"}),
        ("add_book_to_order", {"customer_id": 11, "order_id": new_order, "book_id": 50, "quantity": 1}),
        ("request_return", {"customer_id": 11, "order_id": 1095, "reason": "The binding came apart."}),
    ],
    "bookstore-descriptive-08": [
        ("create_order", {"customer_id": 40}),
        ("add_book_to_order", {"customer_id": 40, "order_id": new_order, "book_id": 19, "quantity": 1}),
    ],
    "bookstore-descriptive-11": [
        ("add_book_to_order", {"customer_id": 27, "order_id": 1108, "book_id": 20, "quantity": 2}),
        ("add_book_to_order", {"customer_id": 27, "order_id": 1108, "book_id": 30, "quantity": 1}),
    ],
    "bookstore-descriptive-12": [
        ("create_order", {"customer_id": 35}),
        ("add_book_to_order", {"customer_id": 35, "order_id": new_order, "book_id": 15, "quantity": 1}),
    ],
    "bookstore-followup-01": [
        ("create_order", {"customer_id": 14}),
        ("add_book_to_order", {"customer_id": 14, "order_id": new_order, "book_id": 9, "quantity": 1}),
    ],
    "bookstore-followup-02": [
        ("search_orders", {"customer_id": 1, "status": "placed"}),
        (
            "add_book_to_order",
            {"customer_id": 1, "order_id": lambda r: r[0][0]["order_id"], "book_id": 42, "quantity": 1},
        ),
    ],
    "bookstore-followup-03": [
        ("create_order", {"customer_id": 21}),
        ("add_book_to_order", {"customer_id": 21, "order_id": new_order, "book_id": 45, "quantity": 1}),
    ],
}


def solve(environment: SQLEnvironment, steps: list[tuple[str, dict[str, Any]]]) -> None:
    results: list[Any] = []
    for tool, arguments in steps:
        bound = {key: value(results) if callable(value) else value for key, value in arguments.items()}
        result = environment.execute(tool, bound)
        assert result.error is None, (tool, bound, result.error)
        assert not (isinstance(result.content, dict) and result.content.get("rows_affected") == 0), (tool, bound)
        results.append(result.content)


def test_every_task_with_checks_has_a_solution() -> None:
    with_checks = {task.id for _, task in all_tasks() if task.checks}

    assert with_checks == set(SOLUTIONS)


@pytest.mark.parametrize("task_id", sorted(SOLUTIONS))
def test_checks_pass_once_the_task_is_done(root: SQLEnvironment, task_id: str) -> None:
    tasks = {task.id: task for _, task in all_tasks()}
    task = tasks[task_id]
    fork = root.fork(clock=TODAY)
    try:
        if task.follows is not None:
            solve(fork, SOLUTIONS.get(task.follows, []))
            assert not any(fork.check(check.sql)[0] for check in task.checks), "true before the follow-up"
        solve(fork, SOLUTIONS[task_id])

        assert [
            (check.description, fork.check(check.sql)) for check in task.checks if not fork.check(check.sql)[0]
        ] == []
        assert max(latest_timestamps(fork).values()) <= TODAY  # what it wrote is dated today at the latest
    finally:
        fork.close()


def test_stock_follows_orders_and_cancellations(root: SQLEnvironment) -> None:
    fork = root.fork()
    try:
        stock = "SELECT stock FROM book WHERE book_id = 21"
        assert fork.query(stock).content == [{"stock": 1}]
        solve(fork, [("create_order", {"customer_id": 1})])
        order = fork.query("SELECT max(order_id) AS id FROM orders").content[0]["id"]

        too_many = fork.execute(
            "add_book_to_order", {"customer_id": 1, "order_id": order, "book_id": 21, "quantity": 2}
        )
        solve(fork, [("add_book_to_order", {"customer_id": 1, "order_id": order, "book_id": 21, "quantity": 1})])
        after_order = fork.query(stock).content
        solve(fork, [("cancel_order", {"customer_id": 1, "order_id": order})])

        assert too_many.error is not None and too_many.error.kind == "constraint_violation"
        assert after_order == [{"stock": 0}]
        assert fork.query(stock).content == [{"stock": 1}]
    finally:
        fork.close()


# The example is consistent with itself: its data, its goals, its policy and its configs' date agree.

DATED = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"


def latest_timestamps(environment: SQLEnvironment) -> dict[str, datetime]:
    """The latest value of every column that holds dates or date-times, as 'table.column' -> when."""
    latest: dict[str, datetime] = {}
    for table in environment.database.schema.tables:
        for column in table.columns:
            name, where = quote_identifier(column.name), quote_identifier(table.name)
            [row] = environment.query(
                f"SELECT max({name}) AS latest, count({name}) AS filled,"
                f" sum(typeof({name}) = 'text' AND {name} GLOB '{DATED}') AS dated FROM {where}"
            ).content
            if row["dated"]:
                assert row["dated"] == row["filled"], f"{table.name}.{column.name} mixes dates with other values"
                latest[f"{table.name}.{column.name}"] = datetime.fromisoformat(row["latest"])
    return latest


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_nothing_in_the_data_is_later_than_the_configs_today(root: SQLEnvironment, path: Path) -> None:
    today = load_config(path).dialogue.today
    latest = latest_timestamps(root)

    assert today is not None
    assert set(latest) == {
        "customer.joined_on",
        "orders.placed_at",
        "orders.shipped_at",
        "orders.delivered_at",
        "review.created_at",
    }
    assert {column: str(when) for column, when in latest.items() if when > today} == {}


def test_the_configs_describe_the_same_shop_at_the_same_moment() -> None:
    configs = [load_config(path) for path in CONFIGS]

    assert {config.dialogue.today for config in configs} == {TODAY}
    assert len({config.domains[0].policy for config in configs}) == 1
    assert len({config.domains[0].description for config in configs}) == 1


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def customer(customer_id: int, name: str, email: str) -> str:
    return (
        f"SELECT COUNT(*) = 1 FROM customer WHERE customer_id = {customer_id}"
        f" AND first_name || ' ' || last_name = {literal(name)} AND email = {literal(email)}"
    )


def book(book_id: int, title: str, author: str | None = None, where: str = "1") -> str:
    by = "" if author is None else f" AND a.name = {literal(author)}"
    return (
        "SELECT COUNT(*) = 1 FROM book AS b JOIN author AS a ON a.author_id = b.author_id"
        f" WHERE b.book_id = {book_id} AND b.title = {literal(title)}{by} AND {where}"
    )


def order(order_id: int, customer_id: int, status: str, lines: dict[int, int], where: str = "1") -> str:
    """The order is the customer's, has this status and exactly these lines (book_id -> copies)."""
    held = " AND ".join(
        f"EXISTS (SELECT 1 FROM order_line AS l WHERE l.order_id = o.order_id AND l.book_id = {book_id}"
        f" AND l.quantity = {copies})"
        for book_id, copies in lines.items()
    )
    return (
        f"SELECT COUNT(*) = 1 FROM orders AS o WHERE o.order_id = {order_id} AND o.customer_id = {customer_id}"
        f" AND o.status = '{status}' AND {where} AND {held}"
        f" AND (SELECT COUNT(*) FROM order_line AS l WHERE l.order_id = o.order_id) = {len(lines)}"
    )


# What each goal states or takes for granted, as read-only SQL that is true on the initial data; :today is the
# configs' dialogue.today, so "this afternoon", "two days ago" and "earlier this month" are checked against it.
# The manager's goals state nothing but rankings (below).
FACTS: dict[str, list[str]] = {
    "bookstore-descriptive-01": [
        customer(14, "Declan Murphy", "declan.murphy@example.net"),
        book(16, "Dead Reckoning in Duluth", where="b.genre = 'Mystery' AND b.format = 'paperback'"),
    ],
    "bookstore-descriptive-02": [
        customer(17, "Priyanka Desai", "priyanka.desai@northwind-labs.example"),
        "SELECT COUNT(*) = 0 FROM customer WHERE email = 'priyanka.desai@example.com'",
    ],
    "bookstore-descriptive-03": [
        customer(21, "Zara Mensah", "zara.mensah@example.com"),
        book(4, "The Glass Cartographer"),
        book(45, "Kente and Code"),
        order(
            1109,
            21,
            "placed",
            {4: 1, 45: 1},
            "o.shipping_method = 'express' AND date(o.placed_at) = date(:today) AND time(o.placed_at) >= '12:00'",
        ),
    ],
    "bookstore-descriptive-04": [
        customer(1, "Maya Okafor", "maya.okafor@example.com"),
        book(26, "Saltwater Hymns", "Siobhan Keane", "b.stock >= 2"),
        book(21, "Prairie Almanac", "Eleanor Pruitt", "b.stock >= 1"),
    ],
    "bookstore-descriptive-05": [
        customer(36, "Theo Whitcombe", "theo.whitcombe@example.org"),
        book(30, "The Kelp Forest Detective"),
        "SELECT COUNT(*) = 1 FROM orders AS o JOIN order_line AS l ON l.order_id = o.order_id WHERE o.customer_id = 36"
        " AND l.book_id = 30 AND o.status = 'delivered' AND o.delivered_at >= date(:today, '-1 month')",
    ],
    "bookstore-descriptive-06": [
        customer(11, "Imogen Hartley", "imogen.hartley@example.org"),
        book(50, "The Hungry Ghost Festival", where="b.stock >= 1"),
        order(1095, 11, "delivered", {50: 1}, "strftime('%Y-%m', o.delivered_at) = strftime('%Y-%m', :today)"),
        "SELECT COUNT(*) = 1 FROM orders AS o JOIN order_line AS l ON l.order_id = o.order_id WHERE o.customer_id = 11"
        " AND l.book_id = 50 AND strftime('%Y-%m', o.delivered_at) = strftime('%Y-%m', :today)",
    ],
    "bookstore-descriptive-07": [
        customer(23, "Leila Farahani", "leila.farahani@example.com"),
        book(25, "The Tinker's Wake"),
        book(44, "The Perfumer of Grasse"),
        order(1102, 23, "delivered", {25: 1, 44: 3}, "date(o.delivered_at) = date(:today)"),
        "SELECT COUNT(*) = 1 FROM orders AS o JOIN order_line AS l ON l.order_id = o.order_id"
        " WHERE o.customer_id = 23 AND l.book_id = 25",
    ],
    "bookstore-descriptive-08": [
        customer(40, "Ibrahim Sadiq", "ibrahim.sadiq@example.org"),
        "SELECT substr(joined_on, 1, 7) = strftime('%Y-09', :today) FROM customer WHERE customer_id = 40",
        "SELECT COUNT(*) = 0 FROM orders WHERE customer_id = 40",
        book(19, "Paper Lanterns, Iron Rain", where="b.genre = 'Fantasy'"),
    ],
    "bookstore-descriptive-09": [],
    "bookstore-descriptive-10": [
        customer(10, "Mateo Fernández", "mateo.fernandez@example.net"),
        book(28, "Chess in Wartime"),
        order(1105, 10, "shipped", {28: 1}, "date(o.placed_at) = date(:today, '-2 days')"),
    ],
    "bookstore-descriptive-11": [
        customer(27, "Isla Fitzgerald", "isla.fitzgerald@example.com"),
        book(20, "The Fox Who Kept the Shrine", where="b.stock >= 2"),
        book(30, "The Kelp Forest Detective", where="b.stock >= 1"),
        order(1108, 27, "placed", {20: 1}, "date(o.placed_at) = date(:today)"),
    ],
    "bookstore-descriptive-12": [
        customer(35, "Rosa Iglesias", "rosa.iglesias@example.com"),
        book(56, "A Year of Bread", "Rosalind Penhaligon", "b.stock = 0"),
        book(15, "Monsoon Kitchen", where="b.genre = 'Cookery' AND b.price <= 32 AND b.stock >= 1"),
    ],
    "bookstore-followup-01": [
        book(9, "The Ferryman's Alibi", "Henrik Solberg", "b.genre = 'Mystery' AND b.format = 'paperback'"),
        book(9, "The Ferryman's Alibi", where="b.price < 13 AND b.stock >= 1"),
    ],
    "bookstore-followup-02": [book(42, "Badgers at Midnight", where="b.stock >= 1")],
    "bookstore-followup-03": [book(45, "Kente and Code", "Kwame Asante-Boateng")],
    "bookstore-followup-04": [],
    "bookstore-rubric-02": [
        customer(21, "Zara Mensah", "zara.mensah@example.com"),
        order(1109, 21, "placed", {4: 1, 45: 1}, "date(o.placed_at) = date(:today) AND time(o.placed_at) >= '12:00'"),
        "SELECT round(sum(quantity * unit_price), 2) = 45.5 FROM order_line WHERE order_id = 1109",
    ],
}
FACTS["bookstore-rubric-01"] = FACTS["bookstore-descriptive-01"]
FACTS["bookstore-rubric-03"] = FACTS["bookstore-descriptive-06"]
FACTS["bookstore-rubric-04"] = FACTS["bookstore-descriptive-09"]


def test_every_goal_has_its_facts_listed() -> None:
    assert sorted(task.id for _, task in all_tasks()) == sorted(FACTS)


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param(sql, id=f"{task_id}-{index}")
        for task_id, facts in FACTS.items()
        for index, sql in enumerate(facts, start=1)
    ],
)
def test_what_the_goals_state_is_in_the_data(root: SQLEnvironment, sql: str) -> None:
    result = root.query(sql, {"today": f"{TODAY:%Y-%m-%d %H:%M}"})

    assert result.error is None, result.error
    assert result.content and next(iter(result.content[0].values())) == 1, sql


@dataclass(frozen=True)
class Ranking:
    """A ranking a goal asks for: the tool call that ranks books best first and the value it ranks by; the tool
    call whose rows are the goal's candidates (``None``: every ranked book) and the books the goal leaves out; how
    many books the goal wants and which they are."""

    ranks: tuple[str, dict[str, Any]]
    by: str
    top: int
    answer: frozenset[int]
    among: tuple[str, dict[str, Any]] | None = None
    leaving_out: frozenset[int] = frozenset()


def best_reviewed(genre: str, min_reviews: int) -> tuple[str, dict[str, Any]]:
    return "top_rated_books", {"genre": genre, "in_stock_only": True, "min_reviews": min_reviews, "limit": 50}


BEST_SELLERS_2025 = ("best_selling_books", {"start_date": "2025-01-01", "limit": 50})

# Every ranking the goals ask for. A goal that does not say how many reviews a rating needs is read both ways
# (one review, or the tool's default of two) and must have the same answer either way.
RANKINGS: dict[str, list[Ranking]] = {
    "bookstore-descriptive-01": [
        Ranking(
            best_reviewed("Mystery", least),
            "average_rating",
            2,
            frozenset({9, 39}),
            ("search_books", {"genre": "Mystery", "format": "paperback", "max_price": 12.99, "in_stock_only": True}),
            frozenset({16}),
        )
        for least in (1, 2)
    ],
    "bookstore-descriptive-08": [Ranking(best_reviewed("Fantasy", 2), "average_rating", 1, frozenset({19}))],
    "bookstore-descriptive-09": [Ranking(BEST_SELLERS_2025, "copies_sold", 5, frozenset({52, 20, 50, 6, 1}))],
    "bookstore-descriptive-12": [
        Ranking(
            best_reviewed("Cookery", least),
            "average_rating",
            1,
            frozenset({15}),
            ("search_books", {"genre": "Cookery", "max_price": 32, "in_stock_only": True}),
        )
        for least in (1, 2)
    ],
    "bookstore-followup-04": [Ranking(BEST_SELLERS_2025, "copies_sold", 1, frozenset({52}))],
}
RANKINGS["bookstore-rubric-01"] = RANKINGS["bookstore-descriptive-01"]
RANKINGS["bookstore-rubric-04"] = RANKINGS["bookstore-descriptive-09"]

RANKING_WORDS = re.compile(r"\b(best|top|most|highest|lowest|cheapest|newest|oldest|latest)\b", re.IGNORECASE)


def task_text(task: Task) -> str:
    rubric = task.rubric
    return " ".join([task.description, *task.subtasks, *rubric.success_criteria, *rubric.checkpoints])


def rows_of(environment: SQLEnvironment, call: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    result = environment.execute(*call)
    assert result.error is None and not result.truncated, (call, result)
    return result.content


def test_every_goal_that_names_a_ranking_has_its_answer_checked() -> None:
    naming = {task.id for _, task in all_tasks() if RANKING_WORDS.search(task_text(task))}

    assert naming == set(RANKINGS)


@pytest.mark.parametrize("task_id", sorted(RANKINGS))
def test_every_ranking_a_goal_asks_for_has_one_answer(root: SQLEnvironment, task_id: str) -> None:
    for ranking in RANKINGS[task_id]:
        rows = rows_of(root, ranking.ranks)
        if ranking.among is not None:
            candidates = {row["book_id"] for row in rows_of(root, ranking.among)}
            rows = [row for row in rows if row["book_id"] in candidates]
        rows = [row for row in rows if row["book_id"] not in ranking.leaving_out]
        top, rest = rows[: ranking.top], rows[ranking.top :]

        assert {row["book_id"] for row in top} == ranking.answer, (ranking, rows)
        assert not rest or rest[0][ranking.by] < top[-1][ranking.by], f"a tie at place {ranking.top}: {rows}"


def policy_sentences(policy: str) -> list[str]:
    """The policy's sentences (and clauses between semicolons), each on one line, in lower case."""
    return [" ".join(part.split()).lower() for part in re.split(r"\n\s*- |(?<=[.;])\s+", policy)]


def test_the_policy_settles_every_amount_a_goal_asks_for() -> None:
    policy = load_config(EXAMPLES / "quickstart.yaml").domains[0].policy
    assert policy is not None
    sentences = policy_sentences(policy)

    def settled(*words: str) -> bool:
        return any(all(word in sentence for word in words) for sentence in sentences)

    asking = {
        word: [task for _, task in all_tasks() if word in task_text(task).lower()]
        for word in ("refund", "total", "discount")
    }
    assert asking["refund"] and asking["total"]
    for task in asking["refund"]:
        how = [word for word, tool in (("cancel", "cancel_order"), ("return", "request_return")) if tool in task.tools]
        assert how and all(settled(word, "refund", "total") for word in how), task.id  # how much is refunded
    assert settled("total", "shipping")  # what an order's total is made of
    assert not asking["discount"] or settled("discount")


# Ways to fall short of a goal that changes data: after any of them its checks do not all pass.
NEAR_MISSES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "bookstore-descriptive-02": [
        ("update_customer_email", {"customer_id": 17, "new_email": "priyanka.d@example.com"}),
    ],
    "bookstore-descriptive-04": [
        ("create_order", {"customer_id": 1}),
        ("add_book_to_order", {"customer_id": 1, "order_id": new_order, "book_id": 26, "quantity": 1}),
        ("add_book_to_order", {"customer_id": 1, "order_id": new_order, "book_id": 21, "quantity": 1}),
    ],
    "bookstore-descriptive-05": [("add_review", {"customer_id": 36, "book_id": 30, "rating": 5})],
    "bookstore-descriptive-06": [
        ("create_order", {"customer_id": 11}),
        ("add_book_to_order", {"customer_id": 11, "order_id": new_order, "book_id": 50, "quantity": 1}),
        ("request_return", {"customer_id": 11, "order_id": 1095, "reason": "The binding came apart."}),
    ],
    "bookstore-descriptive-08": [
        ("create_order", {"customer_id": 40}),
        ("add_book_to_order", {"customer_id": 40, "order_id": new_order, "book_id": 50, "quantity": 1}),
    ],
    "bookstore-descriptive-11": [
        ("create_order", {"customer_id": 27}),
        ("add_book_to_order", {"customer_id": 27, "order_id": new_order, "book_id": 20, "quantity": 2}),
        ("add_book_to_order", {"customer_id": 27, "order_id": new_order, "book_id": 30, "quantity": 1}),
    ],
    "bookstore-descriptive-12": [
        ("create_order", {"customer_id": 35}),
        ("add_book_to_order", {"customer_id": 35, "order_id": new_order, "book_id": 60, "quantity": 1}),
    ],
    "bookstore-followup-01": [
        ("create_order", {"customer_id": 14}),
        ("add_book_to_order", {"customer_id": 14, "order_id": new_order, "book_id": 39, "quantity": 1}),
    ],
    "bookstore-followup-02": [
        ("create_order", {"customer_id": 1}),
        ("add_book_to_order", {"customer_id": 1, "order_id": new_order, "book_id": 42, "quantity": 1}),
    ],
    "bookstore-followup-03": [
        ("create_order", {"customer_id": 21, "shipping_method": "express"}),
        ("add_book_to_order", {"customer_id": 21, "order_id": new_order, "book_id": 45, "quantity": 1}),
    ],
}


@pytest.mark.parametrize("task_id", sorted(NEAR_MISSES))
def test_checks_fail_when_the_task_is_done_wrong(root: SQLEnvironment, task_id: str) -> None:
    task = {task.id: task for _, task in all_tasks()}[task_id]
    fork = root.fork(clock=TODAY)
    try:
        if task.follows is not None:
            solve(fork, SOLUTIONS.get(task.follows, []))
        solve(fork, NEAR_MISSES[task_id])

        assert not all(fork.check(check.sql)[0] for check in task.checks)
    finally:
        fork.close()


def test_the_readmes_state_the_examples_figures(root: SQLEnvironment, tools: list[SQLTool]) -> None:
    def text(path: Path) -> str:
        return " ".join(path.read_text(encoding="utf-8").split())

    readme, guide = text(EXAMPLES.parent / "README.md"), text(EXAMPLES / "README.md")
    tasks = load_tasks(EXAMPLES / "bookstore_tasks.jsonl")
    primary = [task for task in tasks if task.follows is None]
    mix = {level: sum(task.difficulty == level for task in primary) for level in ("easy", "medium", "hard")}
    reads = sum(tool.kind == "read" for tool in tools)
    [data] = root.query(
        "SELECT (SELECT COUNT(*) FROM book WHERE stock = 0) AS out_of_stock,"
        " (SELECT COUNT(DISTINCT genre) FROM book) AS genres"
    ).content
    by_status = {
        row["status"]: row["n"] for row in root.query("SELECT status, COUNT(*) AS n FROM orders GROUP BY 1").content
    }
    statuses = ", ".join(
        f"{by_status[status]} {status}" for status in ("delivered", "shipped", "placed", "cancelled", "returned")
    )

    assert f"a {sum(ROW_COUNTS.values())}-row SQLite database" in readme
    assert f"{len(tools)} SQL tools, {len(tasks)} hand-written goals" in readme
    assert f"{len(tools)} SQL tools for the agent: {reads} that read" in guide
    assert f"and {len(tools) - reads} that write" in guide
    assert f"{len(primary)} goals for the simulated customer" in guide
    assert f"{mix['easy']} easy, {mix['medium']} medium, {mix['hard']} hard" in guide
    assert f"and {len(tasks) - len(primary)} follow-ups" in guide
    assert f"{len(load_tasks(EXAMPLES / 'bookstore_rubric_tasks.jsonl'))} tasks with a rubric" in guide
    assert all(f"| `{table}` | {count} |" in guide for table, count in ROW_COUNTS.items())
    assert f"({data['genres']} genres)" in guide and f"{data['out_of_stock']} titles out of stock" in guide
    assert f"2025: {statuses} |" in guide and sum(by_status.values()) == ROW_COUNTS["orders"]
