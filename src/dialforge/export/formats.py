"""Converters from a canonical ``Dialogue`` to training formats.

Every converter takes a ``Dialogue`` and ``reasoning="keep"|"drop"`` and returns one JSON-ready dict.
A dialogue that cannot be expressed in a format raises ``Unexportable`` (the writer counts it as
skipped with that reason instead of stopping).

Every format ends with the agent: a user message after the agent's last one (a failed dialogue's request
the agent never answered) is dropped, so no exported conversation ends with words nobody answered. Records
already hold no closing words: the person's thanks after the last goal stays out of ``messages``.

Choices where the target formats leave room (also in ``FORMAT_NOTES``):

- ``openai``: ``{"messages", "tools", "parallel_tool_calls"}`` exactly as the OpenAI chat fine-tuning
  format; arguments stay JSON strings; tool messages keep ``name`` (a key OpenAI's data checks accept) so the
  messages parse back into the canonical model unchanged. OpenAI's SFT format has no field for reasoning, so
  ``reasoning="keep"`` is not supported for ``openai``: reasoning is always dropped (the writer says so).
  ``parallel_tool_calls`` is true unless parallel calls were split (``one_call_per_message``).
- ``trl``: Hugging Face chat-template shape: arguments as objects, tool messages with ``name`` (and
  ``tool_call_id``), a ``tools`` column of OpenAI tool dicts; kept reasoning goes to ``reasoning_content`` (what
  Qwen3-style templates read). An assistant message without calls has no ``tool_calls`` key at all and a
  ``None`` content becomes ``""``: several real templates test ``tool_calls is defined`` / concatenate content.
- ``sharegpt``: LLaMA-Factory: ``conversations`` of ``human``/``gpt``/``function_call``/``observation`` in strict
  alternation (human/observation at even indexes, gpt/function_call at odd ones, even length), ``system`` and
  ``tools`` (a JSON string) as top-level fields. A ``function_call`` value is ``{"name", "arguments"}`` as JSON,
  or a JSON list of them for parallel calls. The results of one assistant message become ONE observation: the
  bare content for a single call, a JSON list of the result strings (in call order) for several. Assistant text
  beside tool calls is DROPPED (LLaMA-Factory parses a function_call value as JSON; only a ``<think>`` prefix is
  understood). Kept reasoning is prefixed as ``<think>...</think>\\n\\n`` (LLaMA-Factory's thought convention).
  Consecutive user messages are joined with a blank line; trailing tool results nobody answered are dropped.
- ``hermes``: the NousResearch hermes-function-calling dataset shape: ``conversations`` of
  ``system``/``human``/``gpt``/``tool`` turns; the system turn is the Hermes function-calling preamble with the
  tools inside ``<tools></tools>`` followed by the dialogue's own system prompt; assistant calls are
  ``<tool_call>\\n{"name": .., "arguments": {..}}\\n</tool_call>`` blocks after any assistant text; the results
  of one assistant message form one ``tool`` turn of ``<tool_response>\\n{"name": .., "content": ..}\\n
  </tool_response>`` blocks. Kept reasoning is a ``<think>...</think>`` prefix of the gpt turn.

``string_arguments`` (``trl`` only) writes tool-call arguments as the JSON text the agent produced, for loaders
that parse them themselves: axolotl's ``chat_template`` loader deletes every ``null`` value of a record before it
parses string arguments, so ``null`` arguments survive only as text.

``train_on="continuation"`` (``openai`` and ``trl``) keeps the trainer's loss off the assistant turns of an
imported conversation (a record's first ``prefix_messages`` messages after the system prompt, which ``dialforge
extend`` continued), each format in the way its own trainer reads from the data alone:

- ``openai``: those assistant messages carry ``"weight": 0``, the fine-tuning format's per-message switch; the
  others carry no weight key (trained, as by default), so a record without a prefix is unchanged. The canonical
  model has no ``weight``: ``parse_messages`` refuses it, ``dialforge extend``'s importer ignores it.
- ``trl``: every record becomes a conversational prompt-completion record ``{"prompt", "completion", "tools"}``
  (one shape per dataset, as ``datasets`` and SFTTrainer want): the completion starts at the first assistant
  message of the continuation, the prompt is everything before it. SFTTrainer turns ``completion_only_loss`` on by
  itself for this shape, so the prompt gets no loss; a record without a prefix has all its assistant turns in the
  completion (only its system prompt and first request move to the prompt).
- ``sharegpt`` and ``hermes`` are refused: LLaMA-Factory reads no per-turn mask (``mask_history`` is one switch
  for the whole dataset: train on the last turn only), and the Hermes text turns have no field a trainer reads
  without being told to.

A record whose continuation has no assistant turn is ``Unexportable`` then: there is nothing left to train on.

``nullable_as_flag`` (any format) rewrites a nullable parameter type ``["T", "null"]`` as ``"T"`` with
``"nullable": true`` (the OpenAPI spelling). Templates that turn JSON-schema types into Python type names, such as
the Hermes one vLLM ships, know no ``"null"`` and recurse without end on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from dialforge.model.dialogue import Dialogue
from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage, to_openai

ReasoningMode = Literal["keep", "drop"]
FormatName = Literal["openai", "trl", "sharegpt", "hermes"]
FORMATS: tuple[str, ...] = ("openai", "trl", "sharegpt", "hermes")
TrainOn = Literal["all", "continuation"]
TRAIN_ON: tuple[str, ...] = ("all", "continuation")
MASKING_FORMATS: tuple[str, ...] = ("openai", "trl")
"""the formats whose trainers leave marked assistant turns out of the loss, read from the record alone"""

FORMAT_NOTES: dict[str, str] = {
    "openai": "reasoning is never exported: OpenAI's fine-tuning format has no field for it",
    "trl": "reasoning (keep) is written as assistant reasoning_content",
    "sharegpt": "assistant text beside tool calls is dropped; parallel results form one observation (JSON list)",
    "hermes": "tool results are <tool_response> blocks in a 'tool' turn",
}


class Unexportable(ValueError):
    """A dialogue the format cannot express; ``reason`` is a short, countable label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def split_parallel_calls(messages: Sequence[Message]) -> list[Message]:
    """One tool call per assistant message: each call of a parallel batch becomes its own assistant message,
    followed by its result. The text and reasoning stay with the first of the split messages."""
    results: dict[str, ToolMessage] = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    out: list[Message] = []
    for message in messages:
        if isinstance(message, ToolMessage):
            continue  # re-emitted right after its call below
        if isinstance(message, AssistantMessage) and message.tool_calls:
            for index, call in enumerate(message.tool_calls):
                out.append(
                    AssistantMessage(
                        content=message.content if index == 0 else None,
                        tool_calls=[call],
                        reasoning=message.reasoning if index == 0 else None,
                    )
                )
                if call.id in results:
                    out.append(results[call.id])
            continue
        out.append(message)
    return out


def nullable_as_flag(schema: Any) -> Any:
    """A copy of a JSON schema (or a list of tool specs) in which no ``type`` list names ``"null"``: the
    nullability moves to ``"nullable": true``."""
    if isinstance(schema, list):
        return [nullable_as_flag(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: nullable_as_flag(value) for key, value in schema.items()}
    types = schema.get("type")
    if isinstance(types, list) and "null" in types:
        others = [t for t in types if t != "null"]
        if others:
            out["type"] = others[0] if len(others) == 1 else others
            out["nullable"] = True
    return out


def _arguments_as_text(message: dict[str, Any], calls: dict[str, str]) -> dict[str, Any]:
    if "tool_calls" not in message:
        return message
    tool_calls = [
        {**call, "function": {**call["function"], "arguments": calls[call["id"]]}} for call in message["tool_calls"]
    ]
    return {**message, "tool_calls": tool_calls}


def _ending_with_the_agent(messages: Sequence[Message]) -> list[Message]:
    """The messages without the user messages after the agent's last one."""
    end = len(messages)
    while end and isinstance(messages[end - 1], UserMessage):
        end -= 1
    return list(messages[:end])


def _messages(dialogue: Dialogue, one_call_per_message: bool) -> list[Message]:
    messages = _ending_with_the_agent(dialogue.messages)
    return split_parallel_calls(messages) if one_call_per_message else messages


def to_openai_record(
    dialogue: Dialogue, reasoning: ReasoningMode = "drop", *, one_call_per_message: bool = False
) -> dict[str, Any]:
    """OpenAI fine-tuning JSONL record; reasoning is always dropped (no such field in the format)."""
    record: dict[str, Any] = {
        "messages": [to_openai(m, keep_reasoning=False) for m in _messages(dialogue, one_call_per_message)]
    }
    if dialogue.tools:
        record["tools"] = dialogue.tools
        record["parallel_tool_calls"] = not one_call_per_message
    return record


def trl_messages(messages: Sequence[Message], reasoning: ReasoningMode = "drop") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AssistantMessage):
            data: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
            if message.tool_calls:
                data["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.parsed_arguments()},
                    }
                    for call in message.tool_calls
                ]
            if reasoning == "keep" and message.reasoning:
                data["reasoning_content"] = message.reasoning
            out.append(data)
        elif isinstance(message, ToolMessage):
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "name": message.name, "content": message.content}
            )
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def to_trl_record(
    dialogue: Dialogue, reasoning: ReasoningMode = "drop", *, one_call_per_message: bool = False
) -> dict[str, Any]:
    """Hugging Face chat-template record: ``messages`` (arguments as objects) and ``tools``."""
    return {"messages": trl_messages(_messages(dialogue, one_call_per_message), reasoning), "tools": dialogue.tools}


def _think(reasoning: ReasoningMode, message: AssistantMessage) -> str:
    if reasoning == "keep" and message.reasoning:
        return f"<think>\n{message.reasoning}\n</think>\n\n"
    return ""


def _system_text(messages: Sequence[Message]) -> str:
    return "\n\n".join(m.content for m in messages if isinstance(m, SystemMessage))


def to_sharegpt_record(
    dialogue: Dialogue, reasoning: ReasoningMode = "drop", *, one_call_per_message: bool = False
) -> dict[str, Any]:
    """LLaMA-Factory ShareGPT record with strict human/observation - gpt/function_call alternation."""
    messages = _messages(dialogue, one_call_per_message)
    turns: list[dict[str, str]] = []
    pending_results: list[ToolMessage] = []
    call_order: dict[str, int] = {}

    def flush_results() -> None:
        if pending_results:
            contents = [m.content for m in sorted(pending_results, key=lambda m: call_order.get(m.tool_call_id, 0))]
            value = contents[0] if len(contents) == 1 else _dumps(contents)
            turns.append({"from": "observation", "value": value})
            pending_results.clear()

    for message in messages:
        if isinstance(message, ToolMessage):
            pending_results.append(message)
            continue
        flush_results()
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, UserMessage):
            if turns and turns[-1]["from"] == "human":
                turns[-1]["value"] += "\n\n" + message.content
            elif turns and turns[-1]["from"] == "observation":
                raise Unexportable("sharegpt: user message right after tool results")
            else:
                turns.append({"from": "human", "value": message.content})
        elif isinstance(message, AssistantMessage):
            prefix = _think(reasoning, message)
            call_order = {call.id: i for i, call in enumerate(message.tool_calls or [])}
            if message.tool_calls:
                calls = [{"name": c.name, "arguments": c.parsed_arguments()} for c in message.tool_calls]
                value = _dumps(calls[0] if len(calls) == 1 else calls)
                turn = {"from": "function_call", "value": prefix + value}
            else:
                turn = {"from": "gpt", "value": prefix + (message.content or "")}
            if turns and turns[-1]["from"] == "gpt":
                if turn["from"] == "gpt":
                    turns[-1]["value"] += "\n\n" + turn["value"]
                else:
                    turns[-1] = turn  # text before a call, said in its own message: dropped like text beside calls
            elif turns and turns[-1]["from"] == "function_call":
                raise Unexportable("sharegpt: assistant message right after unanswered tool calls")
            else:
                turns.append(turn)
    flush_results()
    while turns and turns[-1]["from"] in ("human", "observation"):
        turns.pop()  # nobody answered: LLaMA-Factory wants an even number of turns ending with the model
    if not turns:
        raise Unexportable("sharegpt: no complete exchange")
    for index, turn in enumerate(turns):
        expected = ("human", "observation") if index % 2 == 0 else ("gpt", "function_call")
        if turn["from"] not in expected:
            raise Unexportable(f"sharegpt: turn {index} is {turn['from']}, alternation broken")
    record: dict[str, Any] = {"conversations": turns, "system": _system_text(messages)}
    record["tools"] = _dumps([t.get("function", t) for t in dialogue.tools]) if dialogue.tools else ""
    return record


HERMES_PREAMBLE = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML "
    "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions. Here are the available tools: <tools> {tools} </tools> "
    'Use the following pydantic model json schema for each tool call you will make: {{"properties": '
    '{{"arguments": {{"title": "Arguments", "type": "object"}}, "name": {{"title": "Name", "type": "string"}}}}, '
    '"required": ["arguments", "name"], "title": "FunctionCall", "type": "object"}} '
    "For each function call return a json object with function name and arguments within <tool_call></tool_call> "
    'XML tags as follows:\n<tool_call>\n{{"name": <function-name>, "arguments": <args-dict>}}\n</tool_call>'
)


def to_hermes_record(
    dialogue: Dialogue, reasoning: ReasoningMode = "drop", *, one_call_per_message: bool = False
) -> dict[str, Any]:
    """Hermes function-calling text record (``conversations`` of system/human/gpt/tool)."""
    messages = _messages(dialogue, one_call_per_message)
    system_parts = []
    if dialogue.tools:
        system_parts.append(HERMES_PREAMBLE.format(tools=" ".join(_dumps(t) for t in dialogue.tools)))
    if own := _system_text(messages):
        system_parts.append(own)
    turns: list[dict[str, str]] = []
    if system_parts:
        turns.append({"from": "system", "value": "\n\n".join(system_parts)})
    responses: list[str] = []

    def flush() -> None:
        if responses:
            turns.append({"from": "tool", "value": "\n".join(responses)})
            responses.clear()

    for message in messages:
        if isinstance(message, ToolMessage):
            body = _dumps({"name": message.name, "content": message.content})
            responses.append(f"<tool_response>\n{body}\n</tool_response>")
            continue
        flush()
        if isinstance(message, UserMessage):
            turns.append({"from": "human", "value": message.content})
        elif isinstance(message, AssistantMessage):
            parts = [_think(reasoning, message) + (message.content or "")]
            for call in message.tool_calls or []:
                body = _dumps({"name": call.name, "arguments": call.parsed_arguments()})
                parts.append(f"<tool_call>\n{body}\n</tool_call>")
            turns.append({"from": "gpt", "value": "\n".join(p for p in parts if p)})
    flush()
    return {"conversations": turns}


Converter = Callable[..., dict[str, Any]]
CONVERTERS: dict[str, Converter] = {
    "openai": to_openai_record,
    "trl": to_trl_record,
    "sharegpt": to_sharegpt_record,
    "hermes": to_hermes_record,
}


def train_on_problem(fmt: str, train_on: str) -> str | None:
    """Why ``train_on`` cannot be exported in ``fmt``, or ``None`` when it can."""
    if train_on not in TRAIN_ON:
        return f"--train-on must be {' or '.join(TRAIN_ON)}, not {train_on!r}"
    if train_on == "continuation" and fmt not in MASKING_FORMATS:
        return (
            f"--train-on continuation needs a format whose trainer can leave turns out of the loss: "
            f"{' or '.join(MASKING_FORMATS)}; {fmt} has no such mark (LLaMA-Factory and Hermes-style loaders read "
            "no per-turn mask), so use one of those formats or --train-on all"
        )
    return None


def prefix_assistant_messages(dialogue: Dialogue, one_call_per_message: bool = False) -> int:
    """How many of the exported assistant messages belong to the imported conversation: they come first, as
    splitting parallel calls keeps the order of assistant messages (one message per call)."""
    prefix = [m for m in dialogue.messages if not isinstance(m, SystemMessage)][: dialogue.prefix_messages]
    return sum(
        max(1, len(m.tool_calls or [])) if one_call_per_message else 1
        for m in prefix
        if isinstance(m, AssistantMessage)
    )


def _continuation_only(fmt: str, record: dict[str, Any], masked: int) -> dict[str, Any]:
    """The record with its first ``masked`` assistant messages out of the loss, as ``fmt``'s trainer reads it."""
    messages = record["messages"]
    assistants = [index for index, message in enumerate(messages) if message["role"] == "assistant"]
    if len(assistants) <= masked:
        raise Unexportable("no assistant turn in the continuation")
    if fmt == "openai":
        untrained = set(assistants[:masked])
        record["messages"] = [{**m, "weight": 0} if i in untrained else m for i, m in enumerate(messages)]
        return record
    cut = assistants[masked]
    rest = {key: value for key, value in record.items() if key != "messages"}
    return {"prompt": messages[:cut], "completion": messages[cut:], **rest}


def whole_conversation(record: dict[str, Any]) -> dict[str, Any]:
    """A ``trl`` record as ``messages`` and ``tools``, whichever shape it was exported in."""
    if "prompt" not in record:
        return record
    return {"messages": record["prompt"] + record["completion"], "tools": record["tools"]}


def convert(
    dialogue: Dialogue,
    fmt: FormatName,
    reasoning: ReasoningMode = "drop",
    *,
    one_call_per_message: bool = False,
    nullable_flag: bool = False,
    string_arguments: bool = False,
    train_on: TrainOn = "all",
) -> dict[str, Any]:
    """The dialogue in format ``fmt``; raises ``Unexportable`` when the format cannot express it."""
    try:
        converter = CONVERTERS[fmt]
    except KeyError:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
    if string_arguments and fmt != "trl":
        raise ValueError("string arguments are an option of the trl format (openai's are always strings)")
    if problem := train_on_problem(fmt, train_on):
        raise ValueError(problem)
    if not any(isinstance(m, AssistantMessage) for m in dialogue.messages):
        raise Unexportable("no assistant turn")
    if nullable_flag:
        dialogue = dialogue.model_copy(update={"tools": nullable_as_flag(dialogue.tools)})
    record = converter(dialogue, reasoning, one_call_per_message=one_call_per_message)
    if string_arguments:
        calls = {
            call.id: call.function.arguments
            for message in dialogue.messages
            if isinstance(message, AssistantMessage)
            for call in message.tool_calls or []
        }
        record["messages"] = [_arguments_as_text(message, calls) for message in record["messages"]]
    if train_on == "continuation":
        record = _continuation_only(fmt, record, prefix_assistant_messages(dialogue, one_call_per_message))
    return record
