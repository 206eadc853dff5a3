"""Test data used across test modules."""

import json
from pathlib import Path

from dialforge.environments.sql.scaffold import scaffold_tools, write_tools_json
from dialforge.environments.sql.schema import introspect
from dialforge.environments.sql.source import open_readonly
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm import ResponseSchema
from dialforge.model import Task
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_section

UPDATE_BILLING_CITY = ToolSpec(
    name="update_invoice_billing_city",
    description="Change the billing city of one invoice.",
    parameters={
        "type": "object",
        "properties": {"invoice_id": {"type": "integer"}, "city": {"type": "string"}},
        "required": ["invoice_id", "city"],
    },
    sql='UPDATE "Invoice" SET "BillingCity" = :city WHERE "InvoiceId" = :invoice_id',
)
"""A Chinook write tool for goal-writing tests."""

DATE_INVOICE = SQLTool(
    name="date_invoice",
    description="Date an invoice today.",
    kind="write",
    parameters={"type": "object", "properties": {"invoice_id": {"type": "integer"}}, "required": ["invoice_id"]},
    sql="UPDATE Invoice SET InvoiceDate = strftime('%Y-%m-%d %H:%M:%S', 'now') WHERE InvoiceId = :invoice_id",
)
"""A Chinook tool that writes SQL's 'now': what a dialogue's clock shows."""

USER_TURN = ResponseSchema(
    name="user_turn",
    json_schema={
        "type": "object",
        "properties": {"user_message": {"type": "string"}, "is_task_complete": {"type": "boolean"}},
        "required": ["user_message", "is_task_complete"],
        "additionalProperties": False,
    },
)
"""The user simulator's reply (docs/method.md): a message and whether the whole task is done."""


def write_music_config(
    directory: Path,
    chinook_path: Path,
    *,
    per_domain: int = 8,
    max_turns: int = 24,
    tasks_per_dialogue: tuple[int, int] = (1, 2),
    extra: str = "",
    mode: str = "user+exec",
) -> Path:
    """A run config (user+exec unless ``mode`` says otherwise) over the real Chinook database, with scaffolded
    tools and two short tasks, for whole runs in tests (``--dry-run``)."""
    connection = open_readonly(chinook_path)
    write_tools_json(scaffold_tools(introspect(connection)), directory / "tools.json")
    connection.close()
    tasks = [
        Task(id="a", description="You are customer 2: you want invoice 1 and its lines.", tools=["get_invoice"]),
        Task(id="b", description="You want a genre called Polka added and then listed.", tools=["create_genre"]),
    ]
    (directory / "tasks.jsonl").write_text("".join(task.model_dump_json() + "\n" for task in tasks))
    low, high = tasks_per_dialogue
    path = directory / "run.yaml"
    path.write_text(
        f"mode: {mode}\n"
        f"domains: [{{name: music store, description: A digital music store., database: {chinook_path},"
        " tools: tools.json, tasks: tasks.jsonl, policy: Confirm with the customer before changing anything.}]\n"
        f"generation: {{tasks_per_dialogue: [{low}, {high}]}}\n"
        f"dialogue: {{per_domain: {per_domain}, max_turns: {max_turns}}}\n" + extra
    )
    return path


def whole_goal(number: int) -> str:
    """The one rubric item the judge is shown for the ``number``-th goal when it has no rubric: the goal whole."""
    return f"T{number}.G1 {render_section('judge_parts', 'whole_goal')}"


def verdict(*items: str, judgment: str = "valid") -> str:
    """A judge reply classing as met exactly ``items``, which must be the rubric items the judge is shown, as
    listed and in order (``whole_goal(1)`` for a dialogue of one goal without a rubric)."""
    verdicts = [{"item": item, "category": "Critical", "passed": True} for item in items]
    return json.dumps({"reasoning": "All done as asked.", "items": verdicts, "judgment": judgment})
