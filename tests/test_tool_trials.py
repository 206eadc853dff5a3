"""A tool is valid only when a trial on real data proves it: a write changes a row, a read returns one.

A run that returns or changes nothing proves nothing, every constraint error the runs meet is reported, and a
literal in the SQL that breaks a CHECK is the tool's fault whatever its trials did. The database is
tests/data/db/bike_shop.sql, whose status columns are all CHECK-constrained.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import apsw
import orjson
import pytest
from typer.testing import CliRunner

from dialforge.actors.generators.sql_tools import synthesize_sql_tools
from dialforge.cli.main import app
from dialforge.environments.base import ToolResult
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironment
from dialforge.environments.sql.scaffold import scaffold_tools
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import ToolVerdict, validate_tool, validate_tools
from dialforge.llm import ScriptedModel
from dialforge.model import Domain
from dialforge.pipeline.supplied import load_sql_tools
from prompt_checks import filled_in, prompt_of

EXAMPLES = Path(__file__).parents[1] / "examples"
INTEGER = {"type": "integer"}
TEXT = {"type": "string"}
DATE = {"type": "string", "format": "date"}
BIKE_SHOP = Domain(name="bike rental and repair", description="Spoke & Sprocket, a bike rental and repair shop.")
REPAIR_STATUS_CHECK = "status IN ('booked', 'in_progress', 'ready', 'collected')"


def build(script: Path, path: Path, extra: str = "") -> SQLDatabase:
    """The script run as it is (its PRAGMA included) into a SQLite file, opened as a tool database."""
    connection = apsw.Connection(str(path))
    connection.execute(script.read_text() + extra)
    connection.close()
    return SQLDatabase.open(path)


@pytest.fixture(scope="module")
def bike_shop(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SQLDatabase:
    return build(test_data / "db" / "bike_shop.sql", tmp_path_factory.mktemp("bike") / "bike_shop.sqlite")


def tool(name: str, sql: str, properties: dict[str, Any], kind: str = "write") -> SQLTool:
    return SQLTool(
        name=name,
        description="What it does. Returns what it found or rows_affected.",
        parameters={"type": "object", "properties": properties, "required": list(properties)},
        sql=sql,
        kind=kind,
    )


def repair_job(status: str) -> SQLTool:
    return tool(
        "create_repair_job",
        "INSERT INTO repair_jobs (bike_id, customer_id, problem, booked_for, status)"
        f" VALUES (:bike_id, :customer_id, :problem, :booked_for, '{status}')",
        {"bike_id": INTEGER, "customer_id": INTEGER, "problem": TEXT, "booked_for": DATE},
    )


def reasons(verdict: ToolVerdict) -> str:
    assert not verdict.valid
    return "\n".join(verdict.reasons)


def changed_rows(verdict: ToolVerdict) -> bool:
    return (
        verdict.valid
        and verdict.trial is not None
        and verdict.trial["result"].startswith("rows_affected")
        and verdict.trial["rows"] >= 1
    )


# Writes


def test_a_write_whose_status_literal_breaks_the_check_is_rejected_with_the_constraint(bike_shop: SQLDatabase) -> None:
    verdict = validate_tool(repair_job("reported"), bike_shop)

    why = reasons(verdict)
    assert f"CHECK ({REPAIR_STATUS_CHECK})" in why  # the literal, tried against the column's CHECK
    assert "'reported'" in why
    assert f"CHECK constraint failed: {REPAIR_STATUS_CHECK}" in why  # and what the trials met


def test_the_same_write_with_an_allowed_literal_is_proved_by_a_trial_that_changed_a_row(
    bike_shop: SQLDatabase,
) -> None:
    verdict = validate_tool(repair_job("booked"), bike_shop)

    assert verdict.valid, verdict.reasons
    assert changed_rows(verdict)
    assert verdict.proof.startswith("trial 1 changed 1 row")


def test_a_write_that_skips_bad_rows_silently_is_still_rejected(bike_shop: SQLDatabase) -> None:
    ignoring = repair_job("reported").model_copy(
        update={"sql": repair_job("reported").sql.replace("INSERT INTO", "INSERT OR IGNORE INTO")}
    )

    verdict = validate_tool(ignoring, bike_shop)

    assert f"CHECK ({REPAIR_STATUS_CHECK})" in reasons(verdict)
    assert verdict.trial is not None and verdict.trial["rows"] == 0


def test_a_literal_null_in_a_not_null_column_is_rejected(bike_shop: SQLDatabase) -> None:
    sql = "UPDATE repair_jobs SET problem = NULL WHERE job_id = :job_id"

    verdict = validate_tool(tool("clear_problem", sql, {"job_id": INTEGER}), bike_shop)

    assert '"repair_jobs"."problem", which is NOT NULL' in reasons(verdict)


def test_an_insert_with_separate_dates_is_proved_with_dates_that_keep_the_cross_column_checks(
    bike_shop: SQLDatabase,
) -> None:
    rental = tool(
        "book_rental",
        "INSERT INTO rentals (bike_id, customer_id, booked_at, started_at, due_at)"
        " VALUES (:bike_id, :customer_id, :booking_date, date(:start_date), :end_date)",
        {"bike_id": INTEGER, "customer_id": INTEGER, "booking_date": DATE, "start_date": DATE, "end_date": DATE},
    )

    verdict = validate_tool(rental, bike_shop)

    assert changed_rows(verdict), verdict.reasons
    assert verdict.trial is not None and verdict.trial["attempts"] == 1
    arguments = verdict.trial["arguments"]
    assert arguments["booking_date"] <= arguments["start_date"] < arguments["end_date"]


def test_the_trials_read_the_dialogues_date_as_now(bike_shop: SQLDatabase) -> None:
    booked_today = tool(
        "book_rental_today",
        "INSERT INTO rentals (bike_id, customer_id, booked_at, started_at, due_at)"
        " VALUES (:bike_id, :customer_id, date('now'), :start_date, :end_date)",
        {"bike_id": INTEGER, "customer_id": INTEGER, "start_date": DATE, "end_date": DATE},
    )
    in_the_data = validate_tool(booked_today, bike_shop, clock=datetime(2025, 2, 28, 9, 0))
    assert changed_rows(in_the_data) and in_the_data.trial is not None, in_the_data.reasons
    assert in_the_data.trial["arguments"]["start_date"] >= "2025-02-28", "a date of the data after that 'now'"
    later = validate_tool(booked_today, bike_shop, clock=datetime(2026, 12, 3, 9, 0))
    assert changed_rows(later) and later.trial is not None, later.reasons
    start, end = later.trial["arguments"]["start_date"], later.trial["arguments"]["end_date"]
    assert "2026-12-03" < start < end, "the data's dates moved past 'now', their order kept"


def test_an_update_is_proved_only_by_a_run_that_really_changes_its_row(bike_shop: SQLDatabase) -> None:
    move = tool(
        "move_rental",
        "UPDATE rentals SET started_at = :started_at, due_at = :due_at WHERE rental_id = :rental_id",
        {"rental_id": INTEGER, "started_at": DATE, "due_at": DATE},
    )

    verdict = validate_tool(move, bike_shop)

    assert changed_rows(verdict) and verdict.trial is not None, verdict.reasons
    arguments = verdict.trial["arguments"]
    reader = bike_shop.environment(())
    try:
        [stored] = reader.query(
            "SELECT started_at, due_at FROM rentals WHERE rental_id = :id", {"id": arguments["rental_id"]}
        ).content
    finally:
        reader.close()
    assert (arguments["started_at"], arguments["due_at"]) != (stored["started_at"], stored["due_at"])
    assert arguments["started_at"] < arguments["due_at"], "taken together from one row: the date check holds"


def test_an_update_that_matches_no_row_for_any_draw_is_rejected(bike_shop: SQLDatabase) -> None:
    sql = "UPDATE repair_jobs SET quote = :quote WHERE job_id = :job_id AND status = 'waiting_for_parts'"

    verdict = validate_tool(tool("quote_waiting_job", sql, {"job_id": INTEGER, "quote": {"type": "number"}}), bike_shop)

    assert "no trial changed a row" in reasons(verdict)
    assert verdict.trial is not None and verdict.trial["attempts"] >= 3 and verdict.trial["rows"] == 0


def test_a_valid_write_keeps_the_constraint_errors_of_its_other_trials(bike_shop: SQLDatabase) -> None:
    # the first part drawn has no stock left: taking one breaks CHECK (stock >= 0); the next one has some
    verdict = validate_tool(
        tool("use_one_part", "UPDATE parts SET stock = stock - 1 WHERE part_id = :part_id", {"part_id": INTEGER}),
        bike_shop,
    )

    assert changed_rows(verdict), verdict.reasons
    assert verdict.trial is not None
    assert any("CHECK constraint failed: stock >= 0" in error for error in verdict.trial["errors"])


def test_every_distinct_constraint_error_is_a_reason(bike_shop: SQLDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    errors = iter(
        ["UNIQUE constraint failed: customers.email", "CHECK constraint failed: x", "CHECK constraint failed: x"]
    )
    monkeypatch.setattr(
        SQLEnvironment,
        "execute",
        lambda self, name, arguments: ToolResult.failure("constraint_violation", next(errors)),
    )
    sql = "INSERT INTO customers (full_name, email) VALUES (:full_name, :email)"

    verdict = validate_tool(tool("add_customer", sql, {"full_name": TEXT, "email": TEXT}), bike_shop)

    assert len(verdict.reasons) == 2
    assert "UNIQUE constraint failed: customers.email; run 1, arguments" in verdict.reasons[0]
    assert "CHECK constraint failed: x; runs 2, 3, arguments" in verdict.reasons[1]


# Reads


def test_a_read_that_returns_no_row_for_any_draw_is_rejected(bike_shop: SQLDatabase) -> None:
    sql = "SELECT bike_id, model FROM bikes WHERE kind = :kind AND status = 'lost'"

    verdict = validate_tool(tool("lost_bikes", sql, {"kind": TEXT}, kind="read"), bike_shop)

    assert "no trial returned a row" in reasons(verdict)


def test_a_read_on_an_empty_table_stays_valid_with_its_note(test_data: Path, tmp_path: Path) -> None:
    empty = build(test_data / "db" / "bike_shop.sql", tmp_path / "no_parts.sqlite", "DELETE FROM parts;")
    sql = "SELECT part_id, name, stock FROM parts WHERE sku = :sku"

    verdict = validate_tool(tool("get_part", sql, {"sku": TEXT}, kind="read"), empty)

    assert verdict.valid, verdict.reasons
    assert verdict.trial is not None and verdict.trial["note"] == 'no trial returned a row: "parts" has no rows'


def test_a_delete_the_data_blocks_stays_valid_with_its_note(bike_shop: SQLDatabase) -> None:
    verdict = validate_tool(
        tool("delete_customer", "DELETE FROM customers WHERE customer_id = :customer_id", {"customer_id": INTEGER}),
        bike_shop,
    )

    assert verdict.valid, verdict.reasons
    assert verdict.trial is not None and "another row refers to each" in verdict.trial["note"]


# Tool sets


def test_the_bike_shop_tools_and_its_scaffold_are_valid_and_every_write_changed_rows(
    test_data: Path, bike_shop: SQLDatabase
) -> None:
    written = validate_tools(load_sql_tools(test_data / "bike_shop_tools.json", None), bike_shop)
    scaffolded = validate_tools(scaffold_tools(bike_shop.schema), bike_shop)

    assert [v.name for v in written if not changed_rows(v) and not (v.trial or {}).get("rows")] == []
    assert [v for v in scaffolded if not v.valid] == []
    unproved = {v.name for v in scaffolded if not (v.trial or {}).get("rows")}
    assert unproved == {"delete_bike", "delete_customer"}  # every bike and customer is referenced


def test_the_bookstore_examples_tools_are_valid_and_every_write_changed_rows() -> None:
    database = SQLDatabase.load(EXAMPLES / "bookstore.sql")
    tools = load_sql_tools(EXAMPLES / "bookstore_tools.json", None)

    verdicts = validate_tools(tools, database)

    assert [v.name for v in verdicts if not v.valid] == []
    writes = [v for v, t in zip(verdicts, tools, strict=True) if t.kind == "write"]
    assert writes and all(changed_rows(v) for v in writes)
    scaffolded = validate_tools(scaffold_tools(database.schema), database)
    assert [v for v in scaffolded if not v.valid] == []
    unproved = {v.name: (v.trial or {}).get("note", "") for v in scaffolded if not (v.trial or {}).get("rows")}
    assert unproved.keys() == {"delete_author", "delete_order"}  # every author and order is referenced
    assert all("another row refers to each" in note for note in unproved.values())


# The repair round


async def test_the_repair_request_carries_the_constraint_and_the_repaired_tool_is_accepted(
    bike_shop: SQLDatabase,
) -> None:
    def entry(status: str) -> dict[str, Any]:
        return repair_job(status).model_dump(include={"name", "description", "parameters", "sql", "kind"})

    model = ScriptedModel(
        [orjson.dumps({"tools": [entry("reported")]}).decode(), orjson.dumps({"tools": [entry("booked")]}).decode()]
    )

    result = await synthesize_sql_tools(model, bike_shop, domain=BIKE_SHOP, count=1)

    assert "create_repair_job" in [tool.name for tool in result.items]
    assert result.repaired == 1 and result.rejected == []
    failures = filled_in(prompt_of(model, 1), "sql_tools_repair")["failures"]
    assert f"CHECK constraint failed: {REPAIR_STATUS_CHECK}" in failures


# tools check


def test_tools_check_shows_each_trials_evidence(bike_shop: SQLDatabase, tmp_path: Path) -> None:
    from dialforge.environments.sql.scaffold import write_tools_json

    database = tmp_path / "bike_shop.sqlite"
    database.write_bytes(Path(bike_shop.path).read_bytes())
    tools = tmp_path / "tools.json"
    write_tools_json([repair_job("booked"), repair_job("reported").model_copy(update={"name": "bad_job"})], tools)
    check = ["tools", "check", "--db", str(database), str(tools)]

    result = CliRunner().invoke(app, check, env={"COLUMNS": "400"})

    assert result.exit_code == 1
    assert "trial 1 changed 1 row" in result.stdout
    assert 'arguments {"bike_id":' in result.stdout
    assert f"CHECK constraint failed: {REPAIR_STATUS_CHECK}" in result.stdout
    assert "1 of 1 valid write tools changed rows in a trial" in result.stdout
    lines = [orjson.loads(line) for line in CliRunner().invoke(app, [*check, "--json"]).stdout.splitlines()]
    assert lines[0]["trial"]["rows"] == 1 and "bike_id" in lines[0]["trial"]["arguments"]
    assert lines[1]["valid"] is False and lines[1]["trial"]["errors"]
