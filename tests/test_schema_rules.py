"""The schema prompt shows the rules a write must keep and the values few-valued columns hold."""

from __future__ import annotations

import re
from pathlib import Path

from dialforge.environments.sql.environment import SQLDatabase


def bike_shop(test_data: Path) -> SQLDatabase:
    return SQLDatabase.from_sql_file(test_data / "db" / "bike_shop.sql")


def column_line(prompt: str, column: str) -> str:
    return next(line for line in prompt.splitlines() if line.strip().startswith(f"{column} "))


def test_check_unique_default_and_trigger_are_shown(test_data: Path) -> None:
    schema = bike_shop(test_data).schema
    repairs = schema.table("repair_jobs").to_prompt()
    status = column_line(repairs, "status")
    assert all(value in status for value in ("'booked'", "'in_progress'", "'ready'", "'collected'"))
    assert "CHECK" in status and "DEFAULT 'booked'" in status
    rentals = schema.table("rentals").to_prompt()
    assert "booked_at <= started_at" in rentals and "started_at < due_at" in rentals
    assert "rental_marks_bike" in rentals and "UPDATE bikes SET status = 'rented'" in rentals
    assert "UNIQUE" in column_line(schema.table("customers").to_prompt(), "email")
    assert "UNIQUE" in column_line(schema.table("parts").to_prompt(), "sku")


def test_few_valued_columns_list_their_values_with_counts(test_data: Path) -> None:
    schema = bike_shop(test_data).schema
    status = column_line(schema.table("bikes").to_prompt(), "status")
    comment = status.split("--", 1)[1]
    counts = dict(re.findall(r"'(\w+)' (\d+)", comment))
    assert counts == {"available": "16", "rented": "7", "in_repair": "6", "retired": "1"}
    customers = schema.table("customers").to_prompt()
    assert "--" not in column_line(customers, "email") and "example.org" not in customers
    assert schema.table("bikes").column("bike_id").values == ()  # keys are never listed


def test_identifiers_needing_quotes_stay_quoted_in_rules() -> None:
    database = SQLDatabase.from_script(
        'CREATE TABLE "odd table" ("the kind" TEXT CHECK ("the kind" IN (\'a\', \'b, c\')), n INTEGER);'
        "INSERT INTO \"odd table\" VALUES ('a', 1), ('a', 2), ('b, c', 3), ('a', 4), ('a', 5), ('a', 6);"
    )
    prompt = database.schema.to_prompt()
    assert "CHECK (\"the kind\" IN ('a', 'b, c'))" in prompt
    assert "'b, c' 1" in prompt and "'a' 5" in prompt


def test_chinook_stays_compact(chinook: SQLDatabase) -> None:
    prompt = chinook.schema.to_prompt()
    assert len(prompt) < 4000  # 3,110 characters before rules and values were shown
    assert max(len(line) for line in prompt.splitlines()) < 300
    assert "Composer" in prompt and "values" not in column_line(prompt, "Composer")


def test_partial_unique_indexes_and_foreign_key_actions_are_shown() -> None:
    database = SQLDatabase.from_script(
        "CREATE TABLE team (id INTEGER PRIMARY KEY);"
        "CREATE TABLE member (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES team (id) ON DELETE CASCADE,"
        " email TEXT, active INTEGER NOT NULL DEFAULT 1, UNIQUE (team_id, email));"
        "CREATE UNIQUE INDEX one_active_lead ON member (team_id) WHERE active = 1;"
    )
    prompt = database.schema.table("member").to_prompt()
    assert "ON DELETE CASCADE" in prompt and "UNIQUE (team_id, email)" in prompt
    assert "one_active_lead" in prompt and "WHERE active = 1" in prompt
