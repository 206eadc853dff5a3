"""The prompts models are given, kept as Markdown files in the package so they read (and diff) as text.

A prompt is a ``string.Template``: ``$name`` placeholders, ``$$`` for a literal dollar sign. JSON in the
examples needs no escaping, which is why this is not ``str.format``.

Two directives, resolved here and never seen by a model:

- ``{{include name}}`` is replaced by the text of ``fragments/name.md`` when the prompt is loaded, so a passage
  that several prompts share is written once. A fragment may include other fragments.
- ``{{section name}}``, on a line of its own, starts a section. A file of sections (``judge_parts.md``) holds the
  pieces of text the code chooses among at run time, each rendered with ``render_section``; the code keeps only
  the choice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from string import Template
from types import MappingProxyType

from dialforge.generation_checks.copied_text import PromptExamples

FRAGMENTS = "fragments"
"""The folder of the shared passages that ``{{include name}}`` pulls in."""
DIGEST_CHARS = 12
"""Hex digits of sha256 kept in a prompt digest: plenty to tell versions of one prompt apart."""

_INCLUDE = re.compile(r"\{\{include\s+([^{}\s]+)\s*\}\}")
_SECTION = re.compile(r"^\{\{section\s+([^{}\s]+)\s*\}\}[ \t]*$", re.MULTILINE)


def _files(folder: str = "") -> Traversable:
    files = resources.files(__package__)
    return files.joinpath(folder) if folder else files


def _names(folder: Traversable) -> list[str]:
    return sorted(p.name.removesuffix(".md") for p in folder.iterdir() if p.name.endswith(".md"))


def prompt_names() -> list[str]:
    """Every packaged prompt, fragments aside."""
    return _names(_files())


def fragment_names() -> list[str]:
    """Every fragment a prompt can include."""
    return _names(_files(FRAGMENTS))


@cache
def load_prompt(name: str) -> str:
    """The text of the packaged prompt ``name`` (``sql_tools`` reads ``sql_tools.md``), its fragments included."""
    resource = _files().joinpath(f"{name}.md")
    if not resource.is_file():
        raise ValueError(f"no prompt named {name!r}; the prompts are {prompt_names()}")
    return _with_fragments(resource.read_text(encoding="utf-8"), f"prompt {name!r}", ())


def _with_fragments(text: str, source: str, chain: tuple[str, ...]) -> str:
    """``text`` with each ``{{include name}}`` replaced by that fragment (itself resolved), without the newline
    that ends the fragment's file: the directive's own line break stays."""

    def include(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in chain:
            raise ValueError(f"fragment {name!r} includes itself: {' -> '.join((*chain, name))}")
        resource = _files(FRAGMENTS).joinpath(f"{name}.md")
        if not resource.is_file():
            raise ValueError(
                f"{source} includes the fragment {name!r}, but there is no {FRAGMENTS}/{name}.md; "
                f"the fragments are {fragment_names()}"
            )
        fragment = resource.read_text(encoding="utf-8").rstrip("\n")
        return _with_fragments(fragment, f"fragment {name!r}", (*chain, name))

    return _INCLUDE.sub(include, text)


@cache
def prompt_examples() -> PromptExamples:
    """The placeholders and examples of every packaged prompt, fragments included: what no reply may copy."""
    return PromptExamples.of(load_prompt(name) for name in prompt_names())


def render_prompt(name: str, /, **values: object) -> str:
    """The prompt with every placeholder filled; a missing value raises ``KeyError`` naming it."""
    return _substitute(load_prompt(name), values)


@cache
def prompt_sections(name: str) -> Mapping[str, str]:
    """The sections of the packaged prompt ``name``, a file of ``{{section key}}`` parts, by key and in order;
    each without the blank lines around it."""
    text = load_prompt(name)
    before, *parts = _SECTION.split(text)
    if before.strip() or not parts:
        raise ValueError(f"prompt {name!r} is not a file of sections: its first line must be {{{{section <name>}}}}")
    sections: dict[str, str] = {}
    for key, body in zip(parts[::2], parts[1::2], strict=True):
        if key in sections:
            raise ValueError(f"prompt {name!r} has two sections named {key!r}")
        sections[key] = body.strip("\n")
    return MappingProxyType(sections)


def render_section(name: str, section: str, /, **values: object) -> str:
    """One section of the file of sections ``name``, with its placeholders filled."""
    sections = prompt_sections(name)
    if section not in sections:
        raise ValueError(f"prompt {name!r} has no section {section!r}; its sections are {list(sections)}")
    return _substitute(sections[section], values)


def _substitute(template: str, values: Mapping[str, object]) -> str:
    return Template(template).substitute({key: str(value) for key, value in values.items()})


def prompt_digest(name: str) -> str:
    """A short sha256 of the prompt's text, fragments included: the same text always gives the same digest, so a
    record can name the version of each prompt it was made with."""
    return hashlib.sha256(load_prompt(name).encode()).hexdigest()[:DIGEST_CHARS]


def prompt_digests(names: Iterable[str]) -> dict[str, str]:
    """``prompt_digest`` of each prompt named, by name in sorted order (a name given twice appears once)."""
    return {name: prompt_digest(name) for name in sorted(set(names))}


def service_section(description: str) -> str:
    """The "The service" section for a domain's description, or nothing when there is none: the agent and the
    tool simulator then go by the domain's name alone."""
    text = description.strip()
    return f"\n{render_prompt('service_section', description=text).rstrip()}\n" if text else ""
