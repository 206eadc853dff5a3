"""Personas: how the simulated user writes and behaves, sampled per dialogue (issue 5, beyond the paper).

The paper's simulator always sounds like the same polite customer; a small library of styles makes the
agent meet terse, chatty, impatient and error-prone users too. A persona changes the manner only: the
goal, the behaviour rules and the facts the user may state stay the same.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="recorded with the dialogue (DialogueState.persona)")
    description: str = Field(min_length=1, description="how this person writes and behaves, addressed to them")


DEFAULT_PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="terse",
        description=(
            "You write as little as possible: short fragments, no greetings or small talk, rarely more than one "
            'sentence ("order 10250, status?"). You still give the details the agent asks for.'
        ),
    ),
    Persona(
        name="chatty",
        description=(
            "You are friendly and talkative: you greet warmly, add a little context about why you need something "
            '("it\'s a birthday present, so timing matters") and react to answers with a few words of your own. '
            "Your requests stay clear, and you still make one or two of them per message."
        ),
    ),
    Persona(
        name="non_native_speaker",
        description=(
            "English is your second language: you write simple sentences with small, natural mistakes in articles, "
            'prepositions and verb tenses ("I want know when arrive my order"), and now and then ask the agent to '
            "say something more simply. You are always understandable, and names, ids, dates and amounts are "
            "always exactly right."
        ),
    ),
    Persona(
        name="impatient",
        description=(
            'You are in a hurry: you get straight to the point, push for results ("can you just do it?") and show '
            "mild annoyance at long answers or extra questions, but you stay polite, answer what the agent needs "
            "and still confirm before anything is changed."
        ),
    ),
    Persona(
        name="detail_oriented",
        description=(
            "You are careful and precise: you read every result closely, ask about numbers, dates and statuses that "
            'look unclear, and want changes confirmed back to you ("so the new date is the 14th, correct?") '
            "before you move on."
        ),
    ),
    Persona(
        name="correctable_mistake",
        description=(
            "You sometimes get a detail wrong at first: you mix up a digit of an id or a date that your goal gives "
            "you, and when the agent's result does not look right (the wrong record, nothing found) you notice and "
            "give the right value. Only ever garble a detail your goal states, correct it within the next message "
            "or two, and never invent facts your goal does not give."
        ),
    ),
)
"""The library a run samples from when its config names no personas of its own."""


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
