"""Return-value schemas for a domain's tools, predicted together so that shared fields keep one type.

Predicted one tool at a time, ``user_id`` comes back an integer from one tool and a string from the next,
and a simulated environment then contradicts itself. So the whole tool set goes into one conversation and
every schema is checked: a valid JSON schema, an array for ``search_``/``list_`` tools, an object for
``get_`` tools, and no field name with two JSON types across the domain (parameters included). Schemas
that fail get the one repair round, in the same conversation.

Result: every input tool in input order. A tool whose schema passed has ``returns`` set; a tool that
already had ``returns`` keeps it (it is shown as fixed, not asked for); a tool whose schema could not be
fixed comes back with ``returns=None`` *and* is listed in ``rejected``, so the caller keeps the tool and
reports the missing schema.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from dialforge.actors.generators.item_repair import Checked, ItemBatch, Rejection, describe_failures, generate_items
from dialforge.actors.generators.tool_specs import domain_description, json_type
from dialforge.generation_checks.tools import describe_tools
from dialforge.json_schema.checks import json_schema_problem
from dialforge.llm.completion import ResponseSchema
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import BATCH_ITEMS, NAME_CHARS
from dialforge.model.domain import Domain
from dialforge.model.messages import UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_prompt

ARRAY_PREFIXES = ("search_", "list_")
OBJECT_PREFIXES = ("get_",)
LEFT_OUT = "the repair round sent no corrected schema for this tool"

RETURNS_FORMAT = ResponseSchema(
    name="return_schemas",
    json_schema={
        "type": "object",
        "properties": {
            "returns": {
                "type": "array",
                "maxItems": BATCH_ITEMS,
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": NAME_CHARS}, "schema": {"type": "object"}},
                    "required": ["name", "schema"],
                },
            }
        },
        "required": ["returns"],
    },
)
"""A return-schemas reply: ``{"returns": [{"name": tool_name, "schema": {...}}]}``."""

FieldTypes = dict[str, dict[str, list[str]]]
"""Field name -> JSON type -> where it has that type (``"get_user returns"``, ``"get_user parameters"``)."""


async def predict_return_schemas(
    model: ChatModel, domain: Domain, tools: Sequence[ToolSpec], *, seed: int = 0
) -> ItemBatch[ToolSpec]:
    """Every tool of ``tools`` (the domain's whole set, names unique), with the return schemas that passed.

    The reply is matched to the tools by name: a tool it leaves out fails like a bad schema, and schemas
    for unknown or already fixed tools are ignored. The repair reply is matched by name too.
    """
    expected = [tool.name for tool in tools if tool.returns is None]
    if not expected:
        return ItemBatch(items=list(tools))
    by_name = {tool.name: tool for tool in tools}
    fixed = [tool for tool in tools if tool.returns is not None]
    earlier: dict[str, Checked[ToolSpec]] = {}
    prompt = render_prompt(
        "return_schemas",
        domain=domain.name,
        description=domain_description(domain),
        tools=describe_tools(tools, with_returns=True),
        names=", ".join(expected),
    )

    def entries(parsed: Any) -> list[dict[str, Any]]:
        given: dict[str, Any] = {}
        for entry in parsed["returns"]:
            given.setdefault(entry["name"], entry["schema"])
        return [{"name": name, "schema": given.get(name)} for name in expected]

    def check(aligned: Sequence[dict[str, Any]], accepted: Sequence[ToolSpec]) -> list[Checked[ToolSpec]]:
        return _checked(aligned, tools=by_name, fixed=[*fixed, *accepted], earlier=earlier)

    def repair(failed: Sequence[Checked[ToolSpec]], accepted: Sequence[ToolSpec]) -> str:
        expected[:] = [checked.label for checked in failed]  # the repair reply is read for these tools only
        earlier.update((checked.label, checked) for checked in failed)
        return render_prompt("return_schemas_repair", failures=describe_failures(failed), names=", ".join(expected))

    batch = await generate_items(
        model,
        [UserMessage(content=prompt)],
        RETURNS_FORMAT,
        entries=entries,
        check=check,
        repair_instruction=repair,
        seed=seed,
    )
    return _every_tool(tools, batch)


def _checked(
    entries: Sequence[dict[str, Any]],
    *,
    tools: dict[str, ToolSpec],
    fixed: Sequence[ToolSpec],
    earlier: dict[str, Checked[ToolSpec]],
) -> list[Checked[ToolSpec]]:
    """Each ``{"name", "schema"}`` entry's verdict: the schema alone first, then its field types against the
    domain: the types of ``fixed`` (every tool's parameters, and returns already set) win; among new
    schemas that disagree, the type most tools use wins, and a tie fails them all. A tool the repair reply
    leaves out keeps what it submitted and failed for before (``earlier``)."""
    shapes = [_shape_problems(tools[entry["name"]], entry["schema"]) for entry in entries]
    candidates = [
        tools[entry["name"]].model_copy(update={"returns": entry["schema"]})
        for entry, problems in zip(entries, shapes, strict=True)
        if not problems
    ]
    settled = _field_types([*tools.values()], returns_of=fixed)
    proposed = _field_types([], returns_of=candidates)
    checked: list[Checked[ToolSpec]] = []
    for entry, problems in zip(entries, shapes, strict=True):
        tool = tools[entry["name"]]
        before = earlier.get(tool.name)
        if entry["schema"] is None and before is not None:
            checked.append(Checked(before.entry, tool.name, None, [*before.reasons, LEFT_OUT]))
            continue
        reasons = problems or _conflicts(entry["schema"], settled, proposed)
        returns = None if reasons else tool.model_copy(update={"returns": entry["schema"]})
        checked.append(Checked(entry, tool.name, returns, reasons))
    return checked


def field_type_conflicts(tools: Sequence[ToolSpec]) -> list[str]:
    """Every field name that has two JSON types across ``tools`` (parameters and return schemas), explained."""
    types = _field_types(tools, returns_of=tools)
    return [
        f"field {field!r} is " + " but ".join(f"{kind} in {', '.join(places)}" for kind, places in kinds.items())
        for field, kinds in sorted(types.items())
        if len(kinds) > 1
    ]


def _field_types(parameters_of: Sequence[ToolSpec], *, returns_of: Sequence[ToolSpec]) -> FieldTypes:
    """Where each field name gets each type, in the parameters of some tools and the returns of others."""
    types: FieldTypes = defaultdict(lambda: defaultdict(list))
    for what, sources in (("parameters", parameters_of), ("returns", returns_of)):
        for tool in sources:
            schema = tool.parameters if what == "parameters" else tool.returns
            for field, kind in dict.fromkeys(_typed_fields(schema)):
                types[field][kind].append(f"{tool.name} {what}")
    return types


def _typed_fields(schema: Any) -> Iterator[tuple[str, str]]:
    """``(name, type)`` of every typed property, walking nested objects and array items."""
    if not isinstance(schema, dict):
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            kind = json_type(sub)
            if kind is not None:
                yield name, kind
            yield from _typed_fields(sub)
    yield from _typed_fields(schema.get("items"))


def _shape_problems(tool: ToolSpec, schema: Any) -> list[str]:
    if schema is None:
        return ["no return schema was given for this tool"]
    if problem := json_schema_problem(schema, "the schema"):
        return [problem]
    kind = json_type(schema) or "not given"
    if tool.name.startswith(ARRAY_PREFIXES) and kind != "array":
        return [f'{tool.name} searches or lists, so it returns "type": "array" of records, not {kind}']
    if tool.name.startswith(OBJECT_PREFIXES) and kind != "object":
        return [f'{tool.name} gets one record, so it returns "type": "object", not {kind}']
    return []


def _conflicts(schema: dict[str, Any], settled: FieldTypes, proposed: FieldTypes) -> list[str]:
    """Why the schema's field types disagree with the domain's, one reason per field."""
    reasons = []
    for field, kind in dict.fromkeys(_typed_fields(schema)):
        if field in settled:
            allowed = set(settled[field])
            elsewhere = settled[field]
        else:
            votes = Counter({other: len(places) for other, places in proposed[field].items()})
            (leader, top), *rest = votes.most_common()
            allowed = {leader} if not rest or rest[0][1] < top else set()
            elsewhere = proposed[field]
        if kind in allowed:
            continue
        others = "; ".join(f"{other} in {', '.join(places)}" for other, places in elsewhere.items() if other != kind)
        reasons.append(f"field {field!r} is {kind} here but {others}; give it one type across the domain")
    return reasons


def _every_tool(tools: Sequence[ToolSpec], batch: ItemBatch[ToolSpec]) -> ItemBatch[ToolSpec]:
    """All tools in input order with the schemas that passed; a tool left without one is in ``rejected``."""
    schemas = {tool.name: tool.returns for tool in batch.items}
    items = [
        tool if tool.returns is not None else tool.model_copy(update={"returns": schemas.get(tool.name)})
        for tool in tools
    ]
    rejected = list(batch.rejected)
    named = {rejection.label for rejection in rejected}
    rejected += [
        Rejection(label=tool.name, reasons=["no return schema was predicted", *batch.errors])
        for tool in items
        if tool.returns is None and tool.name not in named
    ]
    return ItemBatch(items=items, rejected=rejected, repairs=batch.repairs, errors=batch.errors)
