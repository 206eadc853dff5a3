"""The examples that ship with the project work as shipped: configs load, the bookstore database builds from its
script, every tool is valid on it, every task names real tools, and every check is false on the initial data
(and becomes true once the task is done)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialforge.config import load_config
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.scaffold import read_tools_json
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import validate_tools
from dialforge.model.tasks import Task
from dialforge.pipeline.supplied import load_tasks, load_tool_specs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPT = EXAMPLES / "bookstore.sql"
TOOLS = EXAMPLES / "bookstore_tools.json"
TASK_FILES = ("bookstore_tasks.jsonl", "bookstore_rubric_tasks.jsonl")
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))
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
    fork = root.fork()
    try:
        if task.follows is not None:
            solve(fork, SOLUTIONS.get(task.follows, []))
            assert not any(fork.check(check.sql)[0] for check in task.checks), "true before the follow-up"
        solve(fork, SOLUTIONS[task_id])

        assert [
            (check.description, fork.check(check.sql)) for check in task.checks if not fork.check(check.sql)[0]
        ] == []
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
