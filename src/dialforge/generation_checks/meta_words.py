"""Words that give away how a text was made, and the domain's own words that excuse them.

Generated policies, tasks and user messages must read as the real thing: no real business speaks of a
"dataset" or a "simulation". What a user writes (questions, the simulated user's messages) is held to more:
a person writing to a business does not speak of "tool calls", a "persona" or "the assistant" either. A word
the domain itself uses is not meta there: "training" at a gym offering ``book_training_session``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dialforge.model.tools import ToolSpec

_SETTING_WORDS = re.compile(
    r"\b(data ?sets?|simulat\w*|training|synthetic|language models?|llms?|rubrics?|task definitions?)\b",
    re.IGNORECASE,
)
"""Words about how the data is made: meta in any generated text."""

_ROLE_WORDS = re.compile(
    r"\b(assistant|chatbots?|as an ai|tool calls?|function calls?|system prompts?|subtasks?|is_task_complete|"
    r"personas?|role-?play\w*|(?:task|goal) (?:description|definition)s?)\b",
    re.IGNORECASE,
)
"""Words about the conversation's machinery: meta in what a user writes, fine in a policy for the agent."""


def domain_vocabulary(*texts: str, tools: Iterable[ToolSpec] = ()) -> str:
    """The words a domain uses itself, case-folded: ``texts`` (its name, description...) and every tool's
    name and description. ``meta_words`` lets through what this holds."""
    return "\n".join([*texts, *(f"{tool.name} {tool.description}" for tool in tools)]).casefold()


def meta_words(text: str, vocabulary: str, *, from_user: bool = False) -> list[str]:
    """The words in ``text`` that give away a generated setting and are not in ``vocabulary``, sorted;
    ``from_user`` (a question, a user's message) adds the words about the conversation's machinery."""
    patterns = (_SETTING_WORDS, _ROLE_WORDS) if from_user else (_SETTING_WORDS,)
    found = {match.group(0).casefold() for pattern in patterns for match in pattern.finditer(text)}
    return sorted(word for word in found if word not in vocabulary)
