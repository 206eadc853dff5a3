"""Text a model copied from its prompt's examples or placeholders instead of writing its own.

A weak model given ``{"user_message": "<your next chat message>", ...}`` may send exactly that, and a judge
shown ``{"reasoning": "The person asked for ... In [4] the assistant ...", ...}`` may return it as its
reasoning. What counts as copied is read from the prompts themselves, so a new prompt needs no list kept
beside it:

- a placeholder: a phrase of two or more words between angle brackets (``<your next chat message>``); a
  single word in brackets is a tag (``<policy>``), which a reply may have its own reasons to write;
- an elided example: a string in a JSON example that leaves its content out with ``...``
  (``"T1.C1 ..."``, ``"SELECT ..."``): nobody writes that as meant;
- a worked example: a string of at least ``EXAMPLE_WORDS`` words in a JSON example, given whole as a text
  (a short one, such as "Yes, please go ahead.", is what anyone might say).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dialforge.json_schema.embedded import embedded_json

EXAMPLE_WORDS = 15
"""Words from which a whole example string, written again as a whole text, counts as copied: a shorter one (a
tool description such as "Move an appointment to a free slot.") may well be what a domain needs."""
ELISION = "..."

_PLACEHOLDER = re.compile(r"<([^<>\n$`]*\w[^<>\n$`]*\s[^<>\n$`]*\w[^<>\n$`]*)>")
_SPACES = re.compile(r"\s+")


def _normal(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def strings_in(value: Any) -> Iterator[str]:
    """Every string value (not key) in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


@dataclass(frozen=True)
class PromptExamples:
    """The placeholders and example strings of a set of prompts, and whether a text copies one."""

    placeholders: frozenset[str]
    elided: frozenset[str]
    worked: frozenset[str]

    @classmethod
    def of(cls, prompts: Iterable[str]) -> PromptExamples:
        placeholders: set[str] = set()
        elided: set[str] = set()
        worked: set[str] = set()
        for prompt in prompts:
            placeholders.update(f"<{_normal(m.group(1))}>" for m in _PLACEHOLDER.finditer(prompt))
            for example in embedded_json(prompt):
                for text in strings_in(example):
                    normal = _normal(text)
                    if ELISION in normal and normal.replace(ELISION, "").strip(" .,;:-"):
                        elided.add(normal)
                    elif len(normal.split()) >= EXAMPLE_WORDS:
                        worked.add(normal)
        return cls(frozenset(placeholders), frozenset(elided), frozenset(worked))

    def copied_in(self, text: str) -> str | None:
        """The placeholder or example of the prompts that ``text`` copies, or ``None``."""
        normal = _normal(text)
        if not normal:
            return None
        for placeholder in sorted(self.placeholders):
            if placeholder in normal:
                return placeholder
        for example in sorted(self.elided):
            if example in normal:
                return example
        return normal if normal in self.worked else None

    def copied_in_any(self, value: Any) -> str | None:
        """The first copy in any string of a JSON value (a generated item, a parsed reply)."""
        return next((copy for text in strings_in(value) if (copy := self.copied_in(text))), None)


def copied_reason(copy: str) -> str:
    """What the repair round tells the model about a copy, after its subject ("the reply ", "it ")."""
    return (
        f"copies {copy!r} from the instructions' examples or placeholders instead of writing your own text: "
        "the examples only show the form; write the actual content for this case"
    )
