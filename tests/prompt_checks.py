"""Assertions about prompts that hold whatever their wording: the data a prompt carries, and which packaged
prompt it was rendered from with which values.

A test that pins a prompt's sentences breaks whenever the prompt is improved; these read the prompt the way
the code builds it instead, so a test fails only when the data or the choice of prompt is wrong.
"""

from __future__ import annotations

import re
from importlib import resources
from string import Template

import dialforge.prompts as prompts
from dialforge.llm.scripted import ScriptedModel
from dialforge.model.messages import UserMessage
from dialforge.prompts import load_prompt, prompt_sections


def assert_mentions(prompt: str, *values: object) -> None:
    """Every value occurs in the prompt (as text: ``str(value)``)."""
    missing = [str(value) for value in values if str(value) not in prompt]
    assert not missing, f"the prompt does not mention {missing}:\n{prompt}"


def assert_in_order(prompt: str, *values: object) -> None:
    """Every value occurs in the prompt, each after the one before it."""
    position = 0
    for value in map(str, values):
        found = prompt.find(value, position)
        assert found >= 0, f"{value!r} does not occur after position {position} of the prompt:\n{prompt}"
        position = found + len(value)


def fragment_text(name: str) -> str:
    """The shared fragment ``name`` as every prompt that includes it shows it: whatever its wording, a prompt that
    holds this text was given that passage."""
    return (resources.files(prompts) / prompts.FRAGMENTS / f"{name}.md").read_text(encoding="utf-8").rstrip("\n")


def prompt_of(model: ScriptedModel, request: int = 0) -> str:
    """The text of the last message of the ``request``-th request the scripted model received: the prompt."""
    message = model.requests[request].messages[-1]
    assert isinstance(message, UserMessage)
    return message.content


def filled_in(prompt: str, name: str, section: str | None = None) -> dict[str, str]:
    """The values the packaged prompt ``name`` (or one ``section`` of it) was filled in with to give ``prompt``, by
    placeholder; fails when ``prompt`` is not a rendering of it. Of two adjacent placeholders (``$a$b``) the first
    reads as short as it can be, so read those two through ``assert_mentions`` instead."""
    template = load_prompt(name) if section is None else prompt_sections(name)[section]
    parts = _pattern_parts(template)
    match = re.fullmatch("".join(pattern for pattern, _ in parts), prompt, re.DOTALL)
    if match is None:
        lacking = next(
            (text for end, (_, text) in enumerate(parts, 1) if not _matches_start(parts[:end], prompt)),
            "(nothing: the prompt goes on after the template ends)",
        )
        source = f"section {section!r} of {name!r}" if section else repr(name)
        raise AssertionError(f"the prompt is not the packaged prompt {source}; it lacks:\n{lacking}\n\n{prompt}")
    return match.groupdict()


def data_shown(prompt: str, name: str) -> dict[str, str]:
    """The schema and data view a goal writer's prompt ``name`` shows of a database."""
    return filled_in(filled_in(prompt, name)["data_section"], "tasks_parts", "database")


def _pattern_parts(template: str) -> list[tuple[str, str]]:
    """The template as a regular expression in parts, each with the template text it stands for: literal text,
    and a group per placeholder (a back-reference where the placeholder repeats); ``$$`` is a dollar sign."""
    parts, seen, end = [], set(), 0
    for match in Template.pattern.finditer(template):
        literal = template[end : match.start()]
        parts.append((re.escape(literal), literal))
        end = match.end()
        name = match.group("named") or match.group("braced")
        if name is None:
            parts.append((re.escape("$"), "$"))
        else:
            parts.append((f"(?P={name})" if name in seen else f"(?P<{name}>.*?)", f"${name}"))
            seen.add(name)
    parts.append((re.escape(template[end:]), template[end:]))
    return parts


def _matches_start(parts: list[tuple[str, str]], prompt: str) -> bool:
    return re.match("".join(pattern for pattern, _ in parts), prompt, re.DOTALL) is not None


_RULE_REFERENCE = re.compile(r"\brules? (\d+(?:(?:,\s*|\s+and\s+|\s+to\s+|\s*-\s*)\d+)*)", re.IGNORECASE)
_RULE_RANGE = re.compile(r"(\d+)\s*(?:to|-)\s*(\d+)")


def rule_numbers(text: str) -> set[int]:
    """The numbered rules a text refers to: "rule 1", "rules 2 to 4", "rules 2, 3 and 5"."""
    numbers: set[int] = set()
    for reference in _RULE_REFERENCE.findall(text):
        numbers.update(map(int, re.findall(r"\d+", reference)))
        for first, last in _RULE_RANGE.findall(reference):
            numbers.update(range(int(first), int(last) + 1))
    return numbers
