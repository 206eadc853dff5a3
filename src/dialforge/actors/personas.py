"""Personas: how the simulated user writes and behaves, sampled per dialogue (beyond arXiv 2601.08225).

The paper's simulator always sounds like the same polite customer; a small library of styles makes the
agent meet terse, chatty, impatient and error-prone users too. A persona changes the manner only: the
goal, the behaviour rules and the facts the user may state stay the same.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from dialforge.prompts import prompt_sections, render_section


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="recorded with the dialogue (DialogueState.persona)")
    description: str = Field(min_length=1, description="how this person writes and behaves, addressed to them")


DEFAULT_PERSONAS_PROMPT = "personas"
"""The packaged prompt whose sections are the default personas."""
DEFAULT_PERSONAS: tuple[Persona, ...] = tuple(
    Persona(name=name, description=render_section(DEFAULT_PERSONAS_PROMPT, name))
    for name in prompt_sections(DEFAULT_PERSONAS_PROMPT)
)
"""The library a run samples from when its config names no personas of its own: one persona per section, its
name the section's."""


def pick_persona(personas: Sequence[Persona], seed: int) -> Persona | None:
    """The persona of the dialogue with ``seed``: the same for the same seed, ``None`` for an empty library.

    A seeded generator of its own, rather than ``seed % len``, so that the persona is not in lockstep with
    whatever else the dialogue seed chooses.
    """
    if not personas:
        return None
    return personas[random.Random(f"persona:{seed}").randrange(len(personas))]


def persona_named(name: str, personas: Sequence[Persona] = DEFAULT_PERSONAS) -> Persona:
    """The persona a stored dialogue records by name, for resuming it."""
    for persona in personas:
        if persona.name == name:
            return persona
    raise KeyError(f"no persona named {name!r}; the personas are {[p.name for p in personas]}")
