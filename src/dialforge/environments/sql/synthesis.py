"""SQL that a model writes for a domain: the tools over a database, and a database for a domain.

Model output is untrusted and often slightly wrong, so everything it writes is checked before use and
gets one repair round with the reasons: tools go through ``validate_tool`` (static checks and a trial
run on a fork), a schema script must build a database in the sandbox. Tool synthesis never raises for
a bad reply: what could not be used is reported in the result, so one reply cannot crash a run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.schema import data_view
from dialforge.environments.sql.source import DatabaseSourceError, open_readonly
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import ToolVerdict, validate_tools
from dialforge.llm.completion import Completion, ResponseSchema
from dialforge.llm.errors import ModelError
from dialforge.llm.protocol import ChatModel
from dialforge.model.messages import AssistantMessage, Message, UserMessage
from dialforge.prompts import render_prompt

_TOOL_FIELDS = ("name", "description", "parameters", "sql", "kind")

TOOLS_FORMAT = ResponseSchema(
    name="sql_tools",
    json_schema={
        "type": "object",
        "properties": {
            "tools": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "parameters": {"type": "object"},
                        "sql": {"type": "string"},
                        "kind": {"enum": ["read", "write"]},
                    },
                    "required": list(_TOOL_FIELDS),
                },
            }
        },
        "required": ["tools"],
    },
)
"""What a tool-synthesis reply must be: ``{"tools": [{name, description, parameters, sql, kind}]}``.

Only the shape (and the closed set of kinds): a reply failing this is asked again as a whole, and lost if
it fails twice, whereas a wrong value (a bad name, bad SQL) costs only its own tool, which ``validate_tool``
explains.
"""

SCHEMA_FORMAT = ResponseSchema(
    name="sql_schema",
    json_schema={
        "type": "object",
        "properties": {"sql": {"type": "string", "minLength": 1}},
        "required": ["sql"],
        "additionalProperties": False,
    },
)
"""What a schema-synthesis reply must be: ``{"sql": "CREATE TABLE ...; INSERT ..."}``."""


class SynthesisResult(BaseModel):
    """The tools that passed, the ones dropped (with their final reasons), and what went wrong on the way."""

    model_config = ConfigDict(extra="forbid")

    tools: list[SQLTool] = Field(default_factory=list)
    rejected: list[ToolVerdict] = Field(default_factory=list)
    repaired: int = 0
    """Tools that failed the first check and passed after the repair round."""
    errors: list[str] = Field(default_factory=list)
    """Model calls that failed; the result then holds what was usable before the failure."""


@dataclass(frozen=True)
class _Proposal:
    """One tool as the model wrote it, its tool (None when it is not even a tool) and its verdict."""

    entry: dict[str, Any]
    tool: SQLTool | None
    verdict: ToolVerdict


async def synthesize_sql_tools(
    model: ChatModel, database: SQLDatabase, *, domain: str, count: int = 12, seed: int = 0
) -> SynthesisResult:
    """Ask ``model`` for ``count`` tools over ``database`` (at most ``count`` are kept), check each, repair once."""
    prompt = render_prompt(
        "sql_tools", domain=domain, count=count, schema=database.schema.to_prompt(), data_view=_data_view(database)
    )
    messages: list[Message] = [UserMessage(content=prompt)]
    try:
        reply = await model.complete(messages, response_format=TOOLS_FORMAT, seed=seed)
    except ModelError as exc:
        return SynthesisResult(errors=[f"the tool proposal failed: {exc}"])
    proposals = _checked(_entries(reply)[:count], database, taken=())
    accepted = [p.tool for p in proposals if p.verdict.valid and p.tool is not None]
    failed = [p for p in proposals if not p.verdict.valid]
    if not failed:
        return SynthesisResult(tools=accepted)
    repair = render_prompt(
        "sql_tools_repair",
        failures="\n\n".join(_failure(number, p) for number, p in enumerate(failed, start=1)),
        count=len(failed),
        accepted=", ".join(tool.name for tool in accepted) or "none",
    )
    messages += [AssistantMessage(content=reply.content or ""), UserMessage(content=repair)]
    try:
        reply = await model.complete(messages, response_format=TOOLS_FORMAT, seed=seed)
    except ModelError as exc:
        return SynthesisResult(
            tools=accepted, rejected=[p.verdict for p in failed], errors=[f"the repair request failed: {exc}"]
        )
    corrections = _checked(_entries(reply)[: len(failed)], database, taken={tool.name for tool in accepted})
    fixed = [p.tool for p in corrections if p.verdict.valid and p.tool is not None]
    rejected = [p.verdict for p in corrections if not p.verdict.valid]
    rejected += [_unanswered(p.verdict) for p in failed[len(corrections) :]]
    return SynthesisResult(tools=accepted + fixed, rejected=rejected, repaired=len(fixed))


async def synthesize_database(model: ChatModel, *, domain: str, seed: int = 0) -> SQLDatabase:
    """A database the model designs and fills for ``domain``, built in the sandbox; one repair round.

    Raises ``DatabaseSourceError`` naming the domain and both failures when the repaired script fails
    too; ``ModelError`` when the model gives no usable reply (there is no database to fall back on).
    """
    source = f"<schema written for the {domain} domain>"
    messages: list[Message] = [UserMessage(content=render_prompt("sql_schema", domain=domain))]
    reply = await model.complete(messages, response_format=SCHEMA_FORMAT, seed=seed)
    try:
        return SQLDatabase.from_script(reply.parsed["sql"], source=source)
    except DatabaseSourceError as exc:
        first = f"{exc.problem}; {exc.hint}"
    messages += [
        AssistantMessage(content=reply.content or ""),
        UserMessage(content=render_prompt("sql_schema_repair", error=first)),
    ]
    reply = await model.complete(messages, response_format=SCHEMA_FORMAT, seed=seed)
    try:
        return SQLDatabase.from_script(reply.parsed["sql"], source=source)
    except DatabaseSourceError as exc:
        raise DatabaseSourceError(
            source,
            f"the model's script for the {domain} domain failed twice: {first}; after the repair: {exc.problem}",
            "try again, or give the database as a .sql or .sqlite file",
        ) from None


def _data_view(database: SQLDatabase) -> str:
    connection = open_readonly(database.path)
    try:
        return data_view(connection, database.schema)
    finally:
        connection.close()


def _entries(reply: Completion) -> list[dict[str, Any]]:
    """The tool objects of a reply (its JSON was checked against ``TOOLS_FORMAT`` already)."""
    parsed = reply.parsed if isinstance(reply.parsed, dict) else {}
    return [entry for entry in parsed.get("tools", []) if isinstance(entry, dict)]


def _checked(entries: Sequence[dict[str, Any]], database: SQLDatabase, taken: Collection[str]) -> list[_Proposal]:
    """Every entry with its verdict, in order; an entry that is not even an ``SQLTool`` is rejected as it is."""
    tools: list[SQLTool | None] = []
    malformed: list[ToolVerdict] = []
    for number, entry in enumerate(entries, start=1):
        try:
            tools.append(SQLTool.model_validate({key: entry[key] for key in _TOOL_FIELDS if key in entry}))
        except ValidationError as exc:
            tools.append(None)
            reasons = [f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()]
            malformed.append(ToolVerdict(name=str(entry.get("name") or f"tool {number}"), valid=False, reasons=reasons))
    verdicts = iter(validate_tools([tool for tool in tools if tool is not None], database, reserved_names=taken))
    unusable = iter(malformed)
    return [
        _Proposal(entry, tool, next(verdicts) if tool is not None else next(unusable))
        for entry, tool in zip(entries, tools, strict=True)
    ]


def _failure(number: int, proposal: _Proposal) -> str:
    reasons = "\n".join(f"- {reason}" for reason in proposal.verdict.reasons)
    submitted = orjson.dumps(proposal.entry).decode()
    return f"### {number}. {proposal.verdict.name}\nSubmitted: {submitted}\nReasons:\n{reasons}"


def _unanswered(verdict: ToolVerdict) -> ToolVerdict:
    reason = "the repair round sent no corrected version of this tool"
    return verdict.model_copy(update={"reasons": [*verdict.reasons, reason]})
