"""The examples that ship with the project work as shipped: configs load, the bookstore database builds from its
script, every tool is valid on it, every task names real tools, and every check is false on the initial data
(and becomes true once the task is done). The example is also consistent with itself: nothing in the data lies
after the configs' `dialogue.today`, the facts the goals state are in the data, every ranking a goal asks for has
one answer, the policy settles the amounts goals ask about, and every figure a success criterion quotes is checked
against the data. Every goal has criteria of what the assistant must achieve and a follow-up its own person would
raise, and the tools' descriptions name every field they return."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from dialforge.actors.generators.readable_fields import ReadableFields
from dialforge.config import load_config
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.schema import quote_identifier
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import validate_tools
from dialforge.model.domain import Domain
from dialforge.model.tasks import Task
from dialforge.pipeline.preparation import DomainPlan
from dialforge.pipeline.supplied import load_sql_tools, load_tasks, load_tool_specs
from dialforge.runner.work import plan_dialogues

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
    return load_sql_tools(TOOLS)


@pytest.fixture(scope="module")
def root(database: SQLDatabase, tools: list[SQLTool]) -> Iterator[SQLEnvironment]:
    environment = database.environment(tools)
    yield environment
    environment.close()


def all_tasks() -> list[tuple[str, Task]]:
    return [(name, task) for name in TASK_FILES for task in load_tasks(EXAMPLES / name)]


def earlier_goals(task: Task) -> list[str]:
    """The goals a follow-up comes after in a dialogue: the one it continues, or those whose person raises it."""
    return [task.follows] if task.follows is not None else task.asked_by


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


def declared_fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A returns schema's fields: an object's properties, or an array's items' properties."""
    return (schema.get("items", schema) if schema.get("type") == "array" else schema).get("properties", {})


def test_every_tool_description_names_each_field_it_returns(tools: list[SQLTool]) -> None:
    def fields(schema: dict[str, Any]) -> list[str]:
        declared = declared_fields(schema)
        return [name for name in declared] + [
            inner for field in declared.values() if field.get("type") == "array" for inner in fields(field)
        ]

    unnamed = {
        tool.name: [field for field in fields(tool.returns or {}) if not re.search(rf"\b{field}\b", tool.description)]
        for tool in tools
    }

    assert {name: missing for name, missing in unnamed.items() if missing} == {}


# One call of each tool, in this order on one fork; write tools also once where they change nothing.
SAMPLE_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("search_books", {"query": "Solberg"}),
    ("get_book", {"book_id": 9}),
    ("get_book_reviews", {"book_id": 9}),
    ("top_rated_books", {"genre": "Mystery"}),
    ("best_selling_books", {"start_date": "2025-01-01"}),
    ("find_customer", {"email": "maya.okafor@example.com"}),
    ("get_customer_summary", {"customer_id": 1}),
    ("search_orders", {"customer_id": 1}),
    ("get_order", {"order_id": 1109}),
    ("get_order_lines", {"order_id": 1109}),
    ("create_order", {"customer_id": 1}),
    ("add_book_to_order", {"customer_id": 1, "order_id": 1112, "book_id": 26, "quantity": 1}),
    ("add_book_to_order", {"customer_id": 1, "order_id": 1112, "book_id": 26, "quantity": 1}),
    ("add_book_to_order", {"customer_id": 2, "order_id": 1112, "book_id": 26, "quantity": 1}),
    ("cancel_order", {"customer_id": 21, "order_id": 1109}),
    ("cancel_order", {"customer_id": 10, "order_id": 1105}),
    ("request_return", {"customer_id": 11, "order_id": 1095, "reason": "The binding came apart."}),
    ("request_return", {"customer_id": 10, "order_id": 1105, "reason": "Found a copy elsewhere."}),
    ("update_customer_email", {"customer_id": 17, "new_email": "priyanka.desai@example.com"}),
    ("update_customer_email", {"customer_id": 999, "new_email": "nobody@example.com"}),
    ("add_review", {"customer_id": 36, "book_id": 30, "rating": 4}),
    ("add_review", {"customer_id": 36, "book_id": 1, "rating": 4}),
]


def test_every_tool_returns_what_its_returns_schema_declares(root: SQLEnvironment, tools: list[SQLTool]) -> None:
    assert {name for name, _ in SAMPLE_CALLS} == {tool.name for tool in tools}
    by_name = {tool.name: tool for tool in tools}
    fork = root.fork(clock=TODAY)
    try:
        for name, arguments in SAMPLE_CALLS:
            schema = by_name[name].returns or {}
            result = fork.execute(name, arguments)
            assert result.error is None, (name, result.error)
            rows = result.content if isinstance(result.content, list) else [result.content]
            declared = declared_fields(schema)
            assert rows, name
            for row in rows:
                assert set(row) <= set(declared), (name, sorted(set(row) - set(declared)))
                required = (schema.get("items", schema) if schema.get("type") == "array" else schema).get("required")
                assert set(required or declared) <= set(row), (name, row)
                for field, value in row.items():
                    if declared[field].get("type") == "array":
                        assert all(set(item) == set(declared_fields(declared[field])) for item in value), (name, value)
    finally:
        fork.close()


def test_adding_a_book_reports_its_line_as_it_now_stands_and_the_orders_new_total(root: SQLEnvironment) -> None:
    fork = root.fork(clock=TODAY)
    try:
        more = fork.execute("add_book_to_order", {"customer_id": 27, "order_id": 1108, "book_id": 20, "quantity": 2})
        new = fork.execute("add_book_to_order", {"customer_id": 27, "order_id": 1108, "book_id": 30, "quantity": 1})
        order = fork.execute("get_order", {"order_id": 1108}).content

        assert [{key: line[key] for key in ("title", "quantity", "unit_price")} for line in more.content["rows"]] == [
            {"title": "The Fox Who Kept the Shrine", "quantity": 3, "unit_price": 16.99}
        ]
        assert new.content["rows"][0]["title"] == "The Kelp Forest Detective"
        assert new.content["rows"][0]["order_total"] == order["total"] == 59.96
    finally:
        fork.close()


@pytest.mark.parametrize("name", TASK_FILES)
def test_tasks_load_and_use_only_example_tools(name: str, tools: list[SQLTool]) -> None:
    tasks = load_tasks(EXAMPLES / name)
    names = {tool.name for tool in tools}
    ids = [task.id for task in tasks]

    assert len(set(ids)) == len(ids)
    assert [(task.id, sorted(set(task.tools) - names)) for task in tasks if not set(task.tools) <= names] == []
    assert all(task.tools for task in tasks)
    primary = {task.id for task in tasks if not task.is_followup}
    assert all(set(earlier_goals(task)) <= primary for task in tasks if task.is_followup)


def test_every_fact_a_goal_asks_to_see_is_returned_by_a_tool(root: SQLEnvironment, tools: list[SQLTool]) -> None:
    readable = ReadableFields.of([tool.to_spec() for tool in tools], root)

    assert all(task.asks_to_see for _, task in all_tasks())
    assert [(task.id, readable.unreachable(task.asks_to_see)) for _, task in all_tasks()] == [
        (task.id, []) for _, task in all_tasks()
    ]


def test_descriptive_tasks_have_the_shape_the_pipeline_expects() -> None:
    tasks = load_tasks(EXAMPLES / "bookstore_tasks.jsonl")
    primary = [task for task in tasks if not task.is_followup]
    followups = [task for task in tasks if task.is_followup]

    assert (len(primary), len(followups)) == (12, 12)
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


def person(task: Task) -> str:
    """Who a goal's person is, as its description opens: "You are Maya Okafor (...)" -> "Maya Okafor"."""
    found = re.match(r"You are ([A-Z][^,.(]*?)(?: \(|,|\.)", task.description)
    assert found, task.description
    return found.group(1)


def test_every_goal_can_go_on_with_a_follow_up_of_its_own_person() -> None:
    tasks = load_tasks(EXAMPLES / "bookstore_tasks.jsonl")
    plan = DomainPlan(
        domain=Domain(name="bookstore"),
        tools=[],
        policy="",
        tasks=[task for task in tasks if not task.is_followup],
        followups=[task for task in tasks if task.is_followup],
    )

    work = plan_dialogues([plan], per_domain=len(plan.tasks), tasks_per_dialogue=(2, 2), run_seed=7)

    assert sorted(dialogue.tasks[0].id for dialogue in work) == sorted(task.id for task in plan.tasks)
    assert [dialogue.tasks[0].id for dialogue in work if len(dialogue.tasks) != 2] == []
    assert [
        (dialogue.tasks[0].id, dialogue.tasks[1].id)
        for dialogue in work
        if person(dialogue.tasks[1]) != person(dialogue.tasks[0])
    ] == []


# What a person knows: order numbers, titles, emails; never the shop's internal ids.
INTERNAL_ID = re.compile(r"\b(customer|member|account|line|book|review|author)[ _](id|number|no\.?|#)?\s*#?\d+", re.I)
# How the person's own steps begin; the assistant's criteria never do.
PERSONS_STEP = re.compile(
    r"^(Ask|Confirm|Agree|Say|Tell|Answer|Give|Make sure|Check|Request)\b"
    r"|\b(customer|manager|user) (asks|confirms|agrees|says yes|answers|requests)\b"
)


@pytest.mark.parametrize("task_id", [task.id for _, task in all_tasks()])
def test_every_goal_has_criteria_the_assistant_must_achieve(task_id: str) -> None:
    task = {task.id: task for _, task in all_tasks()}[task_id]
    criteria = task.rubric.success_criteria

    assert 2 <= len(criteria) <= 4
    assert [criterion for criterion in criteria if PERSONS_STEP.search(criterion)] == []
    assert [text for text in [task.description, *task.subtasks] if INTERNAL_ID.search(text)] == []


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
    "bookstore-followup-05": [("add_review", {"customer_id": 17, "book_id": 58, "rating": 5, "body": "Great."})],
    "bookstore-followup-06": [
        ("create_order", {"customer_id": 36}),
        ("add_book_to_order", {"customer_id": 36, "order_id": new_order, "book_id": 20, "quantity": 1}),
    ],
    "bookstore-followup-07": [
        ("search_orders", {"customer_id": 11, "status": "placed"}),
        (
            "add_book_to_order",
            {"customer_id": 11, "order_id": lambda r: r[0][0]["order_id"], "book_id": 49, "quantity": 1},
        ),
    ],
    "bookstore-followup-10": [
        ("create_order", {"customer_id": 10, "shipping_method": "express"}),
        ("add_book_to_order", {"customer_id": 10, "order_id": new_order, "book_id": 27, "quantity": 1}),
    ],
    "bookstore-followup-11": [("add_review", {"customer_id": 27, "book_id": 20, "rating": 5, "body": "Loved."})],
    "bookstore-followup-12": [
        ("search_orders", {"customer_id": 35, "status": "placed"}),
        (
            "add_book_to_order",
            {"customer_id": 35, "order_id": lambda r: r[0][0]["order_id"], "book_id": 14, "quantity": 1},
        ),
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
        for earlier in earlier_goals(task):
            solve(fork, SOLUTIONS.get(earlier, []))
        assert not any(fork.check(check.sql)[0] for check in task.checks), "true before the goal"
        solve(fork, SOLUTIONS[task_id])

        assert [
            (check.description, fork.check(check.sql)) for check in task.checks if not fork.check(check.sql)[0]
        ] == []
        assert [sql for sql in AFTER.get(task_id, []) if not holds(fork, sql)] == []
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
    # The policy is rules, one "- " item each: who the assistant is comes from its prompt and the description.
    policy = configs[0].domains[0].policy or ""
    assert all(line.startswith(("- ", "  ")) for line in policy.splitlines() if line.strip())


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


def books(where: str, listed: dict[int, tuple[str, float]]) -> str:
    """Exactly these books (book_id -> title, price) match the condition."""
    each = " OR ".join(
        f"(b.book_id = {i} AND b.title = {literal(t)} AND b.price = {p})" for i, (t, p) in listed.items()
    )
    return (
        f"SELECT COUNT(*) = {len(listed)} AND SUM({each}) = {len(listed)}"
        f" FROM book AS b JOIN author AS a ON a.author_id = b.author_id WHERE {where}"
    )


def rated(book_id: int, average: float, reviews: int) -> str:
    return f"SELECT round(avg(rating), 2) = {average} AND COUNT(*) = {reviews} FROM review WHERE book_id = {book_id}"


def order_total(where: str, total: float) -> str:
    """The orders the condition picks (o: orders) hold books worth this total."""
    return (
        f"SELECT round(sum(l.quantity * l.unit_price), 2) = {total}"
        f" FROM orders AS o JOIN order_line AS l ON l.order_id = o.order_id WHERE {where}"
    )


def sold_in_2025(book_id: int, copies: int) -> str:
    return (
        f"SELECT sum(l.quantity) = {copies} FROM order_line AS l JOIN orders AS o ON o.order_id = l.order_id"
        f" WHERE l.book_id = {book_id} AND o.placed_at >= '2025-01-01' AND o.status NOT IN ('cancelled', 'returned')"
    )


def no_review(customer_id: int, book_id: int) -> str:
    return f"SELECT COUNT(*) = 0 FROM review WHERE customer_id = {customer_id} AND book_id = {book_id}"


# What each goal states or takes for granted, and every figure its success criteria quote, as read-only SQL that
# is true on the initial data (AFTER below: true once the goal is done); :today is the
# configs' dialogue.today, so "this afternoon", "two days ago" and "earlier this month" are checked against it.
FACTS: dict[str, list[str]] = {
    "bookstore-descriptive-01": [
        customer(14, "Declan Murphy", "declan.murphy@example.net"),
        book(16, "Dead Reckoning in Duluth", where="b.genre = 'Mystery' AND b.format = 'paperback'"),
        books(
            "b.genre = 'Mystery' AND b.format = 'paperback' AND b.price < 13 AND b.stock > 0 AND b.book_id <> 16",
            {
                8: ("Below the Fjord Line", 11.99),
                9: ("The Ferryman's Alibi", 12.49),
                53: ("The Geologist's Confession", 11.99),
                17: ("The Quiet Accountant", 11.99),
                39: ("The Uppsala Drownings", 12.99),
            },
        ),
        rated(9, 5.0, 2),
        rated(39, 4.5, 2),
    ],
    "bookstore-descriptive-02": [
        customer(17, "Priyanka Desai", "priyanka.desai@northwind-labs.example"),
        "SELECT COUNT(*) = 0 FROM customer WHERE email = 'priyanka.desai@example.com'",
        "SELECT COUNT(*) = 1 FROM customer WHERE first_name || ' ' || last_name = 'Priyanka Desai'",
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
        order_total("o.order_id = 1109", 45.5),
    ],
    "bookstore-descriptive-04": [
        customer(1, "Maya Okafor", "maya.okafor@example.com"),
        book(26, "Saltwater Hymns", "Siobhan Keane", "b.stock >= 2"),
        book(21, "Prairie Almanac", "Eleanor Pruitt", "b.stock >= 1"),
        books("b.book_id IN (26, 21)", {26: ("Saltwater Hymns", 10.5), 21: ("Prairie Almanac", 19.95)}),
        "SELECT stock = 1 FROM book WHERE book_id = 21",
    ],
    "bookstore-descriptive-05": [
        customer(36, "Theo Whitcombe", "theo.whitcombe@example.org"),
        book(30, "The Kelp Forest Detective"),
        "SELECT COUNT(*) = 1 FROM orders AS o JOIN order_line AS l ON l.order_id = o.order_id WHERE o.customer_id = 36"
        " AND l.book_id = 30 AND o.status = 'delivered' AND o.delivered_at >= date(:today, '-1 month')",
        order(1098, 36, "delivered", {26: 1, 30: 1}, "date(o.delivered_at) = '2025-11-14'"),
    ],
    "bookstore-descriptive-06": [
        customer(11, "Imogen Hartley", "imogen.hartley@example.org"),
        book(50, "The Hungry Ghost Festival", where="b.stock >= 1"),
        order(1095, 11, "delivered", {50: 1}, "strftime('%Y-%m', o.delivered_at) = strftime('%Y-%m', :today)"),
        "SELECT date(delivered_at) = '2025-11-06' FROM orders WHERE order_id = 1095",
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
        "SELECT delivered_at = '2025-11-21 16:52' FROM orders WHERE order_id = 1102",
        order_total("o.order_id = 1102", 47.49),
    ],
    "bookstore-descriptive-08": [
        customer(40, "Ibrahim Sadiq", "ibrahim.sadiq@example.org"),
        "SELECT substr(joined_on, 1, 7) = strftime('%Y-09', :today) FROM customer WHERE customer_id = 40",
        "SELECT COUNT(*) = 0 FROM orders WHERE customer_id = 40",
        book(19, "Paper Lanterns, Iron Rain", "Yuki Tanabe", "b.genre = 'Fantasy' AND b.price = 14.5"),
        rated(19, 4.5, 4),
    ],
    "bookstore-descriptive-09": [
        sold_in_2025(52, 10),
        sold_in_2025(20, 8),
        sold_in_2025(50, 6),
        sold_in_2025(6, 5),
        sold_in_2025(1, 5),
        books("b.book_id IN (52, 20, 50, 6, 1) AND b.stock <= 5", {50: ("The Hungry Ghost Festival", 13.99)}),
        "SELECT stock = 5 FROM book WHERE book_id = 50",
    ],
    "bookstore-descriptive-10": [
        customer(10, "Mateo Fernández", "mateo.fernandez@example.net"),
        book(28, "Chess in Wartime"),
        order(1105, 10, "shipped", {28: 1}, "date(o.placed_at) = date(:today, '-2 days')"),
        "SELECT date(shipped_at) = '2025-11-20' FROM orders WHERE order_id = 1105",
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
        book(15, "Monsoon Kitchen", where="b.price = 30.0"),
        rated(15, 4.8, 5),
    ],
    "bookstore-followup-01": [
        book(9, "The Ferryman's Alibi", "Henrik Solberg", "b.genre = 'Mystery' AND b.format = 'paperback'"),
        book(9, "The Ferryman's Alibi", where="b.price < 13 AND b.stock >= 1"),
        rated(9, 5.0, 2),
        rated(39, 4.5, 2),
    ],
    "bookstore-followup-02": [book(42, "Badgers at Midnight", where="b.stock >= 1")],
    "bookstore-followup-03": [book(45, "Kente and Code", "Kwame Asante-Boateng")],
    "bookstore-followup-04": [
        rated(52, 3.0, 2),
        "SELECT COUNT(*) = 1 AND max(rating) = 2 AND max(body) = 'I struggled to finish it; the characters felt flat.'"
        " FROM review WHERE book_id = 52 AND rating < 4",
    ],
    "bookstore-followup-05": [
        book(58, "The Clockwork Voivode"),
        order(1101, 17, "delivered", {58: 1}, "strftime('%W', o.delivered_at) = strftime('%W', :today, '-7 days')"),
        no_review(17, 58),
        rated(58, 4.0, 1),
    ],
    "bookstore-followup-06": [
        book(20, "The Fox Who Kept the Shrine", where="b.genre = 'Children' AND b.price = 16.99 AND b.stock >= 1"),
        rated(20, 4.5, 2),
        "SELECT COUNT(*) = 0 FROM orders AS o JOIN order_line AS l ON l.order_id = o.order_id"
        " WHERE o.customer_id = 36 AND l.book_id = 20",
    ],
    "bookstore-followup-07": [
        books("a.name = 'Wen Zhao'", {50: ("The Hungry Ghost Festival", 13.99), 49: ("Nine Dragons Station", 27.99)}),
        "SELECT stock >= 1 FROM book WHERE book_id = 49",
    ],
    "bookstore-followup-08": [
        "SELECT unit_price = 11.5 AND quantity = 3 AND round(quantity * unit_price, 2) = 34.5"
        " FROM order_line WHERE order_id = 1102 AND book_id = 44",
    ],
    "bookstore-followup-09": [
        "SELECT date(:today, '+2 days', '+5 days') = '2025-11-28'",  # ships within two days, then 2-5 days
        "SELECT strftime('%w', '2025-11-29') = '6'",  # a Saturday
    ],
    "bookstore-followup-10": [
        books(
            "a.name = 'Rafael Ostrowski'",
            {28: ("Chess in Wartime", 16.0), 27: ("The Solidarity Years", 29.99)},
        ),
        "SELECT stock >= 1 FROM book WHERE book_id = 27",
    ],
    "bookstore-followup-11": [
        "SELECT COUNT(*) = 1 FROM orders AS o JOIN order_line AS l ON l.order_id = o.order_id WHERE o.customer_id = 27"
        " AND l.book_id = 20 AND o.status = 'delivered'"
        " AND strftime('%Y', o.delivered_at) = strftime('%Y', :today, '-1 year')",
        no_review(27, 20),
    ],
    "bookstore-followup-12": [
        books(
            "a.name = 'Priya Raghunathan'",
            {15: ("Monsoon Kitchen", 30.0), 14: ("The Spice Ledger", 28.0)},
        ),
        "SELECT stock >= 1 FROM book WHERE book_id = 14",
    ],
    "bookstore-rubric-02": [
        customer(21, "Zara Mensah", "zara.mensah@example.com"),
        order(1109, 21, "placed", {4: 1, 45: 1}, "date(o.placed_at) = date(:today) AND time(o.placed_at) >= '12:00'"),
        "SELECT round(sum(quantity * unit_price), 2) = 45.5 FROM order_line WHERE order_id = 1109",
    ],
}
FACTS["bookstore-rubric-01"] = FACTS["bookstore-descriptive-01"]
FACTS["bookstore-rubric-03"] = FACTS["bookstore-descriptive-06"]
FACTS["bookstore-rubric-04"] = FACTS["bookstore-descriptive-09"]

# What the success criteria quote about the state a goal leaves, true once it is done (after the goals before it).
AFTER: dict[str, list[str]] = {
    "bookstore-descriptive-04": [order_total("o.customer_id = 1 AND o.status = 'placed'", 40.95)],
    "bookstore-descriptive-11": [order_total("o.order_id = 1108", 59.96)],
    "bookstore-followup-01": [order_total("o.customer_id = 14 AND o.status = 'placed'", 12.49)],
    "bookstore-followup-02": [order_total("o.customer_id = 1 AND o.status = 'placed'", 48.94)],
    "bookstore-followup-03": [order_total("o.customer_id = 21 AND o.status = 'placed'", 19.0)],
    "bookstore-followup-05": [rated(58, 4.5, 2)],
    "bookstore-followup-06": [order_total("o.customer_id = 36 AND o.status = 'placed'", 16.99)],
    "bookstore-followup-07": [order_total("o.customer_id = 11 AND o.status = 'placed'", 41.98)],
    "bookstore-followup-10": [order_total("o.customer_id = 10 AND o.status = 'placed'", 29.99)],
    "bookstore-followup-11": [rated(20, 4.67, 3)],
    "bookstore-followup-12": [order_total("o.customer_id = 35 AND o.status = 'placed'", 58.0)],
}


def holds(environment: SQLEnvironment, sql: str) -> bool:
    result = environment.query(sql, {"today": f"{TODAY:%Y-%m-%d %H:%M}"})
    assert result.error is None, (sql, result.error)
    return bool(result.content) and next(iter(result.content[0].values())) == 1


MONTHS = [date(2025, month, 1).strftime("%B") for month in range(1, 13)]
QUOTED_NUMBER = re.compile(r"\$(\d+(?:\.\d+)?)|\b(\d+\.\d+)\b")
QUOTED_DATE = re.compile(rf"\b(\d{{1,2}}) ({'|'.join(MONTHS)})\b")


@pytest.mark.parametrize("task_id", [task.id for _, task in all_tasks()])
def test_every_figure_a_success_criterion_quotes_is_checked_against_the_data(task_id: str) -> None:
    task = {task.id: task for _, task in all_tasks()}[task_id]
    backing = " ".join([*FACTS[task_id], *AFTER.get(task_id, []), *(check.sql for check in task.checks)])
    numbers = {float(number) for number in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", backing)}
    criteria = " ".join(task.rubric.success_criteria)

    quoted = [float(dollars or decimal) for dollars, decimal in QUOTED_NUMBER.findall(criteria)]
    dates = [f"-{MONTHS.index(month) + 1:02d}-{int(day):02d}" for day, month in QUOTED_DATE.findall(criteria)]
    assert [number for number in quoted if number not in numbers] == []
    assert [day for day in dates if day not in backing] == []


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
    "bookstore-followup-01": [
        Ranking(
            best_reviewed("Mystery", least),
            "average_rating",
            1,
            frozenset({9}),
            ("search_books", {"genre": "Mystery", "format": "paperback", "max_price": 12.99, "in_stock_only": True}),
            frozenset({16}),
        )
        for least in (1, 2)
    ],
    "bookstore-followup-04": [Ranking(BEST_SELLERS_2025, "copies_sold", 1, frozenset({52}))],
    "bookstore-followup-06": [
        Ranking(best_reviewed("Children", least), "average_rating", 1, frozenset({20}), leaving_out=frozenset({30}))
        for least in (1, 2)
    ],
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
    "bookstore-followup-05": [("add_review", {"customer_id": 17, "book_id": 58, "rating": 4})],
    "bookstore-followup-06": [
        ("create_order", {"customer_id": 36}),
        ("add_book_to_order", {"customer_id": 36, "order_id": new_order, "book_id": 42, "quantity": 1}),
    ],
    "bookstore-followup-07": [
        ("create_order", {"customer_id": 11, "shipping_method": "express"}),
        ("add_book_to_order", {"customer_id": 11, "order_id": new_order, "book_id": 49, "quantity": 1}),
    ],
    "bookstore-followup-10": [
        ("create_order", {"customer_id": 10}),
        ("add_book_to_order", {"customer_id": 10, "order_id": new_order, "book_id": 27, "quantity": 1}),
    ],
    "bookstore-followup-11": [("add_review", {"customer_id": 27, "book_id": 20, "rating": 4})],
    "bookstore-followup-12": [
        ("create_order", {"customer_id": 35}),
        ("add_book_to_order", {"customer_id": 35, "order_id": new_order, "book_id": 14, "quantity": 1}),
    ],
}


@pytest.mark.parametrize("task_id", sorted(NEAR_MISSES))
def test_checks_fail_when_the_task_is_done_wrong(root: SQLEnvironment, task_id: str) -> None:
    task = {task.id: task for _, task in all_tasks()}[task_id]
    fork = root.fork(clock=TODAY)
    try:
        for earlier in earlier_goals(task):
            solve(fork, SOLUTIONS.get(earlier, []))
        solve(fork, NEAR_MISSES[task_id])

        assert not all(fork.check(check.sql)[0] for check in task.checks)
    finally:
        fork.close()


def test_the_readmes_state_the_examples_figures(root: SQLEnvironment, tools: list[SQLTool]) -> None:
    def text(path: Path) -> str:
        return " ".join(path.read_text(encoding="utf-8").split())

    readme, guide = text(EXAMPLES.parent / "README.md"), text(EXAMPLES / "README.md")
    tasks = load_tasks(EXAMPLES / "bookstore_tasks.jsonl")
    primary = [task for task in tasks if not task.is_followup]
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
