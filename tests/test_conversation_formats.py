"""Conversations to continue are read from the files people keep them in: OpenAI chat or ShareGPT records in
JSONL, JSON, Parquet or a saved ``datasets`` directory; a record that cannot be continued is reported, not fatal."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from dialforge.export.hf import dataset_features
from dialforge.model import AssistantMessage, ToolMessage, ToolSpec, UserMessage
from dialforge.pipeline.conversations import INFERRED_TOOL_DESCRIPTION, load_conversations

CONVERSATIONS = Path(__file__).parent / "data" / "conversations"
ORDER_TOOL = ToolSpec(
    name="get_order",
    description="Look up one order by id.",
    parameters={"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]},
)
ORDER_CHAT = [
    {"role": "system", "content": "You are the shop's assistant."},
    {"role": "user", "content": "Where is order 7?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": 7}'}}
    ]},
    {"role": "tool", "tool_call_id": "call_a", "name": "get_order", "content": '{"status": "shipped"}'},
    {"role": "assistant", "content": "It has shipped."},
]  # fmt: skip


def roles(messages: list) -> list[str]:
    return [message.role for message in messages]


def test_openai_records_in_their_common_variants() -> None:
    loaded = load_conversations(CONVERSATIONS / "openai.jsonl")
    assert loaded.unusable == []
    plain, trl, parts, opening = loaded.conversations
    assert [c.where.rsplit(", ", 1)[1] for c in loaded.conversations] == ["line 1", "line 3", "line 4", "line 5"]

    assert plain.system == "You are the shop's assistant."
    assert roles(plain.messages) == ["user", "assistant", "tool", "assistant"]
    assert plain.tools == [ORDER_TOOL]
    assert plain.messages[1].tool_calls[0].id == "call_a"

    # TRL style: arguments as an object, a call without id, a tool message without id or name, bare tools as text
    assert trl.system is None
    assert trl.messages[0].content == "  Cancel order 9, please.\n"  # byte for byte
    call = trl.messages[1].tool_calls[0]
    assert trl.messages[1].content == "" and call.parsed_arguments() == {"order_id": 9, "reason": "changed my mind"}
    answer = trl.messages[2]
    assert isinstance(answer, ToolMessage) and (answer.tool_call_id, answer.name) == (call.id, "cancel_order")
    assert [tool.name for tool in trl.tools] == ["cancel_order"]

    # text parts joined, several leading system messages joined, calls of the last message still open
    assert parts.system == "Be brief.\n\nAnswer in English."
    assert parts.messages[0] == UserMessage(content="What does order 3 contain?")
    assert roles(parts.messages) == ["user", "assistant"]
    (inferred,) = parts.tools  # called, never declared
    assert inferred.name == "get_order" and inferred.description == INFERRED_TOOL_DESCRIPTION
    assert inferred.parameters == {
        "type": "object",
        "properties": {"order_id": {"type": "number"}, "expand": {"type": "boolean"}},
        "required": ["order_id"],
    }

    assert opening.messages == [UserMessage(content="Hello?")] and opening.tools == []


def test_llama_factory_sharegpt_json() -> None:
    loaded = load_conversations(CONVERSATIONS / "sharegpt.json")
    assert loaded.unusable == []
    single, parallel = loaded.conversations
    assert single.where.endswith("sharegpt.json, record 1")
    assert single.system == "You are the shop's assistant."
    assert roles(single.messages) == ["user", "assistant", "tool", "assistant"]
    assert single.tools == [ORDER_TOOL]
    call = single.messages[1].tool_calls[0]
    assert single.messages[2].tool_call_id == call.id and call.parsed_arguments() == {"order_id": 7}

    assert parallel.system == "You are the shop's assistant.\n\nAnswer in English."
    assert roles(parallel.messages) == ["user", "assistant", "tool", "tool", "assistant", "user"]
    first, second = parallel.messages[1].tool_calls
    results = parallel.messages[2:4]
    assert [(r.tool_call_id, r.content) for r in results] == [(first.id, '{"total": 10}'), (second.id, '{"total": 20}')]
    assert [tool.name for tool in parallel.tools] == ["get_order"]


def test_the_old_and_the_llama_factory_sharegpt_spellings_read_alike(tmp_path: Path) -> None:
    turns = [("human", "user"), ("function_call", "function_call"), ("observation", "tool"), ("gpt", "assistant")]
    values = ["Where is order 7?", '{"name": "get_order", "arguments": "{\\"order_id\\": 7}"}', "shipped", "Shipped."]
    records = [
        {"conversations": [{"from": name[i], "value": v} for name, v in zip(turns, values, strict=True)]}
        for i in (0, 1)
    ]
    path = tmp_path / "chats.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(record) for record in records))
    old, new = load_conversations(path).conversations
    assert roles(old.messages) == roles(new.messages) == ["user", "assistant", "tool", "assistant"]
    assert old.messages[1].tool_calls[0].parsed_arguments() == {"order_id": 7}


def test_every_record_that_cannot_be_continued_says_why_and_none_stops_the_others() -> None:
    path = CONVERSATIONS / "unusable.jsonl"
    loaded = load_conversations(path)
    lines = path.read_text().splitlines()
    assert loaded.conversations == []
    assert [u.where for u in loaded.unusable] == [f"{path}, line {n}" for n in range(1, len(lines) + 1)]
    expected = {  # line: what the reason is about
        1: "not JSON",
        2: "'tools'",
        3: "not a JSON object",
        4: "'messages'",
        5: "empty",
        6: "only a system prompt",
        7: "'robot'",
        8: "without content",
        9: "'nope'",
        10: "['c1']",
        11: "not an object",
        12: "system message",
        13: "'image_url'",
        14: "'robot'",
        15: "not valid JSON",
        16: "neither content nor tool calls",
    }
    assert len(expected) == len(lines)
    for unusable in loaded.unusable:
        line = int(unusable.where.rsplit(" ", 1)[1])
        assert expected[line] in unusable.reason, unusable


def test_a_bad_line_among_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    good = orjson.dumps({"messages": [{"role": "user", "content": "café"}]})
    path.write_bytes(good + b"\n\n" + good.replace(b"caf\xc3\xa9", b"caf\xe9") + b"\n   \n" + good + b"\n")
    loaded = load_conversations(path)
    assert [entry.where for entry in loaded.entries] == [f"{path}, line {n}" for n in (1, 3, 5)]  # file order
    assert [c.where for c in loaded.conversations] == [f"{path}, line 1", f"{path}, line 5"]
    (bad,) = loaded.unusable
    assert bad.where == f"{path}, line 3"
    assert "0xe9" in bad.reason and "UTF-8" in bad.reason
    assert loaded.conversations[0].messages[0].content == "café"


def test_a_conversation_may_end_with_any_speaker(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    records = [ORDER_CHAT[:2], ORDER_CHAT[:3], ORDER_CHAT[:4], ORDER_CHAT]
    path.write_bytes(b"\n".join(orjson.dumps({"messages": m, "tools": [ORDER_TOOL.to_openai()]}) for m in records))
    loaded = load_conversations(path)
    assert loaded.unusable == []
    assert [roles(c.messages)[-1] for c in loaded.conversations] == ["user", "assistant", "tool", "assistant"]


def test_parquet_with_messages_as_json_features_text_or_structs(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    tools = [ORDER_TOOL.to_openai()]
    exported = datasets.Dataset.from_list(
        [{"messages": ORDER_CHAT, "tools": tools, "parallel_tool_calls": True}], features=dataset_features("openai")
    )
    exported.to_parquet(tmp_path / "exported.parquet")
    as_text = datasets.Dataset.from_list(
        [{"messages": orjson.dumps(ORDER_CHAT).decode(), "tools": orjson.dumps(tools).decode()}]
    )
    as_text.to_parquet(tmp_path / "text.parquet")
    as_structs = datasets.Dataset.from_list([{"messages": ORDER_CHAT, "tools": tools}])  # keys padded with None
    as_structs.to_parquet(tmp_path / "structs.parquet")
    for name in ("exported.parquet", "text.parquet", "structs.parquet"):
        loaded = load_conversations(tmp_path / name)
        assert loaded.unusable == []
        (conversation,) = loaded.conversations
        assert conversation.where == f"{tmp_path / name}, row 1"
        assert conversation.system == "You are the shop's assistant."
        assert roles(conversation.messages) == ["user", "assistant", "tool", "assistant"]
        assert conversation.tools == [ORDER_TOOL]


def test_a_saved_dataset_directory_with_sharegpt_rows(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    turns = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "?"}]
    rows = [{"conversations": turns, "system": "", "tools": ""}, {"conversations": [], "system": "", "tools": ""}]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(tmp_path / "saved")
    loaded = load_conversations(tmp_path / "saved")
    (conversation,) = loaded.conversations
    assert conversation.system is None and roles(conversation.messages) == ["user", "assistant", "user"]
    assert conversation.where == f"{tmp_path / 'saved'}, split train, row 1"
    assert [u.where for u in loaded.unusable] == [f"{tmp_path / 'saved'}, split train, row 2"]


def test_whole_file_problems_raise_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"cannot read the conversations file .*missing\.jsonl"):
        load_conversations(tmp_path / "missing.jsonl")
    (tmp_path / "chats.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match=r"chats\.csv.*\.jsonl, \.json or \.parquet"):
        load_conversations(tmp_path / "chats.csv")
    (tmp_path / "lines.json").write_text('{"messages": []}\n{"messages": []}\n')
    with pytest.raises(ValueError, match=r"lines\.json is not JSON.*\.jsonl"):
        load_conversations(tmp_path / "lines.json")
    (tmp_path / "not_a_dataset").mkdir()
    with pytest.raises(ValueError, match="not a dataset written by datasets' save_to_disk"):
        load_conversations(tmp_path / "not_a_dataset")

    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"text": "hi"}]).to_parquet(tmp_path / "text.parquet")
    with pytest.raises(ValueError, match=r"text\.parquet has no 'messages' .* or 'conversations'"):
        load_conversations(tmp_path / "text.parquet")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(ValueError, match=r"pip install 'dialforge\[hf\]'"):
        load_conversations(tmp_path / "text.parquet")


def test_an_assistant_message_keeps_its_text_beside_its_calls(tmp_path: Path) -> None:
    chat = [ORDER_CHAT[1], {**ORDER_CHAT[2], "content": "Let me look.\n"}]
    path = tmp_path / "chats.jsonl"
    path.write_bytes(orjson.dumps({"messages": chat}))
    (conversation,) = load_conversations(path).conversations
    assert isinstance(conversation.messages[1], AssistantMessage)
    assert conversation.messages[1].content == "Let me look.\n"
