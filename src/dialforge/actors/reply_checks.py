"""What a role's reply must not do beyond its format, checked in the one repair round (``RequestOptions.check``):
a reply that copies a prompt's example or placeholder is an output problem (``copied_text``), sent back once
with the reason and counted like any other."""

from __future__ import annotations

from typing import Any

from dialforge.generation_checks.copied_text import copied_reason
from dialforge.llm.completion import OutputProblem, ReplyCheck
from dialforge.prompts import prompt_examples


def copied_text(*fields: str) -> ReplyCheck:
    """A check of the reply's text or, for a structured reply, of the named fields of its JSON."""

    def check(completion: Any) -> OutputProblem | None:
        written = completion.content if not fields else [completion.parsed.get(name) for name in fields]
        copy = prompt_examples().copied_in_any(written)
        return OutputProblem("copied_text", f"the reply {copied_reason(copy)}") if copy else None

    return check
