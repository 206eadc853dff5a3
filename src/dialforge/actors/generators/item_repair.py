"""Asking a model for a list of items, checking each, and giving the bad ones one repair round.

Every generation stage (questions, tool specs, return schemas, tasks, SQL tools...) follows the same
policy: one bad item costs only itself. Items that fail their check are sent back once with their
reasons; what still fails is dropped and reported with the reasons; a model error ends the stage
with what was usable, recorded in ``errors``. Nothing here raises for bad model output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from dialforge.environments.sql.mentions import TableSpread
from dialforge.generation_checks.copied_text import copied_reason
from dialforge.llm.completion import OfflineAnswer, RequestOptions, ResponseSchema
from dialforge.llm.errors import ModelError
from dialforge.llm.protocol import ChatModel
from dialforge.model.messages import AssistantMessage, Message, UserMessage
from dialforge.model.usage import UsageByRole
from dialforge.prompts import prompt_examples

T = TypeVar("T")


class Rejection(BaseModel):
    """An item that was dropped, with every reason, as the model submitted it."""

    model_config = ConfigDict(extra="forbid")

    label: str
    reasons: list[str]
    submitted: Any = None


@dataclass(frozen=True)
class Checked(Generic[T]):
    """One entry of a reply: the item it became (None when it failed) and why it failed."""

    entry: Any
    label: str
    item: T | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.item is not None and not self.reasons

    def rejection(self) -> Rejection:
        return Rejection(label=self.label, reasons=self.reasons, submitted=self.entry)


@dataclass
class ItemBatch(Generic[T]):
    """What a stage got: the accepted items, the dropped ones, what the items the repair saved first got wrong,
    model errors, the usage its calls took (set by whoever booked it), and what the stage decided on its own
    (``notes``)."""

    items: list[T] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    repairs: list[Rejection] = field(default_factory=list)
    """each item the repair round saved, as first submitted, with the reasons it was sent back"""
    errors: list[str] = field(default_factory=list)
    usage: UsageByRole = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> int:
        return len(self.repairs)


Check = Callable[[Sequence[Any], Sequence[T]], list["Checked[T]"]]
"""Check entries given the items accepted so far (for uniqueness); one ``Checked`` per entry, in order."""


def in_own_words(checked: Sequence[Checked[T]]) -> list[Checked[T]]:
    """``checked`` with each entry that copies a prompt's example or placeholder failed for it, whatever else its
    check found: a weak model fills a list with the prompt's ``"..."`` entries, which may pass every other check."""
    copies = [prompt_examples().copied_in_any(c.entry) for c in checked]
    return [
        c if copy is None else replace(c, reasons=[*c.reasons, f"it {copied_reason(copy)}"])
        for c, copy in zip(checked, copies, strict=True)
    ]


def describe_failures(failed: Sequence[Checked[Any]]) -> str:
    """The failed entries as the repair prompt shows them: numbered, as submitted, with their reasons."""
    blocks = []
    for number, checked in enumerate(failed, start=1):
        reasons = "\n".join(f"- {reason}" for reason in checked.reasons)
        submitted = orjson.dumps(checked.entry, default=str).decode()
        blocks.append(f"### {number}. {checked.label}\nSubmitted: {submitted}\nReasons:\n{reasons}")
    return "\n\n".join(blocks)


async def generate_items(
    model: ChatModel,
    prompt: Sequence[Message],
    response_format: ResponseSchema,
    *,
    entries: Callable[[Any], Sequence[Any]],
    check: Check[T],
    repair_instruction: Callable[[Sequence[Checked[T]], Sequence[T]], str],
    limit: int | None = None,
    seed: int | None = None,
    offline_answer: OfflineAnswer | None = None,
) -> ItemBatch[T]:
    """Ask once, check every entry, send the failed ones back once, keep what passes.

    ``entries`` picks the item list out of the parsed reply; ``repair_instruction(failed, accepted)``
    writes the follow-up message (``describe_failures`` helps). Corrections are matched to the failed
    entries by position; a failed entry the repair reply leaves out is rejected with that reason. A model
    error becomes the batch's ``errors``, except a refusal every request would meet, which propagates.
    ``offline_answer`` is what the dry-run model replies (``RequestOptions.offline_answer``).
    """
    messages = list(prompt)
    options = RequestOptions(response_format=response_format, seed=seed, offline_answer=offline_answer)
    try:
        reply = await model.complete(messages, options)
    except ModelError as exc:
        if exc.blocks_every_request:  # every stage would meet it: the run stops and says what to fix
            raise
        return ItemBatch(errors=[f"the request failed: {exc}"])
    first = in_own_words(check(list(entries(reply.parsed))[:limit], []))
    accepted = [c.item for c in first if c.ok and c.item is not None]
    failed = [c for c in first if not c.ok]
    if not failed:
        return ItemBatch(items=accepted)
    messages += [
        AssistantMessage(content=reply.content or ""),
        UserMessage(content=repair_instruction(failed, accepted)),
    ]
    try:
        reply = await model.complete(messages, options)
    except ModelError as exc:
        if exc.blocks_every_request:
            raise
        return ItemBatch(
            items=accepted,
            rejected=[c.rejection() for c in failed],
            errors=[f"the repair request failed: {exc}"],
        )
    corrections = in_own_words(check(list(entries(reply.parsed))[: len(failed)], accepted))
    fixed = [c.item for c in corrections if c.ok and c.item is not None]
    repairs = [first.rejection() for first, c in zip(failed, corrections, strict=False) if c.ok]
    rejected = [c.rejection() for c in corrections if not c.ok]
    unanswered = "the repair round sent no corrected version of this item"
    rejected += [
        c.rejection().model_copy(update={"reasons": [*c.reasons, unanswered]}) for c in failed[len(corrections) :]
    ]
    return ItemBatch(items=accepted + fixed, rejected=rejected, repairs=repairs)


class StageReport(BaseModel):
    """The counts a stage reports for a domain: produced, dropped (with reasons), repaired, model errors, the
    model usage it took per role, which ``dialforge stats`` adds to the dialogues' usage, and the decisions it
    made from its inputs (how many follow-ups of each kind it asked for, and why)."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    domain: str
    produced: int = 0
    repaired: int = 0
    repairs: list[Rejection] = Field(
        default_factory=list, description="what each repaired item first got wrong: as submitted, with the reasons"
    )
    rejected: list[Rejection] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    usage: UsageByRole = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    spread: list[TableSpread] = Field(
        default_factory=list, description="a goal stage over a database: how its goals spread over the data"
    )

    @classmethod
    def of(cls, stage: str, domain: str, batch: ItemBatch[Any]) -> StageReport:
        return cls(
            stage=stage,
            domain=domain,
            produced=len(batch.items),
            repaired=batch.repaired,
            repairs=batch.repairs,
            rejected=batch.rejected,
            errors=batch.errors,
            usage=batch.usage,
            notes=batch.notes,
        )
