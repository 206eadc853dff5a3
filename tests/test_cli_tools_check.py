"""``dialforge tools check``: a verdict per tool, exit 1 when any is invalid, one line for unusable inputs."""

from __future__ import annotations

from pathlib import Path

import apsw
import orjson
import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.environments.sql.scaffold import write_tools_json
from dialforge.environments.sql.tool import SQLTool

runner = CliRunner()
WIDE = {"COLUMNS": "240"}
GET_BOOK = SQLTool(
    name="get_book",
    description="One book by id. Returns the book row.",
    parameters={"type": "object", "properties": {"book_id": {"type": "integer"}}, "required": ["book_id"]},
    sql="SELECT book_id, title FROM book WHERE book_id = :book_id",
    returns={"type": "object"},
)
BAD_COLUMN = SQLTool(
    name="list_books",
    description="Books, newest first. Returns an array of {book_id, title}.",
    sql="SELECT book_id, title FROM book ORDER BY publised DESC LIMIT 10",
)
REASON = 'unknown column "publised": "book" has no such column; did you mean "published"?'


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "books.sqlite"
    connection = apsw.Connection(str(path))
    connection.execute(
        "CREATE TABLE book (book_id INTEGER PRIMARY KEY, title TEXT NOT NULL, published TEXT);"
        "INSERT INTO book VALUES (1, 'Dune', '1965-08-01'), (2, 'Emma', '1815-12-23');"
    )
    connection.close()
    return path


def tools_file(tmp_path: Path, *tools: SQLTool) -> Path:
    path = tmp_path / "tools.json"
    write_tools_json(tools, path)
    return path


def test_valid_tools_exit_0(db: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["tools", "check", "--db", str(db), str(tools_file(tmp_path, GET_BOOK))], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "get_book" in result.stdout and "valid" in result.stdout
    assert "1 of 1 tools valid" in result.stdout


def test_an_invalid_tool_exits_1_with_its_reason_in_the_table(db: Path, tmp_path: Path) -> None:
    path = tools_file(tmp_path, GET_BOOK, BAD_COLUMN)

    result = runner.invoke(app, ["tools", "check", "--db", str(db), str(path)], env=WIDE)

    assert result.exit_code == 1
    assert "invalid" in result.stdout
    assert REASON in result.stdout
    assert "1 of 2 tools valid" in result.stdout


def test_json_output_is_one_object_per_tool(db: Path, tmp_path: Path) -> None:
    path = tools_file(tmp_path, GET_BOOK, BAD_COLUMN)

    result = runner.invoke(app, ["tools", "check", "--db", str(db), str(path), "--json"])

    assert result.exit_code == 1
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert lines == [
        {"name": "get_book", "valid": True, "reasons": []},
        {"name": "list_books", "valid": False, "reasons": [REASON]},
    ]


def test_a_missing_database_exits_2_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite"

    result = runner.invoke(app, ["tools", "check", "--db", str(missing), str(tools_file(tmp_path, GET_BOOK))])

    assert result.exit_code == 2
    assert result.stderr == f"dialforge tools check: database {missing}: the file does not exist; check the path\n"
    assert result.stdout == ""


def test_an_unreadable_tools_file_exits_2_in_one_line(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text("{not json", encoding="utf-8")

    result = runner.invoke(app, ["tools", "check", "--db", str(db), str(path)])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"dialforge tools check: tools file {path}: not valid JSON")
    assert result.stderr.count("\n") == 1
