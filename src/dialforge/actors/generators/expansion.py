"""Tool expansion: new tools that fill the functional gaps of a domain's tool set, or none.

Tools written question by question cover what those questions need and little else: often a way to find
a record but not to change it, or a write with no read to check it. The model looks at the whole set
and proposes complementary tools that act on the domain's data; trivial helpers (arithmetic,
formatting, unit conversion, the current date or time) are refused, since an agent needs no tool for them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dialforge.actors.generators.item_repair import Checked, ItemBatch
from dialforge.actors.generators.tool_specs import check_tool_entries, domain_description, generate_tool_batch
from dialforge.generation_checks.tools import describe_tools
from dialforge.llm.protocol import ChatModel
from dialforge.model.domain import Domain
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_prompt

TOOL_PREFIXES = ("get_", "list_", "search_", "create_", "update_", "delete_")

_TRIVIAL_HELPERS = {
    "arithmetic": re.compile(
        r"\b(arithmetic|calculator|math|maths|mathematical|(add|multiply|divide|subtract)s? (two |the )?numbers|"
        r"square root)\b"
    ),
    "formatting": re.compile(
        r"^format\b|\b(format|formats|formatting) (a |an |the )?(date|time|number|string|text|currency|price|"
        r"phone number|name)s?\b"
    ),
    "unit conversion": re.compile(
        r"\bunit conversion\b|\bconvert(s|ing)?\b.{0,40}\b(units?|celsius|fahrenheit|kilograms?|miles|"
        r"kilometers|kilometres|inches|centimeters|centimetres|liters|litres|gallons)\b"
    ),
    "current date or time": re.compile(
        r"^get (the )?(current|todays?) (date|time|datetime|date time|timestamp)\b|"
        r"^get (date|time|datetime|timestamp)\n|"
        r"\b(returns|gets|tells|gives) (the )?(current|today'?s) (date|time|date and time|timestamp)\b|"
        r"\bwhat time it is\b"
    ),
}
"""What trivial helpers are about, matched on the name (``_`` read as spaces) and the description."""


async def expand_tools(
    model: ChatModel, domain: Domain, tools: Sequence[ToolSpec], *, max_new: int = 10, seed: int = 0
) -> ItemBatch[ToolSpec]:
    """Up to ``max_new`` new tools that complement ``tools`` (the domain's whole set), each checked like a tool
    spec and also for a verb prefix and against trivial helpers; an empty batch when nothing is missing."""
    if max_new <= 0:
        return ItemBatch()
    prompt = render_prompt(
        "tool_expansion",
        domain=domain.name,
        description=domain_description(domain),
        tools=describe_tools(tools) or "(none yet)",
        max_new=max_new,
    )

    domain_text = f"{domain.name}\n{domain.description}".lower()

    def check(entries: Sequence[Any], accepted: Sequence[ToolSpec]) -> list[Checked[ToolSpec]]:
        return check_tool_entries(
            entries,
            known=tools,
            accepted=accepted,
            reuse_known=False,
            extra_rule=lambda tool: expansion_problems(tool, domain_text),
        )

    return await generate_tool_batch(model, prompt, "tool_expansion_repair", check, max_new, seed)


def expansion_problems(tool: ToolSpec, domain_text: str) -> list[str]:
    """Expansion's own rules: a verb prefix that says what the tool does, and no trivial helper (unless what
    makes it look like one is the domain's own subject, as "math" is for a math tutoring domain)."""
    reasons = []
    if not tool.name.startswith(TOOL_PREFIXES):
        reasons.append(f"name {tool.name} does not start with {', '.join(TOOL_PREFIXES[:-1])} or {TOOL_PREFIXES[-1]}")
    text = f"{tool.name.replace('_', ' ')}\n{tool.description}".lower()
    for about, pattern in _TRIVIAL_HELPERS.items():
        match = pattern.search(text)
        if match and match.group(0).strip() not in domain_text:
            reasons.append(f"{tool.name} is a trivial helper ({about}); propose tools that act on this domain's data")
            break
    return reasons
