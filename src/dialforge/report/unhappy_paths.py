"""How a run covers the unhappy paths: goals per kind (``Task.kind``) and the injected tool faults, with what came
of them.

Goals are counted per kind where they were assigned, and completed where a kept dialogue completed them (a
dialogue's goals are completed in order, so its first ``tasks_completed``). A dialogue counts once under each kind
its goals have, with whether it was kept and the judge's verdict. Each injected fault is classed by what the agent
did next, read from the transcript: it made the same call again before the person spoke (``retried``), it answered
the person in words without doing so (``told_user``), or neither before the transcript ends (``unresolved``); and
counted by the verdict of its dialogue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

FaultHandling = Literal["retried", "told_user", "unresolved"]


class KindOutcome(BaseModel):
    """The goals of one kind and the dialogues holding them."""

    goals: int = Field(default=0, description="goals of this kind assigned")
    completed: int = Field(default=0, description="of them, completed in a kept dialogue")
    dialogues: int = Field(default=0, description="dialogues with a goal of this kind")
    kept: int = 0
    valid: int = 0
    invalid: int = 0


class FaultOutcome(BaseModel):
    """Injected faults, by what the agent did next."""

    injected: int = 0
    retried: int = 0
    told_user: int = 0
    unresolved: int = 0


class UnhappyPaths(BaseModel):
    goal_kinds: dict[str, KindOutcome] = Field(default_factory=dict, description="goal kind -> its goals, dialogues")
    faults: dict[str, FaultOutcome] = Field(default_factory=dict, description="fault kind -> how the faults went")
    fault_verdicts: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="handling -> verdict of the fault's dialogue (valid/invalid/unjudged) -> faults",
    )
    dialogues_with_faults: dict[str, int] = Field(
        default_factory=dict, description="verdict (valid/invalid/unjudged) -> dialogues with an injected fault"
    )


@dataclass(frozen=True, slots=True)
class DialogueUnhappyPaths:
    """What one record tells about its unhappy paths."""

    kinds: tuple[str, ...]
    """the kind of each goal assigned, in order (the dropped ones last)"""
    completed: int
    kept: bool
    verdict: str
    """valid, invalid or unjudged"""
    faults: tuple[tuple[str, FaultHandling], ...]
    """(fault kind, handling) per injected fault"""


def dialogue_unhappy_paths(record: Mapping[str, Any], *, completed: int, verdict: str) -> DialogueUnhappyPaths:
    """From a canonical record as a dict; a record written before kinds and faults has ordinary goals, no fault."""
    tasks = [*(record.get("tasks") or ()), *(record.get("tasks_dropped") or ())]
    messages = record.get("messages") or ()
    return DialogueUnhappyPaths(
        kinds=tuple(str(task.get("kind") or "ordinary") for task in tasks),
        completed=completed,
        kept=record.get("status", "completed") == "completed",
        verdict=verdict,
        faults=tuple(
            (str(fault.get("kind", "?")), fault_handling(messages, str(fault.get("call_id"))))
            for fault in record.get("faults") or ()
        ),
    )


def fault_handling(messages: Sequence[Mapping[str, Any]], call_id: str) -> FaultHandling:
    """What the agent did after the call ``call_id`` met a fault, before the person's next message."""
    call = next(
        (
            c
            for m in messages
            if m.get("role") == "assistant"
            for c in m.get("tool_calls") or ()
            if c.get("id") == call_id
        ),
        None,
    )
    answer = next(
        (i for i, m in enumerate(messages) if m.get("role") == "tool" and m.get("tool_call_id") == call_id), None
    )
    if call is None or answer is None:
        return "unresolved"
    same = _call_key(call)
    for message in messages[answer + 1 :]:
        if message.get("role") == "user":
            break
        if message.get("role") != "assistant":
            continue
        if any(_call_key(other) == same for other in message.get("tool_calls") or ()):
            return "retried"
        if not message.get("tool_calls") and (message.get("content") or "").strip():
            return "told_user"
    return "unresolved"


def unhappy_paths(dialogues: Iterable[DialogueUnhappyPaths]) -> UnhappyPaths:
    """The run's goals per kind and faults per kind and handling."""
    report = UnhappyPaths()
    for dialogue in dialogues:
        for index, kind in enumerate(dialogue.kinds):
            outcome = report.goal_kinds.setdefault(kind, KindOutcome())
            outcome.goals += 1
            outcome.completed += dialogue.kept and index < dialogue.completed
        for kind in dict.fromkeys(dialogue.kinds):
            outcome = report.goal_kinds[kind]
            outcome.dialogues += 1
            outcome.kept += dialogue.kept
            outcome.valid += dialogue.verdict == "valid"
            outcome.invalid += dialogue.verdict == "invalid"
        for kind, handling in dialogue.faults:
            fault = report.faults.setdefault(kind, FaultOutcome())
            fault.injected += 1
            setattr(fault, handling, getattr(fault, handling) + 1)
            verdicts = report.fault_verdicts.setdefault(handling, {})
            verdicts[dialogue.verdict] = verdicts.get(dialogue.verdict, 0) + 1
        if dialogue.faults:
            report.dialogues_with_faults[dialogue.verdict] = report.dialogues_with_faults.get(dialogue.verdict, 0) + 1
    report.goal_kinds = dict(sorted(report.goal_kinds.items(), key=lambda item: (item[0] != "ordinary", item[0])))
    report.faults = dict(sorted(report.faults.items()))
    return report


def _call_key(call: Mapping[str, Any]) -> tuple[str, Any]:
    """A call's tool and arguments, parsed when they are JSON so that spacing and key order do not matter."""
    function = call.get("function") or {}
    arguments = function.get("arguments") or ""
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = arguments
    return str(function.get("name")), orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)
