"""Existing conversations to continue (``dialforge extend``), in the shapes people keep them in.

Files: ``.jsonl`` (one record per line; empty lines are skipped), ``.json`` (a JSON array of records, as
LLaMA-Factory datasets are, or one record), ``.parquet`` (read with ``datasets``), or a directory written by
``datasets``' ``save_to_disk`` (every split, in order). ``datasets`` is imported only for the last two
(``pip install 'dialforge[hf]'``); there a record is a row, and ``messages``/``tools`` may be lists of objects
(``Json`` features, as dialforge's own Hugging Face export writes them) or JSON text.

Records:

- OpenAI chat: ``{"messages": [...], "tools": [...]}``. Roles ``system`` (or ``developer``), ``user``,
  ``assistant``, ``tool``. ``content`` is text, a list of ``{"type": "text", "text": ...}`` parts (joined as they
  are, with nothing between), or ``null`` for an assistant message with ``tool_calls``. Call ``arguments`` are a
  JSON string (kept as written) or an object (Hugging Face/TRL style); a call without an id gets one made from
  its position. A tool message answers the call its ``tool_call_id`` names, or else the first open call of the
  assistant message before it (the one of its ``name`` when it has one), and takes its name from that call.
- ShareGPT: ``{"conversations": [{"from": ..., "value": ...}], "system": "...", "tools": "<JSON string>"}``
  with ``human``/``gpt``/``system``/``function_call``/``observation`` (LLaMA-Factory) or ``user``/
  ``assistant``/``tool``. A ``function_call`` value is ``{"name", "arguments"}`` as JSON, or a JSON list of them;
  its calls get ids made from their position and the observations after it answer them in order. One
  observation that is a JSON list of as many strings as there were parallel calls holds one result per call
  (how dialforge exports them).
- Tools: OpenAI tool objects or bare ``{"name", "description", "parameters"}`` functions, as a list or as the
  JSON text of one. A tool the conversation calls without declaring it gets a spec inferred from its calls'
  arguments (their JSON types; required: the names every call gives).

The leading system messages (and ShareGPT's ``system`` field) are the conversation's system prompt, joined with a
blank line. Text is kept byte for byte. A record that cannot be continued becomes an ``UnusableConversation``
saying why and what would fix it; only a problem with the whole file raises ``ValueError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from dialforge.errors import HF_HINT
from dialforge.model.conversation import conversation_problems
from dialforge.model.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from dialforge.model.tools import ToolSpec


@dataclass(frozen=True)
class ImportedConversation:
    """A conversation ready to continue: its messages (no system prompt), system prompt and tools."""

    where: str
    messages: list[Message]
    system: str | None
    tools: list[ToolSpec]


@dataclass(frozen=True)
class UnusableConversation:
    """A record that cannot be continued: where it is, why, and what would fix it."""

    where: str
    reason: str


@dataclass
class ConversationFile:
    """What a file holds, in file order: conversations to continue and records that cannot be."""

    entries: list[ImportedConversation | UnusableConversation]

    @property
    def conversations(self) -> list[ImportedConversation]:
        return [entry for entry in self.entries if isinstance(entry, ImportedConversation)]

    @property
    def unusable(self) -> list[UnusableConversation]:
        return [entry for entry in self.entries if isinstance(entry, UnusableConversation)]


class _Unusable(ValueError):
    """Why one record cannot be continued; becomes an ``UnusableConversation``."""


INFERRED_TOOL_DESCRIPTION = (
    "Not declared by the conversation: known only from the arguments of the conversation's calls to it."
)
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
_SHAREGPT_ROLES |= {"system": "system", "observation": "tool", "tool": "tool", "function_call": "function_call"}
_SYSTEM_ROLES = ("system", "developer")


def load_conversations(path: Path) -> ConversationFile:
    """Every conversation of the file, and every record that cannot be continued with its reason.

    Raises ``ValueError`` only when the file as a whole cannot be read as conversations.
    """
    loaded = ConversationFile([])
    for where, record in _records(path):
        try:
            if isinstance(record, _Unusable):
                raise record
            loaded.entries.append(_imported(where, record))
        except _Unusable as exc:
            loaded.entries.append(UnusableConversation(where, str(exc)))
    return loaded


# --- records of a file -------------------------------------------------------------------------------------------

_Record = tuple[str, Any]  # where, and the record (or the _Unusable that stands for a line that is none)


def _records(path: Path) -> Iterator[_Record]:
    if path.is_dir():
        return _dataset_records(path, _saved_dataset(path))
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_records(path, _read(path))
    if suffix == ".json":
        return _json_records(path, _read(path))
    if suffix == ".parquet":
        return _parquet_records(path)
    raise ValueError(
        f"{path}: conversations are read from .jsonl, .json or .parquet files or a directory written by datasets' "
        f"save_to_disk, not {suffix or 'a file without an extension'}; save them in one of these"
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the conversations file {path}: {exc.strerror or exc}") from None


def _jsonl_records(path: Path, content: bytes) -> Iterator[_Record]:
    for number, raw in enumerate(content.removeprefix(b"\xef\xbb\xbf").splitlines(), start=1):
        where = f"{path}, line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                where,
                _Unusable(
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line); "
                    "save the file as UTF-8"
                ),
            )
            continue
        if not line.strip():
            continue
        try:
            yield where, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield where, _Unusable(f"not JSON ({exc}); each line must be one JSON object, a whole conversation")


def _json_records(path: Path, content: bytes) -> Iterator[_Record]:
    try:
        value = orjson.loads(content.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not JSON ({exc}); a .json file holds a JSON array of conversations "
            "(a file of one JSON object per line is JSON Lines: name it .jsonl)"
        ) from None
    records = value if isinstance(value, list) else [value]
    for number, record in enumerate(records, start=1):
        yield f"{path}, record {number}", record


def _parquet_records(path: Path) -> Iterator[_Record]:
    datasets = _datasets_module(path)
    with tempfile.TemporaryDirectory(prefix="dialforge-conversations-") as cache:
        try:
            dataset = datasets.Dataset.from_parquet(str(path), cache_dir=cache)
        except Exception as exc:  # pyarrow and datasets raise many kinds for a missing or damaged file
            raise ValueError(f"cannot read {path} as Parquet: {exc}") from None
        yield from _dataset_records(path, dataset)


def _saved_dataset(path: Path) -> Any:
    datasets = _datasets_module(path)
    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:  # not a saved dataset: FileNotFoundError, or datasets' own errors for damaged ones
        raise ValueError(
            f"{path} is a directory but not a dataset written by datasets' save_to_disk ({exc}); "
            "give a .jsonl, .json or .parquet file or such a directory"
        ) from None


def _datasets_module(path: Path) -> Any:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"reading {path} needs the datasets library: {HF_HINT}") from None
    return datasets


def _dataset_records(path: Path, dataset: Any) -> Iterator[_Record]:
    splits = dataset.items() if hasattr(dataset, "items") else [(None, dataset)]  # a DatasetDict, or one Dataset
    for split, rows in splits:
        if not {"messages", "conversations"} & set(rows.column_names):
            raise ValueError(
                f"{path} has no 'messages' (OpenAI) or 'conversations' (ShareGPT) column, only "
                f"{rows.column_names}; rename the column that holds the conversations"
            )
        place = f"{path}, " if split is None else f"{path}, split {split}, "
        for number, row in enumerate(rows, start=1):
            yield f"{place}row {number}", row


# --- one record --------------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    """One message as an OpenAI-shaped dict, and where it was (``message 3``, ``turn 3``) for reasons."""

    at: str
    data: dict[str, Any]


def _imported(where: str, record: Any) -> ImportedConversation:
    if not isinstance(record, dict):
        raise _Unusable(
            "not a JSON object; a conversation is an object with 'messages' (OpenAI) or 'conversations' (ShareGPT)"
        )
    declared = _declared_tools(record.get("tools"))
    system_field = None
    if record.get("messages") is not None:
        raw = [_message(f"message {n}", m) for n, m in enumerate(_list(record["messages"], "'messages'"), start=1)]
    elif record.get("conversations") is not None:
        raw = _from_sharegpt(_list(record["conversations"], "'conversations'"))
        system_field = record.get("system") or None
    else:
        raise _Unusable(
            "has neither 'messages' (OpenAI chat) nor 'conversations' (ShareGPT); give the conversation in one of them"
        )
    system, rest = _system_prompt(raw, system_field)
    messages = _messages(rest)
    if not messages:
        if system is not None:
            raise _Unusable("only a system prompt: nothing to continue; give at least the user's first message")
        raise _Unusable("no messages: an empty conversation cannot be continued; leave it out")
    tools = declared + _inferred_tools(messages, {tool.name for tool in declared})
    problems = conversation_problems(messages, [tool.name for tool in tools], allow_pending=True)
    if problems:
        numbered = [re.sub(r"^message (\d+)", lambda m: rest[int(m[1])].at, p) for p in problems]
        raise _Unusable(
            "; ".join(numbered) + ". Answer every tool call with a tool message right after the assistant message "
            "that made it (only the last message's calls may be open) and give arguments as a JSON object"
        )
    return ImportedConversation(where, messages, system, tools)


def _message(at: str, value: Any) -> _Raw:
    if not isinstance(value, dict):
        raise _Unusable(f"{at}: not a message object ({{'role': ..., 'content': ...}}); give it as one")
    return _Raw(at, value)


def _json_text(value: Any, what: str) -> Any:
    """A value that may be given as JSON text (Parquet columns, ShareGPT's ``tools``) as the value itself."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _Unusable(f"{what} is text but not JSON ({exc}); give it as a JSON list") from None


def _list(value: Any, what: str) -> list[Any]:
    items = _json_text(value, what)
    if not isinstance(items, list):
        raise _Unusable(f"{what} is {type(items).__name__}, not a list; give it as a list")
    return [_json_text(item, f"an item of {what}") for item in items]


def _declared_tools(value: Any) -> list[ToolSpec]:
    if value is None or value == "":
        return []
    specs = []
    for number, tool in enumerate(_list(value, "'tools'"), start=1):
        try:
            specs.append(ToolSpec.from_openai(tool))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise _Unusable(
                f"tool {number} of 'tools' is not a tool ({_problem(exc)}); give OpenAI tool objects "
                '({"type": "function", "function": {"name", "description", "parameters"}}) or bare functions'
            ) from None
    return specs


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'tool'}: {e['msg']}" for e in exc.errors())
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _from_sharegpt(turns: list[Any]) -> list[_Raw]:
    raw: list[_Raw] = []
    parallel = 0  # calls of the last function_call turn, while no observation answered them
    for index, turn in enumerate(turns):
        at = f"turn {index + 1}"
        if isinstance(turn, dict) and "from" not in turn and "role" in turn:  # an OpenAI message among them
            raw.append(_Raw(at, turn))
            continue
        if not isinstance(turn, dict) or "from" not in turn:
            raise _Unusable(f"{at}: not a ShareGPT turn ({{'from': ..., 'value': ...}}); give every turn both keys")
        role, value = _SHAREGPT_ROLES.get(turn["from"]), turn.get("value")
        if role is None:
            raise _Unusable(
                f"{at}: unknown ShareGPT role {turn['from']!r} (known: human, gpt, system, function_call, "
                "observation, user, assistant, tool); use one of them"
            )
        if role == "function_call":
            try:
                calls = orjson.loads(value) if isinstance(value, str) else value
            except orjson.JSONDecodeError as exc:
                raise _Unusable(
                    f'{at}: a function_call value that is not JSON ({exc}); give {{"name", "arguments"}} '
                    "or a list of them"
                ) from None
            calls = calls if isinstance(calls, list) else [calls]
            raw.append(_Raw(at, {"role": "assistant", "content": None, "tool_calls": calls}))
            parallel = len(calls)
        elif role == "tool" and (results := _parallel_results(value, parallel, turns, index)):
            raw.extend(_Raw(at, {"role": "tool", "content": result}) for result in results)
            parallel = 0
        else:
            raw.append(_Raw(at, {"role": role, "content": value}))
            parallel = 0
    return raw


def _parallel_results(value: Any, parallel: int, turns: list[Any], index: int) -> list[str] | None:
    """The results of parallel calls given as ONE observation holding a JSON list of them, one per call."""
    following = turns[index + 1] if index + 1 < len(turns) else None
    answered_later = isinstance(following, dict) and following.get("from") in ("observation", "tool")
    if parallel < 2 or not isinstance(value, str) or answered_later:
        return None
    try:
        results = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if isinstance(results, list) and len(results) == parallel and all(isinstance(r, str) for r in results):
        return results
    return None


def _system_prompt(raw: list[_Raw], system_field: Any) -> tuple[str | None, list[_Raw]]:
    parts = [] if system_field is None else [_text(system_field, "ShareGPT's 'system' field", "system")]
    start = 0
    while start < len(raw) and raw[start].data.get("role") in _SYSTEM_ROLES:
        parts.append(_text(raw[start].data.get("content"), raw[start].at, "system"))
        start += 1
    rest = raw[start:]
    for message in rest:
        if message.data.get("role") in _SYSTEM_ROLES:
            raise _Unusable(
                f"{message.at}: a system message after the conversation began; only system messages at the "
                "start are a system prompt: move it there or drop it"
            )
    return ("\n\n".join(parts) if parts else None), rest


def _text(content: Any, at: str, role: str) -> str:
    """The text of a message's content: a string, or a list of text parts joined as they are."""
    if isinstance(content, str):
        return content
    if content is None:
        raise _Unusable(f"{at}: a {role} message without content; give its text or leave the conversation out")
    if not isinstance(content, list):
        raise _Unusable(f"{at}: content is {type(content).__name__}; give it as text or a list of text parts")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        if kind != "text" or not isinstance(part.get("text"), str):
            raise _Unusable(
                f"{at}: a content part of type {kind!r}; only text parts ({{'type': 'text', 'text': ...}}) "
                "can be continued: drop the others"
            )
        texts.append(part["text"])
    return "".join(texts)


def _messages(raw: list[_Raw]) -> list[Message]:
    messages: list[Message] = []
    open_calls: list[ToolCall] = []  # calls of the last assistant message that no tool message answered yet
    for item in raw:
        data, at = item.data, item.at
        role = data.get("role")
        if role == "user":
            messages.append(UserMessage(content=_text(data.get("content"), at, role)))
            open_calls = []
        elif role == "assistant":
            message = _assistant(data, at)
            messages.append(message)
            open_calls = list(message.tool_calls or [])
        elif role == "tool":
            call = _answered_call(data, open_calls, at)
            open_calls.remove(call)
            name = data.get("name") or call.name
            messages.append(ToolMessage(tool_call_id=call.id, name=name, content=_text(data.get("content"), at, role)))
        else:
            raise _Unusable(
                f"{at}: unknown role {role!r} (known: system, developer, user, assistant, tool); use one of them"
            )
    return messages


def _assistant(data: dict[str, Any], at: str) -> AssistantMessage:
    calls = [
        _tool_call(call, at, number)
        for number, call in enumerate(_list(data.get("tool_calls") or [], f"{at}: 'tool_calls'"))
    ]
    content = data.get("content")
    if content is None and not calls:
        raise _Unusable(f"{at}: an assistant message with neither content nor tool calls; give its text")
    reasoning = data.get("reasoning") or data.get("reasoning_content")
    return AssistantMessage(
        content=None if content is None else _text(content, at, "assistant"),
        tool_calls=calls or None,
        reasoning=reasoning if isinstance(reasoning, str) else None,
    )


def _tool_call(raw: Any, at: str, number: int) -> ToolCall:
    """The ``number``-th call of the message at ``at``; one without an id gets one made from where it is, so that
    reading the file again gives the same conversation (stored goals are keyed on it)."""
    function = (raw.get("function") or raw) if isinstance(raw, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(function, dict) or not isinstance(name, str) or not name:
        raise _Unusable(
            f'{at}: a tool call without a function name; give {{"function": {{"name", "arguments"}}}} '
            'or {"name", "arguments"}'
        )
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        text = arguments if arguments.strip() else "{}"
    else:
        text = orjson.dumps({} if arguments is None else arguments).decode()
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = "call_" + hashlib.blake2b(f"{at}|{number}".encode(), digest_size=12).hexdigest()
    return ToolCall.make(call_id, name, text)


def _answered_call(data: dict[str, Any], open_calls: list[ToolCall], at: str) -> ToolCall:
    """The open call a tool message answers: the one it names by id, else the first (of its name, if named)."""
    call_id, name = data.get("tool_call_id"), data.get("name")
    if call_id:
        candidates = [call for call in open_calls if call.id == call_id]
    else:
        candidates = ([call for call in open_calls if call.name == name] or open_calls) if name else open_calls
    if not candidates:
        if call_id:
            raise _Unusable(
                f"{at}: a tool message answering call {call_id!r}, which the assistant message before it did not "
                "make or which is answered already; add the call or drop the result"
            )
        raise _Unusable(
            f"{at}: a tool message that answers no call: the assistant message before it has no unanswered call; "
            "add the call or drop the result"
        )
    return candidates[0]


# --- tools known only from their calls ---------------------------------------------------------------------------


def _inferred_tools(messages: list[Message], declared: set[str]) -> list[ToolSpec]:
    """A spec for every tool the conversation calls without declaring it, from the arguments of its calls."""
    arguments: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        for call in (message.tool_calls or []) if isinstance(message, AssistantMessage) else []:
            if call.name in declared:
                continue
            calls = arguments.setdefault(call.name, [])
            with contextlib.suppress(ValueError):  # arguments that are no JSON object: the structural check says so
                calls.append(call.parsed_arguments())
    specs = []
    for name, calls in arguments.items():
        try:
            specs.append(ToolSpec(name=name, description=INFERRED_TOOL_DESCRIPTION, parameters=_schema_of(calls)))
        except ValidationError as exc:
            raise _Unusable(f"it calls {name!r}, which it does not declare: {_problem(exc)}") from None
    return specs


def _schema_of(calls: list[dict[str, Any]]) -> dict[str, Any]:
    types: dict[str, set[str]] = {}
    for arguments in calls:
        for key, value in arguments.items():
            types.setdefault(key, set()).add(_json_type(value))
    properties = {}
    for key, seen in types.items():
        if {"integer", "number"} <= seen:
            seen.discard("integer")
        properties[key] = {"type": seen.pop() if len(seen) == 1 else sorted(seen)}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [key for key in types if calls and all(key in arguments for arguments in calls)]
    if required:
        schema["required"] = required
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
