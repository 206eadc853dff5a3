"""``dialforge tools scaffold``: tools.json from a database, and one clear line for a database it cannot use."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import apsw
import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.pipeline.supplied import load_sql_tools

runner = CliRunner()


def test_scaffold_writes_tools_json_and_leaves_the_database_alone(test_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "chinook.sqlite"
    shutil.copyfile(test_data / "db" / "chinook.sqlite", db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    output = tmp_path / "tools.json"

    result = runner.invoke(app, ["tools", "scaffold", "--db", str(db), "-o", str(output)])

    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"wrote 85 tools for 11 tables to {output}"
    assert result.stdout == ""
    tools = load_sql_tools(output)
    assert len(tools) == 85 and "get_invoice_lines_for_invoice" in {tool.name for tool in tools}
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_scaffold_prints_json_without_output(test_data: Path) -> None:
    result = runner.invoke(app, ["tools", "scaffold", "--db", str(test_data / "db" / "northwind.sqlite")])

    assert result.exit_code == 0, result.output
    tools = json.loads(result.stdout)
    assert len(tools) == 101 and tools[0]["name"] == "get_category"
    assert result.stderr.strip() == "wrote 101 tools for 13 tables to stdout"


def _not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    path.write_text("id,name\n1,widget\n")
    return path


def _no_tables(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    apsw.Connection(str(path)).execute("PRAGMA user_version = 1")
    return path


def _corrupt(tmp_path: Path, test_data: Path) -> Path:
    source = test_data / "db" / "northwind.sqlite"
    path = tmp_path / "shop.sqlite"
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp, data: tmp / "shop.sqlite", "the file does not exist"),
        (lambda tmp, data: _not_a_database(tmp), "is not a SQLite database"),
        (lambda tmp, data: _no_tables(tmp), "the database has no tables"),
        (_corrupt, "the database is corrupt"),
    ],
    ids=["missing", "not-a-database", "no-tables", "corrupt"],
)
def test_scaffold_refuses_a_bad_database_in_one_line(
    tmp_path: Path, test_data: Path, make: Callable[[Path, Path], Path], problem: str
) -> None:
    db = make(tmp_path, test_data)

    result = runner.invoke(app, ["tools", "scaffold", "--db", str(db), "-o", str(tmp_path / "tools.json")])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"dialforge tools scaffold: {db}: {problem}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "tools.json").exists()


def test_scaffold_reports_an_unwritable_output(test_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "missing-dir" / "tools.json"

    result = runner.invoke(
        app, ["tools", "scaffold", "--db", str(test_data / "db" / "chinook.sqlite"), "-o", str(output)]
    )

    assert result.exit_code == 2
    assert result.stderr.strip() == f"dialforge tools scaffold: cannot write {output}: No such file or directory"


def test_scaffold_names_the_schemas_defects_and_what_it_left_out(tmp_path: Path) -> None:
    db = tmp_path / "notes.sqlite"
    connection = apsw.Connection(str(db))
    connection.execute(
        "CREATE TABLE team (team_id INTEGER PRIMARY KEY, code TEXT NOT NULL);"
        "CREATE TABLE player (player_id INTEGER PRIMARY KEY, team_code TEXT REFERENCES team (code));"
        "CREATE TABLE note (note_id INTEGER PRIMARY KEY, body TEXT);"
        'CREATE TRIGGER mark AFTER INSERT ON note BEGIN UPDATE note SET body = "x"; END;'
    )
    connection.close()

    result = runner.invoke(app, ["tools", "scaffold", "--db", str(db), "-o", str(tmp_path / "tools.json")])

    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith('schema defect: the foreign key "player" (team_code) references "team" (code)')
    assert lines[1].startswith('schema defect: SQLite refuses to insert rows of "note"')
    assert lines[1].endswith("(no create tool for it)")
    names = {tool.name for tool in load_sql_tools(tmp_path / "tools.json")}
    assert "create_note" not in names and "create_player" in names
