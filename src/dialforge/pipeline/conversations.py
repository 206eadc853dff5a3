"""Existing conversations to continue (``dialforge extend``): OpenAI chat records or ShareGPT ones.

OpenAI: ``{"messages": [...], "tools": [...]}`` (tools optional). ShareGPT (LLaMA-Factory):
``{"conversations": [{"from": "human"|"gpt"|"system"|"function_call"|"observation", "value": ...}],
"tools": "<JSON string>"}``; function calls carry ``{"name", "arguments"}`` JSON and are given
fresh call ids, observations answer the calls before them in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dialforge.llm.server_reply import new_call_id
from dialforge.model.messages import (
    AssistantMessage,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
    parse_messages,
)
from dialforge.model.tools import ToolSpec


@dataclass
class ImportedConversation:
    where: str
    messages: list[Message]
    tools: list[ToolSpec] = field(default_factory=list)


def read_conversations(path: Path) -> list[ImportedConversation]:
    """Every conversation of a JSONL file; a bad line raises ``ValueError`` naming file, line and problem."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the conversations file {path}: {exc.strerror or exc}") from None
    conversations = []
    for number, raw in enumerate(content.splitlines(), start=1):
        where = f"{path}, line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line); "
                "save the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            conversations.append(_conversation(where, record))
        except (KeyError, TypeError, ValueError) as exc:  # JSON and validation errors are ValueErrors
            raise ValueError(
                f"{where}: not a conversation (OpenAI 'messages' or ShareGPT 'conversations'): {exc}"
            ) from None
    return conversations


def _conversation(where: str, record: Any) -> ImportedConversation:
    if not isinstance(record, dict):
        raise TypeError("a conversation is a JSON object")
    tools = record.get("tools") or []
    if isinstance(tools, str):
        tools = orjson.loads(tools)
    specs = [ToolSpec.from_openai(tool) for tool in tools]
    if "messages" in record:
        return ImportedConversation(where, parse_messages(record["messages"]), specs)
    return ImportedConversation(where, _from_sharegpt(record["conversations"]), specs)


def _from_sharegpt(turns: list[dict[str, Any]]) -> list[Message]:
    messages: list[Message] = []
    unanswered: list[ToolCall] = []
    for turn in turns:
        kind, value = turn["from"], turn["value"]
        if kind == "system":
            messages.append(SystemMessage(content=value))
        elif kind == "human":
            messages.append(UserMessage(content=value))
        elif kind == "gpt":
            messages.append(AssistantMessage(content=value))
        elif kind == "function_call":
            calls = orjson.loads(value)
            calls = calls if isinstance(calls, list) else [calls]
            tool_calls = [ToolCall.make(new_call_id(), c["name"], c.get("arguments", {})) for c in calls]
            messages.append(AssistantMessage(tool_calls=tool_calls))
            unanswered = list(tool_calls)
        elif kind == "observation":
            if not unanswered:
                raise ValueError("an observation answers no function call")
            call = unanswered.pop(0)
            messages.append(ToolMessage(tool_call_id=call.id, name=call.name, content=value))
        else:
            raise ValueError(f"unknown ShareGPT role {kind!r}")
    return messages
