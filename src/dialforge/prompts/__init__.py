"""The prompts models are given, kept as Markdown files in the package so they read (and diff) as text.

A prompt is a ``string.Template``: ``$name`` placeholders, ``$$`` for a literal dollar sign. JSON in the
examples needs no escaping, which is why this is not ``str.format``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def load_prompt(name: str) -> str:
    """The text of the packaged prompt ``name`` (``sql_tools`` reads ``sql_tools.md``)."""
    resource = resources.files(__package__).joinpath(f"{name}.md")
    if not resource.is_file():
        available = sorted(
            p.name.removesuffix(".md") for p in resources.files(__package__).iterdir() if p.name.endswith(".md")
        )
        raise ValueError(f"no prompt named {name!r}; the prompts are {available}")
    return resource.read_text(encoding="utf-8")


def render_prompt(name: str, **values: object) -> str:
    """The prompt with every placeholder filled; a missing value raises ``KeyError`` naming it."""
    return Template(load_prompt(name)).substitute({key: str(value) for key, value in values.items()})


def service_section(description: str) -> str:
    """The "## The service" section for a domain's description, or nothing when there is none: the agent and
    the tool simulator then go by the domain's name alone."""
    text = description.strip()
    return f"\n## The service\n\n{text}\n" if text else ""
