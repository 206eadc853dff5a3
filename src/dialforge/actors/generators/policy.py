"""The domain policy: the operating rules in the agent's system prompt (the stage after the tools).

A policy is what a real business gives its support staff: what they may do with the tools, what they
must confirm with the customer before changing anything, what to do when information is missing, and
what stays private. A policy must demand confirmation before every tool that changes data, and must not
use words that give away that it was generated (no real policy speaks of a "dataset").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dialforge.actors.generators.item_repair import Checked, ItemBatch, describe_failures, generate_items
from dialforge.actors.generators.tool_specs import domain_description
from dialforge.generation_checks.meta_words import domain_vocabulary, meta_words
from dialforge.generation_checks.tools import changes_data, describe_tools
from dialforge.llm.completion import ResponseSchema
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import LONG_TEXT_CHARS
from dialforge.model.domain import Domain
from dialforge.model.messages import UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_prompt

MIN_POLICY_CHARS = 80
MAX_POLICY_CHARS = 1600
"""A short list of rules; below the reply's bound (``LONG_TEXT_CHARS``), so a policy a little too long is sent
back by the check, which says why, and the bound only stops one that runs on."""

POLICY_FORMAT = ResponseSchema(
    name="domain_policy",
    json_schema={
        "type": "object",
        "properties": {"policy": {"type": "string", "maxLength": LONG_TEXT_CHARS}},
        "required": ["policy"],
        "additionalProperties": False,
    },
)
"""What a policy reply must be: ``{"policy": "..."}``."""

_CONFIRMATION = re.compile(r"\b(?:confirm|approv|agree|consent|permission|explicit (?:yes|ok))", re.IGNORECASE)


async def generate_policy(
    model: ChatModel, domain: Domain, tools: Sequence[ToolSpec], *, seed: int = 0
) -> ItemBatch[str]:
    """At most one policy for ``domain``, grounded in its tool names; checked, repaired once."""
    writes = [tool.name for tool in tools if changes_data(tool)]
    vocabulary = domain_vocabulary(domain.name, domain.description, tools=tools)
    prompt = render_prompt(
        "policy",
        domain=domain.name,
        description=domain_description(domain),
        tools=describe_tools(tools) or "(no tools)",
        writes=", ".join(writes) or "none",
        min_chars=MIN_POLICY_CHARS,
        max_chars=MAX_POLICY_CHARS,
    )

    def check(entries: Sequence[Any], accepted: Sequence[str]) -> list[Checked[str]]:
        return [_checked(entry, writes, vocabulary) for entry in entries]

    def repair(failed: Sequence[Checked[str]], accepted: Sequence[str]) -> str:
        return render_prompt("policy_repair", failures=describe_failures(failed))

    return await generate_items(
        model,
        [UserMessage(content=prompt)],
        POLICY_FORMAT,
        entries=lambda parsed: [parsed["policy"]],
        check=check,
        repair_instruction=repair,
        limit=1,
        seed=seed,
    )


def _checked(policy: str, writes: Sequence[str], vocabulary: str) -> Checked[str]:
    text = policy.strip()
    reasons = []
    if len(text) < MIN_POLICY_CHARS:
        reasons.append(
            f"the policy is {len(text)} characters long; write at least {MIN_POLICY_CHARS}: what the agent may do, "
            "what it must confirm first, how it handles missing information, and what stays private"
        )
    if len(text) > MAX_POLICY_CHARS:
        reasons.append(
            f"the policy is {len(text)} characters long; keep it within {MAX_POLICY_CHARS} (a short list of rules)"
        )
    if writes and not _CONFIRMATION.search(text):
        reasons.append(
            "the policy never says the agent must confirm a change with the user before making it, and these "
            f"tools change data: {', '.join(writes)}; add that rule"
        )
    if found := meta_words(text, vocabulary):
        reasons.append(
            f"the policy uses words that give away a generated setting ({', '.join(found)}); write the rules "
            "as the business itself would"
        )
    return Checked(policy, "policy", text if not reasons else None, reasons)
