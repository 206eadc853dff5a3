"""``dialforge tools check``: a verdict per tool, exit 1 when any is invalid, one line for unusable inputs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import apsw
import orjson
import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.config import DialforgeConfig, load_config
from dialforge.environments.sql.scaffold import write_tools_json
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm import DryRunModel, ScriptedModel
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.preparation import Preparation

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


def test_valid_tools_exit_0_and_say_which_trial_proved_them(db: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["tools", "check", "--db", str(db), str(tools_file(tmp_path, GET_BOOK))], env=WIDE)

    assert result.exit_code == 0, result.output
    assert "get_book" in result.stdout and "valid" in result.stdout
    assert "trial 1 returned 1 row" in result.stdout
    assert "1 of 1 tools valid" in result.stdout
    assert "1 of 1 valid read tools returned rows in a trial" in result.stdout


def test_schema_defects_and_read_back_gaps_are_reported_without_failing(tmp_path: Path) -> None:
    script = tmp_path / "league.sql"
    script.write_text(
        "CREATE TABLE team (team_id INTEGER PRIMARY KEY, code TEXT NOT NULL, name TEXT NOT NULL);"
        "CREATE TABLE player (player_id INTEGER PRIMARY KEY, team_code TEXT REFERENCES team (code), name TEXT);"
        "INSERT INTO team VALUES (1, 'RED', 'Red Rovers'); INSERT INTO player VALUES (1, 'RED', 'Ada');"
    )
    rename = SQLTool(
        name="rename_team",
        description="Rename a team. Returns rows_affected.",
        parameters={
            "type": "object",
            "properties": {"team_id": {"type": "integer"}, "name": {"type": "string"}},
            "required": ["team_id", "name"],
        },
        sql="UPDATE team SET name = :name WHERE team_id = :team_id",
        kind="write",
    )
    codes = SQLTool(name="list_codes", description="Team codes. Returns [{code}].", sql="SELECT code FROM team")
    path = tools_file(tmp_path, rename, codes)

    result = runner.invoke(app, ["tools", "check", "--db", str(script), str(path)], env=WIDE)

    assert result.exit_code == 0, result.output
    assert 'schema defect: the foreign key "player" (team_code) references "team" (code)' in result.stdout
    assert 'read-back gap: rename_team writes "team"."name", which no read tool returns' in result.stdout
    assert "trial 1 changed 1 row" in result.stdout
    json_result = runner.invoke(app, ["tools", "check", "--db", str(script), str(path), "--json"])
    assert orjson.loads(json_result.stdout.splitlines()[0])["unread_columns"] == ['"team"."name"']
    assert json_result.stderr.startswith("schema defect: the foreign key")


async def test_a_runs_own_tools_artifact_is_checked_as_it_was_written(
    tmp_path: Path, chinook_path: Path, db: Path
) -> None:
    settings = DialforgeConfig.model_validate(
        {
            "generation": {"sql_tools_per_domain": 2, "tasks_per_domain": 1},
            "domains": [
                {"name": "bookstore", "database": str(db)},
                {"name": "music store", "database": str(chinook_path)},
            ],
        }
    )
    store = ArtifactStore(tmp_path / "run")
    await Preparation(settings, DryRunModel(seed=1, role="generator"), store).run()
    store.close()
    artifact = tmp_path / "run" / "artifacts" / "tools.jsonl"
    check = ["tools", "check", str(artifact), "--db", str(chinook_path)]

    result = runner.invoke(app, [*check, "--domain", "music store", "--json"])

    assert result.exit_code == 0, result.output
    verdicts = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert verdicts and all(verdict["valid"] for verdict in verdicts)
    unnamed = runner.invoke(app, check)
    assert unnamed.exit_code == 2
    assert "holds the tools of 2 domains (bookstore, music store); name one" in unnamed.stderr


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
        {
            "name": "get_book",
            "valid": True,
            "reasons": [],
            "proof": "trial 1 returned 1 row",
            "trial": {"arguments": {"book_id": 1}, "result": "1 row", "attempts": 1, "rows": 1},
        },
        {"name": "list_books", "valid": False, "reasons": [REASON], "proof": ""},
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
    assert result.stderr.startswith(f"dialforge tools check: tools file {path}, line 1: not valid JSON")
    assert result.stderr.count("\n") == 1


def test_run_refuses_the_tools_tools_check_rejects_before_any_model_call(db: Path, tmp_path: Path) -> None:
    """Every bad tool of every domain is named with its reason and the fix; the first domain, whose tools are
    fine but which would ask the model for goals, asks nothing."""
    specs = tmp_path / "specs.json"
    twin = {"name": "find_order", "description": "Find an order by its number.", "parameters": {"type": "object"}}
    specs.write_bytes(orjson.dumps([twin, twin]))
    config = tmp_path / "run.yaml"
    domains = [
        {"name": "good books", "database": str(db), "tools": str(tools_file(tmp_path, GET_BOOK))},
        {"name": "shop", "tools": str(specs), "policy": "Be kind."},
    ]
    (tmp_path / "bad").mkdir()
    bad_sql = tools_file(tmp_path / "bad", GET_BOOK, BAD_COLUMN)
    domains.insert(1, {"name": "bad books", "database": str(db), "tools": str(bad_sql)})
    config.write_bytes(orjson.dumps({"domains": domains}))
    model = ScriptedModel([])

    with pytest.raises(ValueError) as caught:
        asyncio.run(Preparation(load_config(config), model, ArtifactStore(tmp_path / "prep")).run())

    assert model.requests == []
    result = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert str(caught.value) in result.stderr
    lines = str(caught.value).splitlines()
    assert f"  - list_books: {REASON}" in lines
    assert f"dialforge tools check {bad_sql} --db {db} --domain 'bad books'" in lines[2]
    assert "  - find_order: 2 tools have this name; names must be unique" in lines
    assert f"{specs}" in lines[5] and lines[-1] == "nothing was started and no model was called"
    assert not any("good books" in line or "get_book" in line for line in lines)
    assert not (tmp_path / "run" / "dialogues.jsonl").read_text()
