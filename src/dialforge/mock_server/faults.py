"""The failures a real model server shows under load, and the plan that decides which request gets one.

Transport faults (``rate_limit``, ``server_error``, ``unavailable``, ``drop``, ``slow``,
``malformed_body``) test the client's retries and timeouts; reply faults (``length``, ``empty``,
``unknown_tool``, ``bad_arguments``, and the two of small models under a grammar: ``cut_fragment``, a reply cut
by the token limit whose text holds a JSON-looking fragment such as ``[5]``, and ``repetition``, a text field
repeating one sentence far past any sensible length) arrive as a normal 200 and test output checks and repair;
rejections (``context_length``: one request's prompt is too long; ``chat_template``: the model's template
refuses the conversation, as it would every one) answer 400 in vLLM's words and test what a run does about
a refused request. Random faults leave rejections out unless asked for by name.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

import orjson

from dialforge.llm.completion import Completion
from dialforge.model.messages import FunctionCall, ToolCall


class Fault(StrEnum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    DROP = "drop"
    SLOW = "slow"
    MALFORMED_BODY = "malformed_body"
    LENGTH = "length"
    EMPTY = "empty"
    UNKNOWN_TOOL = "unknown_tool"
    BAD_ARGUMENTS = "bad_arguments"
    CUT_FRAGMENT = "cut_fragment"
    REPETITION = "repetition"
    CONTEXT_LENGTH = "context_length"
    CHAT_TEMPLATE = "chat_template"


REPLY_FAULTS = frozenset(
    {Fault.LENGTH, Fault.EMPTY, Fault.UNKNOWN_TOOL, Fault.BAD_ARGUMENTS, Fault.CUT_FRAGMENT, Fault.REPETITION}
)
REJECTIONS = {
    Fault.CONTEXT_LENGTH: (
        "This model's maximum context length is 4096 tokens. However, you requested 5120 tokens "
        "(4096 in the messages, 1024 in the completion). Please reduce the length of the messages or completion.",
        "context_length_exceeded",
    ),
    Fault.CHAT_TEMPLATE: ("Conversation roles must alternate user/assistant/user/assistant/...", "chat_template_error"),
}
"""A 400 in a server's words, and its error code."""
REPEATED_SENTENCE = "I'll be right back. "
REPEATED_CHARS = 20_000
"""How long the ``repetition`` fault makes a field: past any limit a response schema sets."""
FRAGMENT_TEXT = "The person asked for two things. In [4] the assistant looked them up, and in [5] it"
"""Where the ``cut_fragment`` fault cuts a reply: inside a text holding complete JSON values ([4], [5])."""
_TEXT_VALUE = re.compile(r'"\s*:\s*"')
"""Where a JSON text value opens: after its key's colon, at its opening quote."""
RANDOM_FAULTS = tuple(fault for fault in Fault if fault not in REJECTIONS)
"""What random faults draw from by default: a rejection would stop or fail whatever run meets it."""


def parse_faults(names: Iterable[str]) -> tuple[Fault, ...]:
    """Fault kinds from their names; raises ValueError naming the unknown ones and the known ones."""
    names = [name.strip() for name in names if name.strip()]
    unknown = sorted(set(names) - set(Fault))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known kinds are {[f.value for f in Fault]}")
    return tuple(Fault(name) for name in names)


class FaultPlan:
    """Queued faults first, in order, then a random fault from ``kinds`` with probability ``rate``.

    The queue lets a test say exactly which requests fail; the rate drives soak tests and benchmarks.
    The random stream is seeded, so a run against the same request sequence fails the same way.
    """

    def __init__(self, rate: float, kinds: Sequence[Fault], seed: int) -> None:
        self._rate = rate if kinds else 0.0
        self._kinds = tuple(kinds)
        self._random = random.Random(seed)
        self._queue: deque[Fault] = deque()

    def queue(self, faults: Iterable[Fault]) -> None:
        self._queue.extend(faults)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        self._queue.clear()

    def next(self) -> Fault | None:
        """The fault for the next request, or ``None`` for a normal reply."""
        if self._queue:
            return self._queue.popleft()
        if self._rate and self._random.random() < self._rate:
            return self._random.choice(self._kinds)
        return None


def corrupt_reply(completion: Completion, fault: Fault, *, tool_names: Sequence[str]) -> Completion:
    """The reply as a model would botch it; ``fault`` must be one of ``REPLY_FAULTS``."""
    if fault is Fault.EMPTY:
        return completion.model_copy(
            update={"content": "", "tool_calls": [], "reasoning": None, "finish_reason": "stop"}
        )
    if fault is Fault.LENGTH:
        return _truncated(completion)
    if fault is Fault.CUT_FRAGMENT:
        return _cut_in_a_fragment(completion)
    if fault is Fault.REPETITION:
        return _repeated(completion)
    first = completion.tool_calls[0] if completion.tool_calls else None
    if fault is Fault.UNKNOWN_TOOL:
        name = "no_such_tool"
        while name in tool_names:
            name += "_x"
        call = _call(first, name, first.function.arguments if first else "{}")
    elif fault is Fault.BAD_ARGUMENTS:
        name = first.name if first else (tool_names[0] if tool_names else "tool")
        arguments = first.function.arguments.strip() if first else '{"query": "x"}'
        call = _call(first, name, arguments[: max(1, len(arguments) - 1)])
    else:
        raise ValueError(f"{fault} is not a reply fault")
    return completion.model_copy(update={"content": None, "tool_calls": [call], "finish_reason": "tool_calls"})


def _call(replacing: ToolCall | None, name: str, arguments: str) -> ToolCall:
    """A call that keeps the id of the call it replaces, so ids in a conversation stay unique."""
    call_id = replacing.id if replacing else f"call_{uuid.uuid4().hex[:24]}"
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))


def _truncated(completion: Completion) -> Completion:
    """Half of the text (so a JSON reply no longer parses), or half of a tool call's arguments."""
    update: dict[str, object] = {"finish_reason": "length"}
    text = (completion.content or "").strip()
    if text or not completion.tool_calls:
        update |= {"content": text[: len(text) // 2], "tool_calls": []}
    else:
        first = completion.tool_calls[0]
        arguments = first.function.arguments
        update["tool_calls"] = [_call(first, first.name, arguments[: len(arguments) // 2])]
    return completion.model_copy(update=update)


def _cut_in_a_fragment(completion: Completion) -> Completion:
    """The reply cut by the token limit inside its first text value, after ``[4]`` and ``[5]``."""
    text = (completion.content or "").strip()
    opening = _TEXT_VALUE.search(text)
    head = text[: opening.end()] if opening else f"{text} "
    return completion.model_copy(
        update={"content": head + FRAGMENT_TEXT, "tool_calls": [], "finish_reason": "length", "parsed": None}
    )


def _repeated(completion: Completion) -> Completion:
    """The reply with its first text value (or its whole text) one sentence repeated ``REPEATED_CHARS`` long,
    ending normally: what an unconstrained small model writes when nothing bounds a field."""
    repeated = REPEATED_SENTENCE * (REPEATED_CHARS // len(REPEATED_SENTENCE))
    try:
        value = orjson.loads(completion.content or "")
    except orjson.JSONDecodeError:
        value = None
    replaced = _with_first_text(value, repeated)
    content = orjson.dumps(replaced).decode() if replaced is not None else repeated
    return completion.model_copy(update={"content": content, "tool_calls": [], "finish_reason": "stop", "parsed": None})


def _with_first_text(value: Any, text: str) -> Any:
    """``value`` with its first string (depth first) replaced by ``text``, or ``None`` when it holds none."""
    if isinstance(value, str):
        return text
    if isinstance(value, dict):
        for key, item in value.items():
            replaced = _with_first_text(item, text)
            if replaced is not None:
                return {**value, key: replaced}
    if isinstance(value, list):
        for index, item in enumerate(value):
            replaced = _with_first_text(item, text)
            if replaced is not None:
                return [*value[:index], replaced, *value[index + 1 :]]
    return None
