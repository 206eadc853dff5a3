"""Tool specifications for a domain's questions, in OpenAI function format, checked before use.

A question asks the model for the tools that would answer it; tools the domain already has are shown so
they are reused by name instead of reinvented. Every proposed tool passes the same checks (shared with
tool expansion): a snake_case name unique in the domain, a real description, parameters that are a valid
object schema whose properties all have a type and a description, ``required`` within ``properties``, and
``enum`` only for closed sets. A proposal equal to a known tool by name and signature *is* that tool.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from dialforge.actors.generators.item_repair import (
    Check,
    Checked,
    ItemBatch,
    Rejection,
    describe_failures,
    generate_items,
)
from dialforge.generation_checks.tools import describe_tools
from dialforge.json_schema.checks import json_schema_problem
from dialforge.llm.completion import ResponseSchema
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import BATCH_ITEMS, DESCRIPTION_CHARS, NAME_CHARS
from dialforge.model.domain import Domain
from dialforge.model.messages import UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_prompt

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MIN_DESCRIPTION_CHARS = 20
MAX_ENUM_VALUES = 25
MAX_TOOLS_PER_QUESTION = 8
OPEN_VALUE_SUFFIXES = ("id", "name", "email", "date", "time", "query")
"""Properties named like this hold open values (ids, names, dates...), so an ``enum`` on them is a mistake."""


def tools_reply_format(name: str, **extra_fields: dict[str, Any]) -> ResponseSchema:
    """A reply holding a list of tools, ``{"tools": [{name, description, parameters, ...}]}``, every field
    required; only the shape, so that a wrong value costs its own tool, not the reply."""
    fields: dict[str, dict[str, Any]] = {
        "name": {"type": "string", "maxLength": NAME_CHARS},
        "description": {"type": "string", "maxLength": DESCRIPTION_CHARS},
        "parameters": {"type": "object"},
        **extra_fields,
    }
    item = {"type": "object", "properties": fields, "required": list(fields)}
    return ResponseSchema(
        name=name,
        json_schema={
            "type": "object",
            "properties": {"tools": {"type": "array", "maxItems": BATCH_ITEMS, "items": item}},
            "required": ["tools"],
        },
    )


TOOLS_FORMAT = tools_reply_format("tool_specs")
"""A tool-spec or tool-expansion reply: ``{"tools": [{name, description, parameters}]}``; only the shape,
so that a wrong value costs its own tool, not the reply."""

Signature = dict[str, str]
"""A tool's parameter names with their JSON types: what makes two tools of one name the same tool."""

ExtraRule = Callable[[ToolSpec], list[str]]
"""A stage's own rule on top of the shared checks: the reasons a well-formed tool is still unwanted."""


async def generate_tool_specs(
    model: ChatModel, domain: Domain, question: str, *, known: Sequence[ToolSpec], seed: int = 0
) -> ItemBatch[ToolSpec]:
    """The tools needed to answer ``question``, each once: known tools reused as they are, new ones checked.

    ``known`` is every tool the domain has so far (seed tools and those of earlier questions). A new tool
    whose name is known with another signature is rejected with the reason; one repair round.
    """
    prompt = render_prompt(
        "tool_specs",
        domain=domain.name,
        description=domain_description(domain),
        known_tools=describe_tools(known) or "(none yet)",
        question=question,
    )

    def check(entries: Sequence[Any], accepted: Sequence[ToolSpec]) -> list[Checked[ToolSpec]]:
        return check_tool_entries(entries, known=known, accepted=accepted, reuse_known=True)

    return await generate_tool_batch(model, prompt, "tool_specs_repair", check, MAX_TOOLS_PER_QUESTION, seed)


async def generate_tool_batch(
    model: ChatModel, prompt: str, repair_prompt: str, check: Check[ToolSpec], limit: int, seed: int
) -> ItemBatch[ToolSpec]:
    """Ask for ``{"tools": [...]}``, check, repair once with ``repair_prompt``, merge exact repeats."""

    def repair(failed: Sequence[Checked[ToolSpec]], accepted: Sequence[ToolSpec]) -> str:
        return render_prompt(
            repair_prompt,
            failures=describe_failures(failed),
            count=len(failed),
            kept=", ".join(tool.name for tool in accepted) or "none",
        )

    batch = await generate_items(
        model,
        [UserMessage(content=prompt)],
        TOOLS_FORMAT,
        entries=lambda parsed: parsed["tools"],
        check=check,
        repair_instruction=repair,
        limit=limit,
        seed=seed,
    )
    batch.items, _ = merge_tool_specs(batch.items)  # the checks let through only exact repeats
    return batch


def merge_tool_specs(specs: Sequence[ToolSpec]) -> tuple[list[ToolSpec], list[Rejection]]:
    """One tool per name, in first-seen order: repeats with the same signature merge (keeping the longer
    description); a later tool reusing a name with another signature is rejected with the reason."""
    merged: dict[str, ToolSpec] = {}
    rejected = []
    for spec in specs:
        kept = merged.get(spec.name)
        if kept is None:
            merged[spec.name] = spec
        elif signature(kept) != signature(spec):
            rejected.append(
                Rejection(label=spec.name, reasons=[name_taken(kept)], submitted=spec.model_dump(exclude_none=True))
            )
        elif len(spec.description) > len(kept.description):
            merged[spec.name] = spec
    return list(merged.values()), rejected


def check_tool_entries(
    entries: Sequence[dict[str, Any]],
    *,
    known: Sequence[ToolSpec],
    accepted: Sequence[ToolSpec],
    reuse_known: bool,
    extra_rule: ExtraRule | None = None,
) -> list[Checked[ToolSpec]]:
    """Every proposed tool with its verdict, in order, given the domain's tools and those accepted so far.

    A proposal with a known name and the same signature becomes the known tool when ``reuse_known``
    (asking for the tools a question needs) and is rejected as a repeat otherwise (asking for new tools).
    """
    existing = {tool.name: tool for tool in known}
    taken = {tool.name: tool for tool in accepted}
    checked = []
    for number, entry in enumerate(entries, start=1):
        name, description, parameters = entry.get("name"), entry.get("description"), entry.get("parameters")
        label = name if isinstance(name, str) and name else f"tool {number}"
        reasons = parameter_problems(parameters)
        schema = parameters if isinstance(parameters, dict) and not reasons else None
        previous = existing.get(label) or taken.get(label)
        if previous is not None and schema is not None and signature_of(schema) == signature(previous):
            if reuse_known or label not in existing:
                checked.append(Checked(entry, label, previous))
            else:
                checked.append(Checked(entry, label, None, [f"{label} repeats an existing tool; propose a new one"]))
            continue
        reasons = name_problems(name) + ([name_taken(previous)] if previous else []) + reasons
        reasons += description_problems(description)
        if reasons or schema is None or not isinstance(description, str):
            checked.append(Checked(entry, label, None, reasons))
            continue
        spec = ToolSpec(name=label, description=description.strip(), parameters=schema)
        if extra_rule is not None and (reasons := extra_rule(spec)):
            checked.append(Checked(entry, label, None, reasons))
            continue
        taken[label] = spec
        checked.append(Checked(entry, label, spec))
    return checked


def name_problems(name: Any) -> list[str]:
    if not isinstance(name, str) or not name:
        return ["the tool has no name"]
    if SNAKE_CASE.match(name):
        return []
    return [
        f"name {name!r} is not snake_case: lower-case letters, digits and '_', starting with a letter, "
        "at most 64 characters"
    ]


def description_problems(description: Any) -> list[str]:
    length = len(description.strip()) if isinstance(description, str) else 0
    if length >= MIN_DESCRIPTION_CHARS:
        return []
    return [
        f"the description has {length} characters; write at least {MIN_DESCRIPTION_CHARS}: what the tool does, "
        "when to use it and what it returns"
    ]


def parameter_problems(parameters: Any) -> list[str]:
    """Why ``parameters`` is not a usable object schema of typed, described, properly enumerated properties."""
    if not isinstance(parameters, dict):
        return ["parameters must be a JSON schema object"]
    if problem := json_schema_problem(parameters, "parameters"):
        return [problem]
    if parameters.get("type") != "object":
        return ['parameters must be a JSON schema with "type": "object"']
    properties = parameters.get("properties", {})
    problems = []
    missing = [name for name in parameters.get("required", []) if name not in properties]
    if missing:
        problems.append(f"required names parameters that are not in properties: {missing}")
    for name, schema in properties.items():
        if not isinstance(schema, dict):
            problems.append(f"parameter {name!r} must be a schema object with a type and a description")
            continue
        if "type" not in schema:
            problems.append(f"parameter {name!r} has no type")
        if not (isinstance(schema.get("description"), str) and schema["description"].strip()):
            problems.append(f"parameter {name!r} has no description: say what the value is and where it comes from")
        problems += _enum_problems(name, schema.get("enum"))
    return problems


def _enum_problems(name: str, enum: Any) -> list[str]:
    if not isinstance(enum, list):
        return []
    if name.lower().endswith(OPEN_VALUE_SUFFIXES):
        return [
            f"parameter {name!r} has an enum, but ids, names, emails, dates, times and queries are open values; "
            "drop the enum and describe the value instead"
        ]
    if len(enum) > MAX_ENUM_VALUES:
        return [
            f"parameter {name!r} has an enum of {len(enum)} values; an enum is for a small closed set "
            f"(at most {MAX_ENUM_VALUES}), otherwise describe the value instead"
        ]
    return []


def signature(tool: ToolSpec) -> Signature:
    return signature_of(tool.parameters)


def signature_of(parameters: dict[str, Any]) -> Signature:
    """Parameter name -> JSON type (``a|b`` for several, ``any`` for none), from a checked parameters schema."""
    return {name: json_type(schema) or "any" for name, schema in parameters.get("properties", {}).items()}


def json_type(schema: Any) -> str | None:
    """The JSON type a schema declares, ``null`` left out (nullable is not another type); ``None`` if none."""
    declared = schema.get("type") if isinstance(schema, dict) else None
    types = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    named = sorted({kind for kind in types if isinstance(kind, str) and kind != "null"})
    return "|".join(named) or None


def name_taken(tool: ToolSpec) -> str:
    shown = ", ".join(f"{name}: {kind}" for name, kind in signature(tool).items())
    return f"name {tool.name} is taken by a tool with parameters [{shown}]"


def domain_description(domain: Domain) -> str:
    return domain.description.strip() or "(no description given: go by the name)"
