"""The user simulator: a model playing the person with a latent goal (docs/method.md, "User simulator rules").

It follows the paper's four rules and is hardened against the failures simulators are known for: finishing
right after the agent asks for confirmation, pasting or revealing the whole goal at once, meta words. Each
reply is checked; a violation gets one correction round with the reason, and what still violates is fixed
where a fix is deterministic: a completion claimed while a confirmation is pending becomes "not complete",
and a message that is still empty raises ``ModelOutputError``. The other violations (meta words, a copied
passage, revealing every request) are returned as written and named in ``UserTurn.violations``.

The request is laid out for prefix caching (vLLM, SGLang): a system prompt whose rules are the same for every
dialogue and whose goal part changes only at a handover, then one user message holding the transcript,
rendered append-only, with the per-turn instruction at its very end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from dialforge.actors.personas import Persona
from dialforge.actors.reply_checks import copied_text
from dialforge.actors.transcript import transcript_lines
from dialforge.generation_checks.meta_words import domain_vocabulary, meta_words
from dialforge.llm.completion import RequestOptions, ResponseSchema
from dialforge.llm.errors import ModelOutputError
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import LONG_TEXT_CHARS
from dialforge.model.dialogue import DialogueState
from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage
from dialforge.model.tasks import Task
from dialforge.prompts import render_prompt, render_section

USER_TURN_FORMAT = ResponseSchema(
    name="user_turn",
    json_schema={
        "type": "object",
        "properties": {
            "user_message": {"type": "string", "minLength": 1, "maxLength": LONG_TEXT_CHARS},
            "is_task_complete": {"type": "boolean"},
        },
        "required": ["user_message", "is_task_complete"],
        "additionalProperties": False,
    },
)
"""What a simulator reply must be (docs/method.md): ``{"user_message": "...", "is_task_complete": true|false}``."""

COPIED_RUN_WORDS = 12
"""A run of this many consecutive words of the goal's description in a message counts as pasting it; identifiers
(emails, ids, numbers, dates, names) are left out of the count, since rule 2 wants them repeated exactly."""
MIN_REVEALED_REQUESTS = 3
"""A message bringing up this many requests of the goal at once reveals too much (rule 2: one or two per turn)."""
_DECLINE = re.compile(
    r"^\W*(?:(?:thanks|thank you)\W+(?:but\W+)?)?"
    r"(no\b|nope\b|not (?:just |right )?now\b|not today\b|maybe later\b|i'?m good\b|that'?s all\b|that is all\b"
    r"|nothing else\b)",
    re.IGNORECASE,
)
"""A reply that turns the agent's offer down: it may end the goal, since nothing is left waiting for a result."""

_QUESTION_WORDS = re.compile(
    r"\b(confirm\w*|proceed|shall i|should i|would you like me to|want me to|go ahead)\b", re.IGNORECASE
)
"""A question with these words asks the user to agree to something the agent would do."""
_CONFIRMING = re.compile(r"\b(confirm\w*|proceed|go ahead|shall i|should i)\b", re.IGNORECASE)
_SOMETHING_EXTRA = re.compile(r"\b(also|as well|too|additionally|in addition|another)\b", re.IGNORECASE)
"""Of those questions, the ones that ask to confirm an action the user asked for, and the mark of an extra."""
_OFFER_OF_MORE = re.compile(r"\b(anything|something) else\b", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][)\]\"'\u201d\u2019*_]))\s+|\n+")
_ASIDE = re.compile(r"^\([^()]*\)\s*")
"""A parenthesis before the question ("(Delivery takes 2-5 days) Shall I ...?") is not part of it."""
_WORD = re.compile(r"[\w']+")
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_WORD_OR_EMAIL = re.compile(rf"{_EMAIL}|[\w']+")
_DETAIL = re.compile(rf"{_EMAIL}|\d[\d.,:/-]*\d{{2,}}|\d{{3,}}")
"""An email, or a number of three digits or more (an id, an amount, a date): a detail a person can only know
from their goal or from what the agent told them."""
_GENERIC_WORDS = frozenset(
    (
        "about", "after", "again", "also", "another", "before", "been", "being", "check", "confirm", "current",
        "detail", "details", "does", "done", "each", "every", "find", "from", "give", "have", "information",
        "into", "know", "like", "list", "look", "make", "many", "more", "much", "need", "once", "only", "other",
        "please", "request", "same", "show", "some", "sure", "tell", "than", "that", "their", "them", "then",
        "there", "these", "they", "this", "those", "want", "were", "what", "when", "where", "whether", "which",
        "while", "will", "with", "would", "your",
    )
)  # fmt: skip
"""Words of a request that say nothing about which request it is ("ask", "check", "whether")."""


class UserTurn(BaseModel):
    """One simulator turn: what the user says and whether the current goal is now complete."""

    model_config = ConfigDict(extra="forbid")

    user_message: str
    is_task_complete: bool
    violations: list[str] = Field(
        default_factory=list, description="kinds of the rule violations in the model's first reply, each corrected once"
    )


@dataclass(frozen=True)
class Violation:
    """A checked rule the reply breaks: its kind, for counting, and what to tell the model."""

    kind: str
    detail: str

    @classmethod
    def of(cls, kind: str, **values: object) -> Violation:
        """The violation ``kind`` with its reason, the section of that name in ``user_simulator_violations``."""
        return cls(kind, render_section("user_simulator_violations", kind, **values))


class UserSimulator:
    """Plays the user of one dialogue at a time; holds nothing between turns, so any state can be continued."""

    prompts: ClassVar[tuple[str, ...]] = (
        "user_simulator",
        "user_simulator_parts",
        "user_simulator_feedback",
        "user_simulator_violations",
    )
    """The packaged prompts its requests are made of."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model

    async def next_turn(self, state: DialogueState, persona: Persona | None = None, *, service: str = "") -> UserTurn:
        """The user's next message for ``state`` (``service``: what the business is), checked and corrected once;
        model errors propagate."""
        goal = current_goal(state)
        messages = simulator_messages(state, persona, service=service)
        seed = state.seed + len(state.messages)
        offline = _offline_turn(state, goal)
        turn = await self._ask(messages, seed, offline)
        violations = turn_violations(turn, state, goal)
        if not violations:
            return turn
        reply = orjson.dumps({"user_message": turn.user_message, "is_task_complete": turn.is_task_complete})
        feedback = render_prompt("user_simulator_feedback", problems="\n".join(f"- {v.detail}" for v in violations))
        corrected = await self._ask(
            [*messages, AssistantMessage(content=reply.decode()), UserMessage(content=feedback)], seed, offline
        )
        remaining = {v.kind for v in turn_violations(corrected, state, goal)}
        if "empty_message" in remaining:
            raise ModelOutputError("the user simulator's message is still empty after a correction", kind="empty")
        return corrected.model_copy(
            update={
                "is_task_complete": corrected.is_task_complete and "complete_while_confirming" not in remaining,
                "violations": [v.kind for v in violations],
            }
        )

    async def _ask(self, messages: Sequence[Message], seed: int, offline: dict[str, Any]) -> UserTurn:
        options = RequestOptions(
            response_format=USER_TURN_FORMAT,
            seed=seed,
            check=copied_text("user_message"),
            offline_answer=lambda _rng: offline,
        )
        completion = await self.model.complete(messages, options)
        return UserTurn(
            user_message=completion.parsed["user_message"].strip(),
            is_task_complete=completion.parsed["is_task_complete"],
        )


def _offline_turn(state: DialogueState, goal: Task) -> dict[str, Any]:
    """What the dry-run model answers for the person: the goal's requests one per turn, in order, then done once
    the agent has answered the last; placeholders that give offline dialogues the shape of real ones."""
    requests = goal.subtasks or [goal.description]
    asked = sum(isinstance(message, UserMessage) for message in state.messages[state.goal_started_at :])
    if asked < len(requests):
        return {"user_message": requests[asked], "is_task_complete": False}
    return {"user_message": "Thanks, that is all I needed.", "is_task_complete": True}


def current_goal(state: DialogueState) -> Task:
    """The goal the user pursues now; asking for a turn after the last goal is the caller's mistake."""
    if state.current_task is None:
        raise ValueError(
            f"dialogue {state.id!r} has no goal left for the user: {state.tasks_done} of {len(state.tasks)} done"
        )
    return state.current_task


def simulator_messages(state: DialogueState, persona: Persona | None, *, service: str = "") -> list[Message]:
    """The request for the user's next turn: rules and goal, then the transcript and the turn's instruction."""
    goal = current_goal(state)
    completed = "\n".join(
        f"- {task.description}" + (f" {_part('not_confirmed')}" if index in state.goals_unconfirmed else "")
        for index, task in enumerate(state.tasks[: state.tasks_done])
    )
    subtasks = "\n".join(f"{number}. {subtask}" for number, subtask in enumerate(goal.subtasks, start=1))
    system = render_prompt(
        "user_simulator",
        service=_service(state.domain, service),
        today=_today(state.today),
        persona=persona.description if persona else _part(_voice(state)),
        completed=completed or _part("no_completed_goals"),
        goal=goal.description,
        subtasks=subtasks or _part("no_subtasks"),
        after=_part("more_goals" if state.tasks_done + 1 < len(state.tasks) else "last_goal"),
    )
    conversation = state.conversation
    instruction = _part(_instruction(state))
    if question := pending_confirmation(conversation):
        instruction += " " + _part("offer_hint" if is_offer(question) else "confirmation_hint", question=question)
    transcript = "\n".join(transcript_lines(conversation)) or _part("nothing_yet")
    turn = _part("turn", transcript=transcript, instruction=instruction)
    return [SystemMessage(content=system), UserMessage(content=turn)]


def _voice(state: DialogueState) -> str:
    """Who the person is without a persona: the one who wrote a continued conversation's user messages, whose way
    of writing goes on, or an ordinary customer."""
    continued = state.messages[: 1 + state.history_length]
    return "earlier_voice" if any(isinstance(message, UserMessage) for message in continued) else "no_persona"


def _instruction(state: DialogueState) -> str:
    """Which turn this is: the opening, the move from a completed goal to the next one, or any other."""
    if not state.conversation:
        return "open"
    if state.tasks_done and state.goal_started_at == len(state.messages):
        return "handover"  # a goal was just completed and nothing of the current one is said yet
    return "next"


def _part(section: str, /, **values: object) -> str:
    """A piece of the simulator's request that depends on the dialogue."""
    return render_section("user_simulator_parts", section, **values)


def _service(domain: str, description: str) -> str:
    """The business the person talks to, as one sentence or two: its name, and what it is when that is known."""
    text = description.strip()
    if not text:
        return f"{domain}."
    return f"{domain}: {text}" if text.endswith((".", "!", "?")) else f"{domain}: {text}."


def _today(today: str | None) -> str:
    """The person's sense of now: the same date and time the agent and the tools have."""
    if today is None:
        return ""
    moment = datetime.fromisoformat(today)
    return " " + _part("today", weekday=f"{moment:%A}", date=f"{moment:%Y-%m-%d}", time=f"{moment:%H:%M}")


def pending_confirmation(conversation: Sequence[Message]) -> str | None:
    """The question sentence in the agent's latest reply that asks the user to agree to an action (to confirm
    it, or to accept an offer of it), if there is one.

    Only agent text after the user's last message counts: a confirmation already answered is not pending.
    Offers of more help ("Would you like me to help with anything else?") are not confirmations.
    """
    for message in reversed(conversation):
        if isinstance(message, UserMessage):
            return None
        if isinstance(message, AssistantMessage) and message.content and message.content.strip():
            for sentence in _SENTENCE_BREAK.split(message.content):
                question = _ASIDE.sub("", sentence.strip())
                if (
                    question.rstrip("*_\"') ").endswith("?")
                    and _QUESTION_WORDS.search(question)
                    and not _OFFER_OF_MORE.search(question)
                ):
                    return question
            return None
    return None


def is_offer(question: str) -> bool:
    """Whether the agent's question offers something extra ("Would you like me to check ...?", "Shall I also
    ...?"), to which a decline may be the right answer, rather than asking to confirm an action ("Shall I cancel
    order 12?", "Could you confirm the address?")."""
    return not _CONFIRMING.search(question) or bool(_SOMETHING_EXTRA.search(question))


def turn_violations(turn: UserTurn, state: DialogueState, goal: Task) -> list[Violation]:
    """Every rule the turn breaks that a check can see, with the reason to send back."""
    message = turn.user_message
    if not message:
        return [Violation.of("empty_message")]
    violations = []
    question = pending_confirmation(state.conversation) if turn.is_task_complete else None
    if question and not _DECLINE.match(message):
        violations.append(Violation.of("complete_while_confirming", question=question))
    # Words the domain and the goal use themselves are not meta there ("training" at a gym).
    vocabulary = domain_vocabulary(state.domain, goal.description, *goal.subtasks, tools=state.tools)
    if found := meta_words(message, vocabulary, from_user=True):
        violations.append(Violation.of("meta_words", words=", ".join(found)))
    if copied := copied_passage(message, goal.description):
        violations.append(Violation.of("copied_goal", copied=copied))
    earlier = [m.content or "" for m in state.conversation if isinstance(m, UserMessage | AssistantMessage)]
    if hidden := hidden_details(message, [goal.description, *goal.subtasks, *earlier], state.conversation):
        violations.append(Violation.of("uses_hidden_result", details=", ".join(hidden)))
    revealed = newly_mentioned_requests(message, goal.subtasks, earlier)
    if len(goal.subtasks) >= MIN_REVEALED_REQUESTS and len(revealed) >= MIN_REVEALED_REQUESTS:
        listed = "; ".join(f'"{request}"' for request in revealed)
        violations.append(Violation.of("reveals_all_requests", count=len(revealed), requests=listed))
    return violations


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _names(text: str) -> set[str]:
    """The words the text capitalises inside a sentence: names of people, places, products, months."""
    return {
        word.casefold()
        for sentence in _SENTENCE_BREAK.split(text)
        for word in _WORD.findall(sentence)[1:]
        if word[0].isupper() and word != "I"
    }


def _phrasing(text: str, names: set[str]) -> list[str]:
    """The words of the text without its identifiers: emails, anything with a digit (ids, numbers, dates,
    amounts) and the ``names``."""
    return [
        word
        for token in _WORD_OR_EMAIL.findall(text)
        if "@" not in token and not any(c.isdigit() for c in token) and (word := token.casefold()) not in names
    ]


def hidden_details(message: str, known: Iterable[str], conversation: Sequence[Message]) -> list[str]:
    """The details (emails, numbers of three digits or more) of ``message`` that appear in a tool result but in
    nothing the person was told or given (``known``): the person does not see tool results."""
    seen = {detail.casefold() for text in known for detail in _DETAIL.findall(text)}
    results = " ".join(m.content or "" for m in conversation if isinstance(m, ToolMessage)).casefold()
    found = dict.fromkeys(detail.casefold() for detail in _DETAIL.findall(message))
    return [detail for detail in found if detail not in seen and detail in results]


def copied_passage(message: str, description: str, run: int = COPIED_RUN_WORDS) -> str | None:
    """The first run of ``run`` consecutive words the message shares with the description, if any; identifiers
    are left out of both, since the person is to repeat them exactly."""
    names = _names(description)
    source = _phrasing(description, names)
    runs = {tuple(source[i : i + run]) for i in range(len(source) - run + 1)}
    words = _phrasing(message, names)
    for i in range(len(words) - run + 1):
        if tuple(words[i : i + run]) in runs:
            return " ".join(words[i : i + run])
    return None


def _stem(word: str) -> str:
    """Crude, on purpose: "orders"/"order", "renewed"/"renewal"/"renew" meet; precision beyond that is not needed."""
    return (word if word.endswith("ss") else word.removesuffix("s"))[:5]


def _key_stems(text: str) -> set[str]:
    """Stems of the words that say what a request is about: content words, and numbers (ids, dates)."""
    return {
        _stem(word)
        for word in _words(text)
        if (len(word) >= 4 and word not in _GENERIC_WORDS) or (len(word) >= 2 and any(c.isdigit() for c in word))
    }


def newly_mentioned_requests(message: str, requests: Sequence[str], earlier: Iterable[str]) -> list[str]:
    """The requests the message brings up that no earlier message did.

    A request is brought up when at least half of its own key words (those no other request of the goal
    shares) appear; a request without such words is never counted, so the check errs towards passing.
    Requests the conversation already mentioned do not count, so a recap of done work is no reveal.
    """
    stems = [_key_stems(request) for request in requests]
    own = [mine - set().union(*(other for j, other in enumerate(stems) if j != i)) for i, mine in enumerate(stems)]
    said = _key_stems(message)
    before = _key_stems("\n".join(earlier))

    def mentions(present: set[str], keys: set[str]) -> bool:
        return bool(keys) and 2 * len(keys & present) >= len(keys)

    return [
        request
        for request, keys in zip(requests, own, strict=True)
        if mentions(said, keys) and not mentions(before, keys)
    ]
