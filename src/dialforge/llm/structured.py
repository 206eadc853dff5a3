"""Turning a raw reply into a usable one: JSON extraction, schema and tool-call checks, one repair.

Every backend (HTTP client, scripted and dry-run models) runs replies through
``complete_with_repair`` so that callers see one policy: a reply that cannot be used is
sent back once with the reason, and a second failure raises ``ModelOutputError``.

A reply cut off by the token limit (``finish_reason: "length"``) is judged by that first, whatever it
holds: cut JSON may still contain a complete fragment (``[5]`` in a cut sentence), and cut tool calls may be
missing a call. It is ``truncated`` and sent back asking for a shorter reply, with the same token limit:
the role's ``max_tokens`` is the configured budget, and a model that ran out of it was almost always
repeating itself, which a larger budget does not cure.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import orjson

from dialforge.json_schema.checks import OVER_LIMIT_KEYWORDS, violations
from dialforge.json_schema.embedded import embedded_json
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import Completion, OutputProblem, RequestOptions, ResponseSchema, ToolChoice
from dialforge.llm.errors import ModelError, ModelOutputError
from dialforge.model.messages import AssistantMessage, Message, UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.model.usage import Usage

Send = Callable[[Sequence[Message]], Awaitable[Completion]]

_FENCE_OPEN = "```"
CUT_OFF = "the reply was cut off by the token limit before it ended: it was too long"
ECHO_CHARS = 2000
"""A too-long reply is shown back to the model cut to this: the rest is repetition the repair need not pay for
(and a reply as long as the token limit could push the repair request past the context length)."""
_LONG_KINDS = frozenset(("truncated", "too_long"))


def _int_or_float(text: str) -> int | float:
    """Integers beyond 64 bits become floats, as orjson reads them: nothing downstream can store them."""
    return int(text) if len(text.lstrip("-")) < 19 else float(text)


_DECODER = json.JSONDecoder(parse_int=_int_or_float)


def json_values(text: str) -> Iterator[Any]:
    """Every JSON value a reply may mean, most likely first: the whole text, code fences, then embedded."""
    stripped = text.strip()
    try:
        yield orjson.loads(stripped)
        return
    except orjson.JSONDecodeError:
        pass
    candidates = []
    if _FENCE_OPEN in stripped:
        for block in stripped.split(_FENCE_OPEN)[1::2]:
            body = block.split("\n", 1)[1] if block.startswith(("json", "JSON")) and "\n" in block else block
            candidates.append(body.strip())
    candidates.append(stripped)
    for candidate in candidates:
        yield from embedded_json(candidate, _DECODER)


def extract_json(text: str) -> Any:
    """The JSON value in a reply: bare, inside a code fence, or the first one embedded in prose."""
    for value in json_values(text):
        return value
    raise ValueError("the reply contains no complete JSON value")


def _structured_problem(completion: Completion, schema: ResponseSchema) -> OutputProblem | None:
    """Parse the reply's JSON into ``completion.parsed``, or say why it cannot be.

    Prose may hold several JSON values ("see [1]: {...}"): the first that satisfies the schema wins. A value
    whose only faults are texts or lists past their ``maxLength``/``maxItems`` is ``too_long``, naming them.
    """
    if not completion.content or not completion.content.strip():
        return OutputProblem("empty", "the reply is empty")
    first = None
    for value in json_values(completion.content):
        found = violations(value, schema.json_schema)
        if not found:
            completion.parsed = value
            return None
        first = first or found
    if first is None:
        return OutputProblem("invalid_json", "the reply contains no complete JSON value")
    reasons = "; ".join(str(violation) for violation in first[:5])
    if all(violation.keyword in OVER_LIMIT_KEYWORDS for violation in first):
        return OutputProblem("too_long", f"a field is too long: {reasons}; say it once, in fewer words")
    return OutputProblem("schema_mismatch", "the JSON does not satisfy the schema: " + reasons)


def check_tool_choice(tool_choice: ToolChoice | None, tools: Sequence[ToolSpec] | None) -> None:
    """Refuse a ``tool_choice`` that no reply could satisfy: a caller's mistake, not the model's."""
    if tool_choice in (None, "auto", "none"):
        return
    names = {tool.name for tool in tools or ()}
    if not names:
        raise ValueError(f"tool_choice={tool_choice!r} needs tools, but none were offered")
    if tool_choice != "required" and tool_choice not in names:
        raise ValueError(
            f"tool_choice={tool_choice!r} is neither 'auto', 'none', 'required' nor one of the tools {sorted(names)}"
        )


def output_problem(
    completion: Completion,
    *,
    tools: Sequence[ToolSpec] | None,
    tool_choice: ToolChoice | None,
    response_format: ResponseSchema | None,
) -> OutputProblem | None:
    """Why the reply cannot be used, or ``None``; sets ``completion.parsed`` for structured replies."""
    if completion.finish_reason == "length":
        return OutputProblem("truncated", CUT_OFF)
    if response_format is not None:
        return _structured_problem(completion, response_format)
    if completion.tool_calls:
        known = {tool.name for tool in tools or ()}
        if tool_choice == "none":
            return OutputProblem("unexpected_tool_call", "tools were not to be called in this reply")
        for call in completion.tool_calls:
            if call.name not in known:
                return OutputProblem(
                    "unknown_tool", f"there is no tool named {call.name!r}; the tools are {sorted(known)}"
                )
            if tool_choice not in (None, "auto", "required") and call.name != tool_choice:
                return OutputProblem("wrong_tool", f"the tool {tool_choice!r} had to be called, not {call.name!r}")
            try:
                call.parsed_arguments()
            except ValueError as exc:
                return OutputProblem("bad_arguments", str(exc))
        return None
    if tool_choice not in (None, "auto", "none"):
        return OutputProblem("missing_tool_call", f"a tool call was required (tool_choice={tool_choice!r})")
    if not (completion.content and completion.content.strip()):
        return OutputProblem("empty", "the reply has no text and no tool call")
    return None


def json_instruction(schema: ResponseSchema) -> str:
    """The prompt-only way to ask for JSON, for servers without structured-output support."""
    return (
        "Reply with a single JSON value and nothing else: no prose, no code fences. "
        f"It must satisfy this JSON schema (named {schema.name!r}):\n"
        + json.dumps(schema.json_schema, ensure_ascii=False, sort_keys=True)
    )


def with_instruction(messages: Sequence[Message], instruction: str) -> list[Message]:
    """Append an instruction for the model, keeping user/assistant alternation intact.

    Appending (rather than editing the system prompt) keeps the earlier prompt a cacheable prefix.
    """
    out = list(messages)
    if out and isinstance(out[-1], UserMessage) and instruction in out[-1].content:
        return out
    if out and isinstance(out[-1], UserMessage):
        out[-1] = UserMessage(content=f"{out[-1].content}\n\n{instruction}")
    else:
        out.append(UserMessage(content=instruction))
    return out


def _echo_of(completion: Completion, problem: OutputProblem) -> AssistantMessage:
    """The unusable reply as plain assistant text, safe for any chat template to render; a too-long one cut."""
    parts = [completion.content or ""]
    for call in completion.tool_calls:
        parts.append(f"[call {call.name} with arguments {call.function.arguments}]")
    text = "\n".join(p for p in parts if p) or "(empty reply)"
    if problem.kind in _LONG_KINDS and len(text) > ECHO_CHARS:
        text = f"{text[:ECHO_CHARS]} [... {len(text) - ECHO_CHARS} more characters left out]"
    return AssistantMessage(content=text)


def _repair_instruction(problem: OutputProblem, response_format: ResponseSchema | None) -> str:
    if problem.kind == "truncated":
        shorter = (
            f"Your previous reply could not be used: {problem.detail}. Reply again, complete and much shorter: "
            "say each thing once, in as few words as it needs, and never repeat a sentence."
        )
        return f"{shorter} {json_instruction(response_format)}" if response_format is not None else shorter
    if response_format is not None:
        return f"Your previous reply could not be used: {problem.detail}. " + json_instruction(response_format)
    if problem.kind in {"unknown_tool", "bad_arguments"}:
        return (
            f"That tool call could not be executed: {problem.detail}. Call one of the available tools "
            "again through the tool-calling interface, with arguments as a JSON object that matches "
            "its parameters, or answer in text if no tool fits."
        )
    return f"Your previous reply could not be used: {problem.detail}. Please reply again."


async def complete_with_repair(
    send: Send,
    messages: Sequence[Message],
    options: RequestOptions,
    *,
    ledger: UsageLedger | None,
    role: str,
    model_name: str,
) -> Completion:
    """Send, check the reply, and on a problem send once more with the reason appended.

    This is every backend's accounting too: each reply's usage, each problem's kind (and
    ``"repaired"`` after a successful repair) and each final failure go to ``ledger``. The
    returned usage covers both calls; a ``ModelError`` carries the usage of the replies that came
    before it, so the caller can book them as the ledger did.
    """
    tools, tool_choice, response_format = options.tools, options.tool_choice, options.response_format
    check_tool_choice(tool_choice, tools)
    spent = Usage()

    async def counted(conversation: Sequence[Message]) -> Completion:
        nonlocal spent
        completion = await send(conversation)
        spent = spent + completion.usage
        if ledger is not None:
            ledger.record_call(role, model_name, completion.usage)
        return completion

    def problem_seen(kind: str) -> None:
        if ledger is not None:
            ledger.record_output_problem(role, model_name, kind)

    def check(completion: Completion) -> OutputProblem | None:
        problem = output_problem(completion, tools=tools, tool_choice=tool_choice, response_format=response_format)
        return options.check(completion) if problem is None and options.check is not None else problem

    try:
        first = await counted(messages)
        problem = check(first)
        if problem is None:
            return first
        problem_seen(problem.kind)
        repair = [
            *messages,
            _echo_of(first, problem),
            UserMessage(content=_repair_instruction(problem, response_format)),
        ]
        second = await counted(repair)
        second.usage = first.usage + second.usage
        again = check(second)
        if again is None:
            problem_seen("repaired")
            return second
        problem_seen(again.kind)
        raise ModelOutputError(
            f"model {model_name!r} gave an unusable reply twice: {problem.detail}; after repair: {again.detail}",
            kind=again.kind,
        )
    except ModelError as exc:
        exc.usage = spent
        if ledger is not None:
            ledger.record_failure(role, model_name, exc.kind)
        raise
