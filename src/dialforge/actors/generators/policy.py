"""The domain policy: the operating rules in the agent's system prompt (issue 4, stage 5).

A policy is what a real business gives its support staff: what they may do with the tools, what they
must confirm with the customer before changing anything, what to do when information is missing, and
what stays private. Two judgements made here are shared with the task stages: which tools change data
(a policy must demand confirmation before them, a task using them needs checks), and which words give
away that a text was generated (no real policy or user goal speaks of a "dataset").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from dialforge.actors.generators.tool_specs import describe_tools, domain_description
from dialforge.environments.sql.environment import parse_statement
from dialforge.llm.completion import ResponseSchema
from dialforge.llm.item_repair import Checked, ItemBatch, describe_failures, generate_items
from dialforge.llm.protocol import ChatModel
from dialforge.model.domain import Domain
from dialforge.model.messages import UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.prompts import render_prompt

MIN_POLICY_CHARS = 80
MAX_POLICY_CHARS = 2500

POLICY_FORMAT = ResponseSchema(
    name="domain_policy",
    json_schema={
        "type": "object",
        "properties": {"policy": {"type": "string"}},
        "required": ["policy"],
        "additionalProperties": False,
    },
)
"""What a policy reply must be: ``{"policy": "..."}``."""

WRITE_VERBS = frozenset(
    (
        "create", "add", "insert", "new", "register", "enroll", "book", "reserve", "schedule", "reschedule",
        "place", "submit", "send", "post", "issue", "open", "save", "update", "set", "change", "modify",
        "edit", "rename", "move", "assign", "transfer", "mark", "apply", "approve", "reject", "confirm",
        "renew", "upgrade", "downgrade", "activate", "deactivate", "enable", "disable", "block", "unblock",
        "subscribe", "unsubscribe", "pay", "refund", "charge", "redeem", "reset", "restore", "archive",
        "close", "delete", "remove", "cancel", "revoke", "void", "clear",
    )
)  # fmt: skip
"""First words of tool names that change data, for tools without SQL to read (``cancel_order``, ``addItem``)."""

_FIRST_WORD = re.compile(r"[_\-\s]|(?<=[a-z0-9])(?=[A-Z])")
_META_WORDS = re.compile(
    r"\b(data ?sets?|simulat\w*|training|synthetic|language models?|llms?|rubrics?|task definitions?)\b",
    re.IGNORECASE,
)
_CONFIRMATION = re.compile(r"\b(?:confirm|approv|agree|consent|permission|explicit (?:yes|ok))", re.IGNORECASE)


def changes_data(tool: ToolSpec) -> bool:
    """Whether calling the tool changes data: its SQL is an INSERT, UPDATE or DELETE, else its name's verb says so."""
    if tool.sql is not None:
        try:
            return isinstance(parse_statement(tool.sql), exp.Insert | exp.Update | exp.Delete)
        except ValueError:
            pass  # SQL that does not parse says nothing; the name still does
    return _FIRST_WORD.split(tool.name, maxsplit=1)[0].casefold() in WRITE_VERBS


def domain_vocabulary(domain: Domain, tools: Sequence[ToolSpec]) -> str:
    """The domain's own words (name, description, tool names and descriptions), case-folded.

    A meta word the domain itself uses is not meta there: "training" in a gym's ``book_training_session``.
    """
    texts = [domain.name, domain.description, *(f"{tool.name} {tool.description}" for tool in tools)]
    return "\n".join(texts).casefold()


def meta_words(text: str, vocabulary: str) -> list[str]:
    """The words in ``text`` that give away a generated setting (dataset, simulation, training...), sorted."""
    found = {match.group(0).casefold() for match in _META_WORDS.finditer(text)}
    return sorted(word for word in found if word not in vocabulary)


async def generate_policy(
    model: ChatModel, domain: Domain, tools: Sequence[ToolSpec], *, seed: int = 0
) -> ItemBatch[str]:
    """At most one policy for ``domain``, grounded in its tool names; checked, repaired once."""
    writes = [tool.name for tool in tools if changes_data(tool)]
    vocabulary = domain_vocabulary(domain, tools)
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
