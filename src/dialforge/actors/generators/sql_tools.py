"""SQL tools a model writes over a domain's database.

Model output is untrusted and often slightly wrong, so every tool is checked before use and gets one
repair round with the reasons: tools go through ``validate_tool`` (static checks and a trial run on a
fork). Tool synthesis never raises for a bad reply: what could not be used is reported in the result,
so one reply cannot crash a run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from dialforge.actors.generators.item_repair import Checked, ItemBatch, describe_failures, generate_items
from dialforge.actors.generators.tool_specs import domain_description, tools_reply_format
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.scaffold import read_back_tools
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import validate_tools
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import LONG_TEXT_CHARS
from dialforge.model.domain import Domain
from dialforge.model.messages import UserMessage
from dialforge.prompts import render_prompt

_TOOL_FIELDS = ("name", "description", "parameters", "sql", "kind")
"""What a model-written SQL tool is made of."""

TOOLS_FORMAT = tools_reply_format(
    "sql_tools", sql={"type": "string", "maxLength": LONG_TEXT_CHARS}, kind={"enum": ["read", "write"]}
)
"""What a tool-synthesis reply must be: ``{"tools": [{name, description, parameters, sql, kind}]}``.

Only the shape (and the closed set of kinds): a reply failing this is asked again as a whole, and lost if
it fails twice, whereas a wrong value (a bad name, bad SQL) costs only its own tool, which ``validate_tool``
explains.
"""


async def synthesize_sql_tools(
    model: ChatModel,
    database: SQLDatabase,
    *,
    domain: Domain,
    count: int = 12,
    seed: int = 0,
    today: datetime | None = None,
) -> ItemBatch[SQLTool]:
    """Ask ``model`` for ``count`` tools over ``database`` for ``domain`` (at most ``count`` are kept), check each,
    repair once; then add the scaffold's read tool for each table whose changes no kept read returns
    (``read_back_tools``). The trial runs read ``today`` (the dialogues' date) as SQL's 'now'."""
    prompt = render_prompt(
        "sql_tools",
        domain=domain.name,
        description=domain_description(domain),
        count=count,
        schema=database.schema.to_prompt(),
        data_view=database.data_view(seed=seed).text,
    )

    def check(entries: Sequence[Any], accepted: Sequence[SQLTool]) -> list[Checked[SQLTool]]:
        return _checked(entries, database, taken={tool.name for tool in accepted}, today=today)

    def repair(failed: Sequence[Checked[SQLTool]], accepted: Sequence[SQLTool]) -> str:
        return render_prompt(
            "sql_tools_repair",
            failures=describe_failures(failed),
            count=len(failed),
            accepted=", ".join(tool.name for tool in accepted) or "none",
        )

    batch = await generate_items(
        model,
        [UserMessage(content=prompt)],
        TOOLS_FORMAT,
        entries=lambda parsed: [e for e in (parsed or {}).get("tools", []) if isinstance(e, dict)],
        check=check,
        repair_instruction=repair,
        limit=count,
        seed=seed,
    )
    batch.items.extend(read_back_tools(database.schema, batch.items))
    return batch


def _checked(
    entries: Sequence[dict[str, Any]], database: SQLDatabase, taken: Collection[str], today: datetime | None
) -> list[Checked[SQLTool]]:
    """Every entry with its verdict, in order; an entry that is not even an ``SQLTool`` is rejected as it is."""
    tools: list[SQLTool | None] = []
    malformed: list[list[str]] = []
    for entry in entries:
        try:
            tools.append(SQLTool.model_validate({key: entry[key] for key in _TOOL_FIELDS if key in entry}))
        except ValidationError as exc:
            tools.append(None)
            malformed.append([f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()])
    valid = [tool for tool in tools if tool is not None]
    verdicts = iter(validate_tools(valid, database, reserved_names=taken, clock=today))
    unusable = iter(malformed)
    checked: list[Checked[SQLTool]] = []
    for number, (entry, tool) in enumerate(zip(entries, tools, strict=True), start=1):
        if tool is None:
            checked.append(Checked(entry, str(entry.get("name") or f"tool {number}"), None, next(unusable)))
            continue
        verdict = next(verdicts)
        checked.append(Checked(entry, verdict.name, tool if verdict.valid else None, verdict.reasons))
    return checked
