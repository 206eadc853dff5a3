"""A deterministic offline chat model: plausible replies with no server, for dry runs and benchmarks.

Every reply is a pure function of the request (model seed, request seed, messages and tool
names), so a resumed run reproduces the content it had before. Replies are shaped like a real
model's: schema-valid JSON for ``response_format`` (the caller's ``offline_answer`` when it gives
one), tool calls with schema-valid arguments, or a few readable sentences, and an ``auto`` tool
loop always ends in text within four rounds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from time import perf_counter

import orjson

from dialforge.json_schema.sampler import SchemaSamplingError, sample_json
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.base import RepairingChatModel
from dialforge.llm.completion import NO_OPTIONS, Completion, RequestOptions, ToolChoice
from dialforge.llm.errors import ModelRequestRejected
from dialforge.model.messages import MESSAGE_LIST, AssistantMessage, Message, ToolCall, ToolMessage, UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.model.usage import Usage

CHARS_PER_TOKEN = 4
MAX_TOOL_ROUNDS = 3
"""An ``auto`` reply calls a tool only while fewer tool results than a random cap in 0..3 follow
the last user message, so the fourth round at the latest answers in text."""
PARALLEL_CALL_CHANCE = 0.25

_OPENERS = (
    "I have checked",
    "I looked into",
    "I can help with",
    "I have updated",
    "I confirmed",
    "I reviewed",
)
_OBJECTS = (
    "the order details",
    "your account",
    "the booking",
    "the latest status",
    "the available options",
    "the refund request",
    "the delivery schedule",
    "your reservation",
)
_TAILS = ("", " for you", " just now", " as requested")
_TOOL_SENTENCES = (
    "The {} tool returned what I needed.",
    "According to {}, everything is in order.",
    "I used {} to look this up.",
)
_ACTIONS = (
    "check the available tools first",
    "confirm the details before acting",
    "look up the records",
    "keep the answer short",
)


_UNSEEN = {"__all__": {"finish_reason"}}
"""What a message records but a model never reads: it leaves the reply unchanged."""


class DryRunModel(RepairingChatModel):
    """Offline ``ChatModel`` whose replies depend only on the request and the seeds.

    Sampling options other than ``max_tokens`` are ignored on purpose: noise would break reproducibility.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        name: str = "dry-run",
        role: str = "default",
        ledger: UsageLedger | None = None,
        reasoning: bool = False,
    ) -> None:
        self.seed = seed
        self.name = name
        self.role = role
        self.ledger = ledger
        self.reasoning = reasoning

    async def _send(self, messages: Sequence[Message], options: RequestOptions) -> Completion:
        return self.raw_completion(messages, options)

    def raw_completion(self, messages: Sequence[Message], options: RequestOptions = NO_OPTIONS) -> Completion:
        """The reply before any checking: cheap, synchronous, no ledger (the mock server calls it).

        Raises ``ModelRequestRejected`` where an OpenAI server answers 400: a tool call is
        demanded but no tools, or no tool of the demanded name, are offered; or a schema has no
        value the sampler can build.
        """
        try:
            return self._reply(messages, options)
        except SchemaSamplingError as exc:
            raise ModelRequestRejected(f"the dry-run model cannot satisfy this schema: {exc}", status=400) from None

    def _reply(self, messages: Sequence[Message], options: RequestOptions) -> Completion:
        started = perf_counter()
        rng = random.Random(self._request_seed(messages, options.tools, options.seed))
        response_format, max_tokens = options.response_format, options.max_tokens
        content: str | None = None
        parsed = None
        calls: list[ToolCall] = []
        finish_reason = "stop"
        if response_format is not None:
            if options.offline_answer is not None:
                parsed = options.offline_answer(rng)
            else:
                parsed = sample_json(response_format.json_schema, rng)
            content = orjson.dumps(parsed).decode()
        else:
            calls = _tool_calls(rng, messages, options.tools or (), options.tool_choice)
            if calls:
                finish_reason = "tool_calls"
            else:
                content = _text(rng, messages)
                if max_tokens is not None and len(content) > max_tokens * CHARS_PER_TOKEN:
                    content = content[: max_tokens * CHARS_PER_TOKEN]
                    finish_reason = "length"
        reasoning = _thought(rng) if self.reasoning else None
        call_chars = sum(len(call.function.name) + len(call.function.arguments) for call in calls)
        usage = Usage(
            calls=1,
            prompt_tokens=_prompt_chars(messages) // CHARS_PER_TOKEN,
            completion_tokens=(len(content or "") + call_chars) // CHARS_PER_TOKEN,
            reasoning_tokens=len(reasoning or "") // CHARS_PER_TOKEN,
            seconds=perf_counter() - started,
        )
        return Completion(
            content=content,
            tool_calls=calls,
            reasoning=reasoning,
            finish_reason=finish_reason,
            model=self.name,
            usage=usage,
            parsed=parsed,
        )

    def _request_seed(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] | None,
        seed: int | None,
    ) -> int:
        digest = hashlib.blake2b(f"{self.seed}|{seed}|".encode(), digest_size=8)
        digest.update(MESSAGE_LIST.dump_json(list(messages), exclude=_UNSEEN))
        for tool in tools or ():
            digest.update(b"\0" + tool.name.encode())
        return int.from_bytes(digest.digest(), "big")


def _tool_calls(
    rng: random.Random, messages: Sequence[Message], tools: Sequence[ToolSpec], tool_choice: ToolChoice | None
) -> list[ToolCall]:
    """The calls the reply makes (empty for a text reply), following ``tool_choice``."""
    if tool_choice == "none":
        return []
    if tool_choice in (None, "auto"):
        if not tools or _tool_results_since_user(messages) >= rng.randint(0, MAX_TOOL_ROUNDS):
            return []
        chosen = [rng.choice(tools)]
    elif not tools:
        raise ModelRequestRejected(f"tool_choice {tool_choice!r} needs tools but has none", status=400)
    elif tool_choice == "required":
        chosen = [rng.choice(tools)]
        if rng.random() < PARALLEL_CALL_CHANCE:
            chosen.append(rng.choice(tools))
    else:
        chosen = [tool for tool in tools if tool.name == tool_choice][:1]
        if not chosen:
            names = sorted(tool.name for tool in tools)
            raise ModelRequestRejected(
                f"tool_choice names {tool_choice!r}, which is not among the tools {names}", status=400
            )
    return [
        ToolCall.make(f"call_{rng.getrandbits(48):012x}", tool.name, sample_json(tool.parameters, rng))
        for tool in chosen
    ]


def _tool_results_since_user(messages: Sequence[Message]) -> int:
    count = 0
    for message in reversed(messages):
        if isinstance(message, UserMessage):
            break
        if isinstance(message, ToolMessage):
            count += 1
    return count


def _text(rng: random.Random, messages: Sequence[Message]) -> str:
    """One to three short sentences, after one naming the tool whose result was just read."""
    count = rng.randint(1, 3)
    sentences = [f"{rng.choice(_OPENERS)} {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}." for _ in range(count)]
    if messages and isinstance(messages[-1], ToolMessage):
        sentences.insert(0, rng.choice(_TOOL_SENTENCES).format(messages[-1].name))
    return " ".join(sentences)


def _thought(rng: random.Random) -> str:
    return f"The user is asking about {rng.choice(_OBJECTS)}. I should {rng.choice(_ACTIONS)}."


def _prompt_chars(messages: Sequence[Message]) -> int:
    total = 0
    for message in messages:
        total += len(message.content or "")
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls or ():
                total += len(call.function.name) + len(call.function.arguments)
    return total
