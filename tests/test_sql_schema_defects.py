"""Schemas as real databases have them: every scaffolded tool is valid, or left out with the schema's defect named.

Each schema below reproduces one thing found in databases not written for dialforge: a foreign key to a column
that is not a key of its table, a trigger SQLite refuses, primary keys made of foreign keys whose combinations are
mostly taken, a one-to-one table, UNIQUE text under a CHECK, keys typed differently from what they reference, no
primary key, WITHOUT ROWID, reserved words, mixed case and quoted names with spaces, long texts, foreign keys that
are NULL in the first rows. Whether SQLite can enforce a foreign key is checked against SQLite itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import apsw
import pytest

from dialforge.config import DialforgeConfig
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.scaffold import scaffold_notes, scaffold_tools
from dialforge.environments.sql.schema import introspect
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import ToolVerdict, read_back_gaps, validate_tools
from dialforge.llm import DryRunModel
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.preparation import Preparation

MISMATCH = """
CREATE TABLE team (team_id INTEGER PRIMARY KEY, code TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE player (
    player_id INTEGER PRIMARY KEY, team_code TEXT REFERENCES team (code), name TEXT NOT NULL
);
CREATE TABLE coach (coach_id INTEGER PRIMARY KEY, team_id INTEGER NOT NULL REFERENCES team (team_id), name TEXT);
CREATE TABLE note (note_id INTEGER PRIMARY KEY, body TEXT NOT NULL);
INSERT INTO team VALUES (1, 'RED', 'Red Rovers'), (2, 'BLU', 'Blue Jays');
INSERT INTO player VALUES (1, 'RED', 'Ada'), (2, 'BLU', 'Bo'), (3, 'RED', 'Cy');
INSERT INTO coach VALUES (1, 1, 'Dee');
INSERT INTO note VALUES (1, 'first');
CREATE TRIGGER note_mark AFTER INSERT ON note BEGIN UPDATE note SET body = body || "!" WHERE note_id = new.note_id; END;
"""
"""player.team_code references team.code, which is no key: SQLite fails every write to player (and to team) with
"foreign key mismatch" while foreign keys are on. note's trigger uses a double-quoted string, which forks refuse."""

KEYS = """
CREATE TABLE student (student_id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE course (course_code TEXT PRIMARY KEY CHECK (course_code GLOB '[A-Z][A-Z]-[0-9][0-9][0-9]'),
    title TEXT NOT NULL);
CREATE TABLE enrolment (
    student_id INTEGER NOT NULL REFERENCES student (student_id),
    course_code TEXT NOT NULL REFERENCES course (course_code),
    grade TEXT CHECK (grade IN ('A', 'B', 'C')),
    PRIMARY KEY (student_id, course_code)
);
CREATE TABLE locker (
    student_id INTEGER PRIMARY KEY REFERENCES student (student_id),
    number TEXT NOT NULL UNIQUE CHECK (number GLOB 'L-[0-9][0-9][0-9]')
);
CREATE TABLE architect (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE bridge (id INTEGER PRIMARY KEY, architect_id INTEGER REFERENCES architect (id), name TEXT NOT NULL);
CREATE TABLE "Order" ("Select" INTEGER, "Group By" TEXT, "From" TEXT NOT NULL);
CREATE TABLE "Key Value" ("Key" TEXT PRIMARY KEY, "Value" TEXT) WITHOUT ROWID;
CREATE TABLE "MixedCase Items" ("Item ID" INTEGER PRIMARY KEY, "Item Name" TEXT UNIQUE, "student_ID" INTEGER
    REFERENCES student (student_id));
CREATE TABLE essay (essay_id INTEGER PRIMARY KEY, student_id INTEGER REFERENCES student (student_id), body TEXT);
INSERT INTO student VALUES (1, 'Ana'), (2, 'Ben'), (3, 'Cleo');
INSERT INTO course VALUES ('MA-101', 'Algebra'), ('PH-201', 'Optics');
INSERT INTO enrolment VALUES (1, 'MA-101', 'A'), (1, 'PH-201', 'B'), (2, 'MA-101', 'C'), (2, 'PH-201', NULL),
    (3, 'MA-101', 'A');
INSERT INTO locker VALUES (1, 'L-001'), (2, 'L-002');
INSERT INTO architect VALUES ('1', 'Wright'), ('2', 'Hadid');
INSERT INTO bridge VALUES (1, 1, 'Fallingwater Footbridge');
INSERT INTO "Order" VALUES (1, 'a', 'north'), (NULL, NULL, 'south');
INSERT INTO "Key Value" VALUES ('colour', 'blue'), ('size', NULL);
INSERT INTO "MixedCase Items" VALUES (10, 'Pen', NULL), (11, 'Ink', 3);
INSERT INTO essay VALUES (1, NULL, 'untitled'), (2, NULL, 'draft'), (3, NULL, 'notes'), (4, 2, printf('%.3000c', 'x'));
"""
"""Two of the six enrolments are free (3 with PH-201); one locker is free (student 3); the architect's key is text
while the bridge's column is an integer; the first essays have no student and the last one's body is longer than
a LIKE pattern may be."""


def database(script: str) -> SQLDatabase:
    return SQLDatabase.from_script(script, source="test.sql")


def verdicts(db: SQLDatabase) -> dict[str, ToolVerdict]:
    return {verdict.name: verdict for verdict in validate_tools(scaffold_tools(db.schema), db)}


def trial(verdict: ToolVerdict) -> dict[str, Any]:
    assert verdict.trial is not None, verdict
    return verdict.trial


def test_a_foreign_key_to_a_non_key_column_is_a_defect_and_forks_run_without_enforcement() -> None:
    db = database(MISMATCH)

    (defect,) = [d for d in db.schema.defects if d.kind == "foreign_key"]

    assert defect.table == "player"
    assert '"player" (team_code) references "team" (code), which is neither the primary key' in defect.message
    assert "foreign key mismatch" in defect.message
    assert db.schema.foreign_keys_enforced is False
    create = next(tool for tool in scaffold_tools(db.schema) if tool.name == "create_coach")
    fork = db.environment([create]).fork()
    result = fork.execute("create_coach", {"team_id": 99, "name": "Eve"})  # no team 99, as in real life
    assert result.error is None and result.content["rows_affected"] == 1


def test_forks_of_a_sound_schema_enforce_foreign_keys() -> None:
    db = database(KEYS)
    create = next(tool for tool in scaffold_tools(db.schema) if tool.name == "create_bridge")

    result = db.environment([create]).fork().execute("create_bridge", {"architect_id": 99, "name": "Nowhere Bridge"})

    assert db.schema.foreign_keys_enforced is True
    assert result.error is not None and "FOREIGN KEY constraint failed" in result.error.message


def test_every_scaffolded_tool_of_a_mismatched_schema_is_valid_and_writes_succeed() -> None:
    db = database(MISMATCH)

    results = verdicts(db)

    assert [v for v in results.values() if not v.valid] == []
    for name in ("create_player", "update_player", "delete_player", "update_team", "delete_team"):
        assert trial(results[name])["rows"] == 1, name


def test_a_write_sqlite_refuses_is_left_out_with_its_reason() -> None:
    db = database(MISMATCH)

    names = {tool.name for tool in scaffold_tools(db.schema)}
    notes = scaffold_notes(db.schema)

    assert "create_note" not in names and {"update_note", "delete_note", "get_note"} <= names
    (refused,) = [note for note in notes if "note" in note and "insert" in note]
    assert refused.startswith('SQLite refuses to insert rows of "note": no such column: "!"')
    assert refused.endswith("(no create tool for it)")


def test_a_hand_written_write_on_a_refused_table_names_the_defect() -> None:
    db = database(MISMATCH)
    parameters = {"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]}
    tool = SQLTool(
        name="add_note", description="Add a note.", parameters=parameters, sql="INSERT INTO note (body) VALUES (:body)"
    )

    (verdict,) = validate_tools([tool.model_copy(update={"kind": "write"})], db)

    assert not verdict.valid
    assert verdict.reasons[-1].startswith('the schema\'s defect: SQLite refuses to insert rows of "note"')


@pytest.mark.parametrize(
    ("parent", "defect"),
    [
        ("CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT)", True),
        ("CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT UNIQUE)", False),
        ("CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT); CREATE UNIQUE INDEX p_code ON p (code)", False),
        (
            "CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT); CREATE UNIQUE INDEX p_code ON p (code COLLATE NOCASE)",
            True,
        ),
        (
            "CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT); CREATE UNIQUE INDEX p_code ON p (code) WHERE id > 0",
            True,
        ),
        ("CREATE TABLE p (code TEXT PRIMARY KEY)", False),
        ("CREATE TABLE p (code TEXT, n INTEGER, PRIMARY KEY (code, n))", True),
        ("CREATE TABLE q (code TEXT PRIMARY KEY)", True),
    ],
    ids=["plain", "unique", "unique-index", "other-collation", "partial-index", "text-key", "part-of-key", "no-parent"],
)
def test_foreign_key_defects_agree_with_sqlite(tmp_path: Path, parent: str, defect: bool) -> None:
    path = tmp_path / "fk.sqlite"
    connection = apsw.Connection(str(path))
    connection.execute(f"{parent}; CREATE TABLE c (id INTEGER PRIMARY KEY, code TEXT REFERENCES p (code));")
    connection.execute("PRAGMA foreign_keys = ON")
    try:
        connection.execute("INSERT INTO c (code) VALUES (NULL)")
        sqlite_refuses = False
    except apsw.SQLError as exc:
        sqlite_refuses = "foreign key mismatch" in str(exc) or "no such table" in str(exc)

    schema = introspect(connection)

    assert sqlite_refuses is defect
    assert any(d.kind == "foreign_key" and d.table == "c" for d in schema.defects) is defect
    assert schema.foreign_keys_enforced is not defect


def test_every_scaffolded_tool_of_awkward_keys_and_names_is_valid() -> None:
    db = database(KEYS)

    results = verdicts(db)

    assert [v for v in results.values() if not v.valid] == []
    assert db.schema.defects == ()


def test_a_composite_key_of_foreign_keys_gets_an_unused_combination() -> None:
    db = database(KEYS)

    trial = verdicts(db)["create_enrolment"].trial

    assert trial is not None and trial["attempts"] == 1 and trial["rows"] == 1
    assert (trial["arguments"]["student_id"], trial["arguments"]["course_code"]) == (3, "PH-201")


def test_a_one_to_one_key_and_a_unique_text_get_free_values_that_keep_the_checks() -> None:
    db = database(KEYS)
    results = verdicts(db)

    locker = results["create_locker"].trial
    course = results["create_course"].trial

    assert locker is not None and locker["attempts"] == 1
    assert locker["arguments"]["student_id"] == 3 and locker["arguments"]["number"] == "L-003"
    assert course is not None and course["arguments"]["course_code"] == "PH-202"  # the largest code, counted up


def test_a_key_typed_unlike_its_parent_takes_the_parents_values_converted() -> None:
    trial = verdicts(database(KEYS))["create_bridge"].trial

    assert trial is not None and trial["attempts"] == 1 and trial["arguments"]["architect_id"] in (1, 2)


def test_every_read_tool_returns_rows_in_a_trial() -> None:
    db = database(KEYS)
    reads = {tool.name for tool in scaffold_tools(db.schema) if tool.kind == "read"}

    results = verdicts(db)

    assert {name: results[name].proof for name in reads if not trial(results[name])["rows"]} == {}
    search = results["search_essays"].trial
    assert search is not None and len(search["arguments"]["query"]) <= 24  # a piece of the 3,000-character body
    parent = results["get_student_for_essay"].trial
    assert parent is not None and parent["arguments"] == {"essay_id": 4}  # the essay that has a student


def test_every_write_changes_a_row_at_its_first_trial_where_the_data_allows() -> None:
    results = verdicts(database(KEYS))

    writes = {name: v.proof for name, v in results.items() if name.startswith(("create_", "update_", "delete_"))}

    referenced = "ran 3 trials; no trial changed a row: no row of {} to delete: another row refers to each"
    assert {name: proof for name, proof in writes.items() if proof != "trial 1 changed 1 row"} == {
        "delete_course": referenced.format('"course"'),
        "delete_student": referenced.format('"student"'),
    }
    # an UPDATE of a UNIQUE column is tried with a value no row holds: it changes the row and stays unique
    arguments = trial(results["update_mixed_case_item"])["arguments"]
    assert arguments["item_id"] == 10 and arguments["item_name"] not in ("Pen", "Ink", None)


def test_reads_of_an_empty_table_are_valid_and_say_why_they_returned_nothing() -> None:
    db = database("CREATE TABLE bin (bin_id INTEGER PRIMARY KEY, label TEXT NOT NULL);")

    result = verdicts(db)["list_bins"]

    assert result.valid and result.proof == 'ran 3 trials; no trial returned a row: "bin" has no rows'


# Read-back coverage


def read(name: str, sql: str) -> SQLTool:
    return SQLTool(name=name, description="Reads.", sql=sql)


def write(name: str, sql: str) -> SQLTool:
    return SQLTool(name=name, description="Writes.", sql=sql, kind="write")


def test_a_column_a_write_sets_and_no_read_returns_is_a_gap() -> None:
    schema = database(KEYS).schema
    enrol = write("enrol", "INSERT INTO enrolment (student_id, course_code, grade) VALUES (:s, :c, :g)")
    grade = write("grade", "UPDATE enrolment SET grade = :g WHERE student_id = :s AND course_code = :c")
    names = read(
        "names",
        "SELECT s.name, c.title FROM enrolment AS e JOIN student AS s ON s.student_id = e.student_id"
        " JOIN course AS c ON c.course_code = e.course_code",
    )
    best = read("best", "SELECT max(grade) AS best FROM enrolment")

    assert read_back_gaps([enrol, grade, names, best], schema) == {
        "enrol": [("enrolment", "grade")],
        "grade": [("enrolment", "grade")],
    }  # the keys are read back through the joins; an aggregate shows no row's grade
    grades = read("grades", "SELECT e.*, s.name FROM enrolment AS e JOIN student AS s USING (student_id)")
    assert read_back_gaps([enrol, grade, names, grades], schema) == {}


@pytest.mark.parametrize("script", [MISMATCH, KEYS], ids=["mismatch", "keys"])
def test_scaffolded_sets_have_no_read_back_gaps(script: str) -> None:
    db = database(script)

    assert read_back_gaps(scaffold_tools(db.schema), db.schema) == {}


async def test_a_runs_stage_reports_name_the_schemas_defects(tmp_path: Path) -> None:
    script = tmp_path / "league.sql"
    script.write_text(MISMATCH)
    settings = DialforgeConfig.model_validate(
        {"generation": {"tasks_per_domain": 1}, "domains": [{"name": "league", "database": str(script)}]}
    )
    store = ArtifactStore(tmp_path / "run")
    (plan,) = await Preparation(settings, DryRunModel(seed=1, role="generator"), store).run()
    store.close()

    (report,) = [report for report in plan.reports if report.stage == "database"]
    assert plan.database is not None and report.notes == scaffold_notes(plan.database.schema)
    assert len(report.notes) == 2
