"""User questions for a domain: what people ask, from which the domain's tools are derived.

Questions come first because tools written for real requests are the tools an agent needs. Each question
must read as a request a user would type: not a tool name, no words about how the data is made (those leak
into dialogues), short, and not a near-duplicate of another question, since 25 rewordings of one need teach
nothing. Words that would be meta elsewhere are allowed when the domain itself is about them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dialforge.actors.generators.item_repair import Checked, ItemBatch, describe_failures, generate_items
from dialforge.actors.generators.tool_specs import domain_description
from dialforge.generation_checks.meta_words import domain_vocabulary, meta_words
from dialforge.generation_checks.near_duplicates import near_duplicate_of
from dialforge.generation_checks.tools import describe_tools
from dialforge.llm.completion import ResponseSchema
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import BATCH_ITEMS, ITEM_CHARS
from dialforge.model.domain import Domain
from dialforge.model.messages import UserMessage
from dialforge.prompts import render_prompt

MIN_WORDS = 3
MAX_CHARS = 300
LABEL_CHARS = 80

_IDENTIFIER = re.compile(r"(?<![\w@.])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w@])")
_TOOL_VERBS = ("get", "search", "list", "find", "create", "add", "update", "set", "delete", "remove", "cancel", "book")

QUESTIONS_FORMAT = ResponseSchema(
    name="questions",
    json_schema={
        "type": "object",
        "properties": {
            "questions": {
                "type": "array",
                "maxItems": BATCH_ITEMS,
                "items": {"type": "string", "maxLength": ITEM_CHARS},
            }
        },
        "required": ["questions"],
    },
)
"""A questions reply: ``{"questions": ["...", ...]}``."""


async def generate_questions(model: ChatModel, domain: Domain, *, count: int, seed: int = 0) -> ItemBatch[str]:
    """Up to ``count`` distinct user questions for ``domain``, inspired by its seed tools; one repair round."""
    prompt = render_prompt(
        "questions",
        domain=domain.name,
        description=domain_description(domain),
        seed_tools=describe_tools(domain.seed_tools) or "(none given: imagine what such an application offers)",
        count=count,
    )
    tool_names = {tool.name for tool in domain.seed_tools}
    vocabulary = domain_vocabulary(domain.name, domain.description, tools=domain.seed_tools)

    def check(entries: Sequence[Any], accepted: Sequence[str]) -> list[Checked[str]]:
        kept = list(accepted)
        checked: list[Checked[str]] = []
        for entry in entries:
            question = " ".join(entry.split())
            label = _label(question)
            reasons = question_problems(question, tool_names=tool_names, vocabulary=vocabulary)
            duplicate = None if reasons else near_duplicate_of(question, kept)
            if duplicate is not None:
                reasons.append(f"near-duplicate of: {duplicate}")
            if reasons:
                checked.append(Checked(entry, label, None, reasons))
            else:
                kept.append(question)
                checked.append(Checked(entry, label, question))
        return checked

    def repair(failed: Sequence[Checked[str]], accepted: Sequence[str]) -> str:
        return render_prompt("questions_repair", failures=describe_failures(failed), count=len(failed))

    return await generate_items(
        model,
        [UserMessage(content=prompt)],
        QUESTIONS_FORMAT,
        entries=lambda parsed: parsed["questions"],
        check=check,
        repair_instruction=repair,
        limit=count,
        seed=seed,
    )


def question_problems(question: str, *, tool_names: set[str], vocabulary: str) -> list[str]:
    """Why ``question`` (whitespace already collapsed) is not a request a user of the domain would type;
    ``vocabulary`` is the domain's own words (``domain_vocabulary``)."""
    if not question:
        return ["the question is empty"]
    problems = []
    if len(question.split()) < MIN_WORDS:
        problems.append(f"too short to be a request: write a full question or request of at least {MIN_WORDS} words")
    if len(question) > MAX_CHARS:
        problems.append(
            f"{len(question)} characters is too long: keep a question under {MAX_CHARS}, in one or two sentences"
        )
    for identifier in _IDENTIFIER.findall(question):
        if identifier in tool_names or identifier.split("_", 1)[0] in _TOOL_VERBS:
            problems.append(f"it names the tool {identifier}; users ask in their own words, not by tool name")
    for word in meta_words(question, vocabulary, from_user=True):
        problems.append(f"it says {word!r}, which a user of this application would not; write only what the user types")
    return problems


def _label(question: str) -> str:
    """How a rejected question is named in reports: its start (the whole text is in ``submitted``)."""
    if not question:
        return "(empty question)"
    return question if len(question) <= LABEL_CHARS else question[: LABEL_CHARS - 3] + "..."
