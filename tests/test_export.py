"""``dialforge export``: every format on hand-made dialogues, the writer's filters, splits, Parquet and the CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.export import (
    FORMATS,
    ExportError,
    Unexportable,
    convert,
    export_run,
    nullable_as_flag,
    parse_split,
    split_parallel_calls,
    to_hermes_record,
    to_openai_record,
    to_sharegpt_record,
    to_trl_record,
)
from dialforge.export.formats import FormatName
from dialforge.export.writer import split_records
from dialforge.model import parse_messages
from dialforge.model.dialogue import Dialogue, Judgment
from dialforge.model.messages import AssistantMessage, SystemMessage, ToolCall, ToolMessage, UserMessage
from samples import write_music_config

runner = CliRunner()


def tool(name: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"the {name} tool",
            "parameters": {"type": "object", "properties": properties, "required": list(properties)},
        },
    }


TOOLS = [
    tool("get_weather", city={"type": "string", "description": "city name"}),
    tool("get_time", zone={"type": "string", "description": "IANA zone"}),
]


def dialogue(id: str = "d-1", *, status: str = "completed", verdict: str | None = "valid", **extra: Any) -> Dialogue:
    messages = [
        SystemMessage(content="You are a travel helper."),
        UserMessage(content="Weather and time in Oslo?"),
        AssistantMessage(
            content="Let me check both.",
            reasoning="Two independent lookups: call both at once.",
            tool_calls=[
                ToolCall.make("c1", "get_weather", {"city": "Oslo"}),
                ToolCall.make("c2", "get_time", {"zone": "Europe/Oslo"}),
            ],
        ),
        ToolMessage(tool_call_id="c2", name="get_time", content='{"error": "unknown zone"}'),
        ToolMessage(tool_call_id="c1", name="get_weather", content='{"temp_c": 4, "sky": "rain"}'),
        AssistantMessage(content="It is 4 °C and raining; I could not get the time.", reasoning="Report both."),
        UserMessage(content="Thanks!"),
        AssistantMessage(content="You're welcome."),
    ]
    judgment = Judgment(judgment=verdict, reasoning="ok") if verdict else None
    return Dialogue(
        id=id, mode="user", domain="travel", status=status, tools=TOOLS, messages=messages, judgment=judgment, **extra
    )


def write_run(run_dir: Path, dialogues: list[Dialogue]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "dialogues.jsonl").write_text("".join(d.model_dump_json() + "\n" for d in dialogues))
    return run_dir


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- formats -----------------------------------------------------------------------------------------------


def test_openai_round_trips_through_the_canonical_model_and_never_carries_reasoning() -> None:
    d = dialogue()
    for reasoning in ("keep", "drop"):
        record = json.loads(json.dumps(to_openai_record(d, reasoning)))
        assert set(record) == {"messages", "tools", "parallel_tool_calls"}
        assert record["parallel_tool_calls"] is True
        assert all("reasoning" not in m for m in record["messages"])
        calls = record["messages"][2]["tool_calls"]
        assert [c["function"]["arguments"] for c in calls] == ['{"city":"Oslo"}', '{"zone":"Europe/Oslo"}']
        back = parse_messages(record["messages"])
        assert back == [
            m.model_copy(update={"reasoning": None}) if isinstance(m, AssistantMessage) else m for m in d.messages
        ]
        Dialogue(id="x", mode="user", domain="t", tools=record["tools"], messages=back)  # still well formed


def test_openai_one_call_per_message_sets_parallel_false() -> None:
    record = to_openai_record(dialogue(), one_call_per_message=True)
    assert record["parallel_tool_calls"] is False
    assert all(len(m.get("tool_calls") or []) <= 1 for m in record["messages"])


def test_trl_string_arguments_are_the_agents_own_json_text_in_both_call_layouts() -> None:
    for split in (False, True):
        objects = convert(dialogue(), "trl", one_call_per_message=split)
        texts = convert(dialogue(), "trl", one_call_per_message=split, string_arguments=True)
        calls = [c for m in texts["messages"] for c in m.get("tool_calls") or []]
        assert [c["function"]["arguments"] for c in calls] == ['{"city":"Oslo"}', '{"zone":"Europe/Oslo"}']
        assert [m for m in texts["messages"] if "tool_calls" not in m] == [
            m for m in objects["messages"] if "tool_calls" not in m
        ]
    with pytest.raises(ValueError, match="trl"):
        convert(dialogue(), "sharegpt", string_arguments=True)


def test_trl_has_object_arguments_named_tool_messages_and_reasoning_content_on_keep() -> None:
    kept = to_trl_record(dialogue(), "keep")
    assert kept["tools"] == TOOLS
    assistant = kept["messages"][2]
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert assistant["reasoning_content"].startswith("Two independent")
    assert kept["messages"][3] == {
        "role": "tool",
        "tool_call_id": "c2",
        "name": "get_time",
        "content": '{"error": "unknown zone"}',
    }
    assert "tool_calls" not in kept["messages"][5]
    dropped = to_trl_record(dialogue(), "drop")
    assert all("reasoning_content" not in m for m in dropped["messages"])


def test_split_parallel_calls_puts_each_result_right_after_its_call() -> None:
    messages = split_parallel_calls(dialogue().messages)
    roles = [(m.role, getattr(m, "tool_call_id", None)) for m in messages[2:6]]
    assert roles == [("assistant", None), ("tool", "c1"), ("assistant", None), ("tool", "c2")]
    assert messages[2].content == "Let me check both." and messages[4].content is None
    Dialogue(id="x", mode="user", domain="t", tools=TOOLS, messages=messages)


def check_llama_factory_alternation(record: dict[str, Any]) -> None:
    turns = record["conversations"]
    assert len(turns) % 2 == 0
    for index, turn in enumerate(turns):
        allowed = ("human", "observation") if index % 2 == 0 else ("gpt", "function_call")
        assert turn["from"] in allowed, (index, turn)


def test_sharegpt_alternates_merges_parallel_results_and_lists_parallel_calls() -> None:
    record = to_sharegpt_record(dialogue(), "drop")
    check_llama_factory_alternation(record)
    assert record["system"] == "You are a travel helper."
    assert [t["function"]["name"] for t in [{"function": f} for f in json.loads(record["tools"])]] == [
        "get_weather",
        "get_time",
    ]
    turns = record["conversations"]
    assert [t["from"] for t in turns] == ["human", "function_call", "observation", "gpt", "human", "gpt"]
    assert json.loads(turns[1]["value"]) == [
        {"name": "get_weather", "arguments": {"city": "Oslo"}},
        {"name": "get_time", "arguments": {"zone": "Europe/Oslo"}},
    ]
    # results in call order (c1 then c2), although the tool messages came c2 first
    assert json.loads(turns[2]["value"]) == ['{"temp_c": 4, "sky": "rain"}', '{"error": "unknown zone"}']
    assert "Let me check" not in turns[1]["value"]  # text beside calls is dropped (documented)
    kept = to_sharegpt_record(dialogue(), "keep")
    assert kept["conversations"][1]["value"].startswith("<think>\nTwo independent")
    check_llama_factory_alternation(to_sharegpt_record(dialogue(), "keep", one_call_per_message=True))


def test_sharegpt_single_result_is_the_bare_content_and_trailing_user_is_dropped() -> None:
    d = dialogue()
    messages = split_parallel_calls(d.messages)[:-1]  # ends on the user's "Thanks!"
    record = to_sharegpt_record(d.model_copy(update={"messages": messages}))
    check_llama_factory_alternation(record)
    assert record["conversations"][2] == {"from": "observation", "value": '{"temp_c": 4, "sky": "rain"}'}
    assert record["conversations"][-1]["from"] == "gpt"


def test_hermes_uses_tool_call_and_tool_response_blocks() -> None:
    record = to_hermes_record(dialogue(), "keep")
    turns = record["conversations"]
    assert [t["from"] for t in turns] == ["system", "human", "gpt", "tool", "gpt", "human", "gpt"]
    assert "<tools>" in turns[0]["value"] and turns[0]["value"].endswith("You are a travel helper.")
    assert turns[2]["value"].startswith("<think>\nTwo independent")
    assert turns[2]["value"].count("<tool_call>") == 2
    assert '{"name": "get_weather", "arguments": {"city": "Oslo"}}' in turns[2]["value"]
    assert turns[3]["value"].count("<tool_response>") == 2
    assert "unknown zone" in turns[3]["value"]
    assert "<think>" not in json.dumps(to_hermes_record(dialogue(), "drop"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_ends_with_the_agent_even_when_the_record_does_not(fmt: FormatName) -> None:
    d = dialogue(status="failed", verdict=None)
    unanswered = d.model_copy(update={"messages": [*d.messages, UserMessage(content="And in Bergen?")]})

    assert convert(unanswered, fmt) == convert(d, fmt), "the request nobody answered is not exported"


def test_a_dialogue_without_an_assistant_turn_is_unexportable() -> None:
    d = Dialogue(id="e", mode="user", domain="t", tools=TOOLS, messages=[SystemMessage(content="s")])
    for fmt in ("openai", "trl", "sharegpt", "hermes"):
        with pytest.raises(Unexportable):
            convert(d, fmt)


# ---- writer ------------------------------------------------------------------------------------------------


def test_export_skips_failed_always_and_invalid_with_only_valid(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run",
        [
            dialogue("ok"),
            dialogue("bad", verdict="invalid"),
            dialogue("unjudged", verdict=None),
            dialogue("broke", status="failed", failure="agent error"),
        ],
    )
    everything = export_run(run, "openai", tmp_path / "all.jsonl")
    assert everything.written == {"all": 3} and everything.skipped == {"failed": 1}
    valid = export_run(run, "trl", tmp_path / "valid.jsonl", only_valid=True)
    assert valid.written == {"all": 1}
    assert valid.skipped == {"failed": 1, "judged invalid": 1, "not judged": 1}
    assert len(read_jsonl(tmp_path / "valid.jsonl")) == 1
    with_failed = export_run(run, "hermes", tmp_path / "f.jsonl", include_failed=True)
    assert with_failed.written == {"all": 4}


def test_truncated_dialogues_are_exported_unless_excluded_with_or_without_only_valid(tmp_path: Path) -> None:
    cut = dialogue("cut", truncated=True, failure="the dialogue reached 60 turns without finishing its tasks")
    run = write_run(tmp_path / "run", [dialogue("ok"), cut, dialogue("bad", verdict="invalid", truncated=True)])

    assert export_run(run, "trl", tmp_path / "a.jsonl", only_valid=True).written == {"all": 2}
    excluded = export_run(run, "trl", tmp_path / "b.jsonl", only_valid=True, include_truncated=False)
    assert (excluded.written, excluded.skipped) == ({"all": 1}, {"truncated": 2})
    cli = runner.invoke(
        app, ["export", str(run), "--format", "trl", "-o", str(tmp_path / "c.jsonl"), "--truncated", "exclude"]
    )
    assert cli.exit_code == 0 and "skipped: truncated 2" in cli.stdout
    assert len(read_jsonl(tmp_path / "c.jsonl")) == 1


def numbered(i: int) -> Dialogue:
    """A dialogue whose records tell it apart from the others: its first user message carries its number."""
    base = dialogue(f"d-{i}")
    messages = list(base.messages)
    messages[1] = UserMessage(content=f"Weather and time in Oslo? (#{i})")
    return base.model_copy(update={"messages": messages})


def test_split_is_deterministic_exact_and_disjoint(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [numbered(i) for i in range(20)])
    first = export_run(run, "openai", tmp_path / "a" / "out.jsonl", split={"train": 0.8, "test": 0.2})
    second = export_run(run, "openai", tmp_path / "b" / "out.jsonl", split={"train": 0.8, "test": 0.2})
    assert first.written == second.written == {"train": 16, "test": 4}
    for name in ("train", "test"):
        assert (tmp_path / "a" / f"out.{name}.jsonl").read_text() == (tmp_path / "b" / f"out.{name}.jsonl").read_text()
    users = {
        name: {r["messages"][1]["content"] for r in read_jsonl(tmp_path / "a" / f"out.{name}.jsonl")}
        for name in ("train", "test")
    }
    assert not users["train"] & users["test"] and len(users["train"] | users["test"]) == 20
    reseeded = export_run(run, "openai", tmp_path / "c" / "out.jsonl", split={"train": 0.8, "test": 0.2}, seed=7)
    assert reseeded.written == first.written
    assert (tmp_path / "c" / "out.test.jsonl").read_text() != (tmp_path / "a" / "out.test.jsonl").read_text()
    other_seed = split_records([(f"d-{i}", {"i": i}) for i in range(20)], {"train": 0.8, "test": 0.2}, seed=1)
    same_seed = split_records([(f"d-{i}", {"i": i}) for i in range(20)], {"train": 0.8, "test": 0.2}, seed=0)
    assert other_seed != same_seed
    assert sorted(r["i"] for part in same_seed.values() for r in part) == list(range(20))


def test_parse_split_rejects_bad_input() -> None:
    assert parse_split("train=0.95,test=0.05") == {"train": 0.95, "test": 0.05}
    for bad in ("train=0.9", "train", "train=x,test=0.5", "train=1.2,test=-0.2", "a=0.5,a=0.5"):
        with pytest.raises(ExportError):
            parse_split(bad)


@pytest.mark.parametrize("fmt", ["openai", "trl", "sharegpt", "hermes"])
def test_parquet_is_written_and_read_back(tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets not installed (pip install 'dialforge[hf]')")
    run = write_run(tmp_path / "run", [dialogue("a"), dialogue("b")])
    result = export_run(run, fmt, tmp_path / "out.parquet")
    assert result.written == {"all": 2}
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "out.parquet"), split="train")
    assert loaded.to_list() == read_jsonl_of(run, fmt, tmp_path)


def test_records_of_varying_shape_load_back_exactly_without_null_padding(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets not installed (pip install 'dialforge[hf]')")
    odd = dialogue("c").model_copy(update={"tools": [*TOOLS, tool("extra", n={"type": "integer"})]})
    run = write_run(tmp_path / "run", [dialogue("a"), odd])
    expected = read_jsonl_of(run, "trl", tmp_path)
    argument_keys = [
        set(call["function"]["arguments"])
        for record in expected
        for message in record["messages"]
        for call in message.get("tool_calls") or []
    ]
    assert len({frozenset(keys) for keys in argument_keys}) > 1, "the fixture must mix argument shapes"

    result = export_run(run, "trl", tmp_path / "trl.parquet", hf_dataset=tmp_path / "hf")
    from_parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / "trl.parquet"), split="train")
    from_disk = datasets.load_from_disk(str(tmp_path / "hf"))["train"]
    for loaded in (from_parquet, from_disk):
        assert loaded.to_list() == expected
        assert loaded[0]["messages"] == expected[0]["messages"]  # row access too: lists of message objects
    assert any("messages and tools" in note and "Json" in note for note in result.notes)


def read_jsonl_of(run: Path, fmt: str, tmp_path: Path) -> list[dict[str, Any]]:
    export_run(run, fmt, tmp_path / f"ref-{fmt}.jsonl")
    return read_jsonl(tmp_path / f"ref-{fmt}.jsonl")


def test_missing_optional_dependencies_name_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_hf(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "datasets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    run = write_run(tmp_path / "run", [dialogue()])
    monkeypatch.setattr(builtins, "__import__", no_hf)
    with pytest.raises(ExportError, match=r"pip install 'dialforge\[hf\]'"):
        export_run(run, "trl", tmp_path / "out.parquet")
    with pytest.raises(ExportError, match=r"pip install 'dialforge\[hf\]'"):
        export_run(run, "trl", tmp_path / "out.jsonl", hf_dataset=tmp_path / "ds")


# ---- CLI ---------------------------------------------------------------------------------------------------


def test_cli_exports_and_prints_counts(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue(f"d-{i}") for i in range(10)] + [dialogue("x", status="failed")])
    result = runner.invoke(
        app,
        [
            "export",
            str(run),
            "--format",
            "sharegpt",
            "-o",
            str(tmp_path / "o.jsonl"),
            "--split",
            "train=0.8,test=0.2",
            "--reasoning",
            "keep",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "written: 10 (train 8, test 2)" in result.stdout and "failed 1" in result.stdout
    for record in read_jsonl(tmp_path / "o.train.jsonl"):
        check_llama_factory_alternation(record)


def test_cli_missing_run_dir_or_dialogues_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--format", "trl", "-o", str(tmp_path / "o.jsonl")])
    assert missing.exit_code == 2 and "run directory not found" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["export", str(tmp_path / "empty"), "--format", "trl", "-o", str(tmp_path / "o.jsonl")])
    assert empty.exit_code == 2 and "no dialogues.jsonl" in empty.stderr
    bad = runner.invoke(
        app,
        ["export", str(tmp_path / "empty"), "--format", "trl", "-o", str(tmp_path / "o.jsonl"), "--split", "train=2"],
    )
    assert bad.exit_code == 2


def test_a_real_dry_run_exports_in_every_format(tmp_path: Path, chinook_path: Path) -> None:

    tools_dir = tmp_path / "cfg"
    tools_dir.mkdir()
    config = _music_config(tools_dir, chinook_path)
    out = tmp_path / "run"
    ran = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out), "--limit", "4"])
    assert ran.exit_code == 0, ran.output
    total = len((out / "dialogues.jsonl").read_text().splitlines())
    kept = [Dialogue.model_validate_json(line) for line in (out / "dialogues.jsonl").read_text().splitlines()]
    replies = [m for d in kept for m in d.messages if isinstance(m, AssistantMessage)]
    assert replies and {m.finish_reason for m in replies} <= {"stop", "tool_calls"}
    for fmt in ("openai", "trl", "sharegpt", "hermes"):
        result = export_run(out, fmt, tmp_path / f"{fmt}.jsonl", reasoning="keep")
        assert result.total_written + sum(result.skipped.values()) == total
        assert result.total_written > 0
        records = read_jsonl(tmp_path / f"{fmt}.jsonl")
        if fmt == "openai":
            for record in records:
                parse_messages(record["messages"])
        if fmt == "sharegpt":
            for record in records:
                check_llama_factory_alternation(record)


@pytest.mark.parametrize("fmt", ["openai", "trl", "sharegpt", "hermes"])
def test_the_finish_reason_stays_in_the_record_and_out_of_every_export(fmt: FormatName, tmp_path: Path) -> None:
    ended = dialogue()
    for message in ended.messages:
        if isinstance(message, AssistantMessage):
            message.finish_reason = "tool_calls" if message.tool_calls else "stop"
    older = json.loads(dialogue("d-2").model_dump_json())
    for message in older["messages"]:
        message.pop("finish_reason", None)  # a record written before messages kept it
    run = write_run(tmp_path / "run", [ended])
    with (run / "dialogues.jsonl").open("a") as file:
        file.write(json.dumps(older) + "\n")

    result = export_run(run, fmt, tmp_path / "out.jsonl", reasoning="keep")

    assert result.total_written == 2
    assert "finish_reason" not in (tmp_path / "out.jsonl").read_text()
    assert "finish_reason" in (run / "dialogues.jsonl").read_text()


def _music_config(directory: Path, chinook_path: Path) -> Path:
    return write_music_config(directory, chinook_path, per_domain=4, max_turns=12, tasks_per_dialogue=(1, 1))


def test_nullable_as_flag_moves_null_out_of_type_lists_at_every_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "status": {"type": ["string", "null"], "enum": ["placed", "shipped", None]},
            "ids": {"type": "array", "items": {"type": ["integer", "null"]}},
            "either": {"type": ["integer", "string", "null"]},
            "plain": {"type": "string"},
        },
    }
    flagged = nullable_as_flag(schema)
    properties = flagged["properties"]
    assert properties["status"] == {"type": "string", "enum": ["placed", "shipped", None], "nullable": True}
    assert properties["ids"]["items"] == {"type": "integer", "nullable": True}
    assert properties["either"] == {"type": ["integer", "string"], "nullable": True}
    assert properties["plain"] == {"type": "string"}
    assert schema["properties"]["status"]["type"] == ["string", "null"], "the input is not changed"


def test_a_failed_write_keeps_the_previous_output_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialforge.export import spool

    run = write_run(tmp_path / "run", [dialogue(f"d-{i}") for i in range(5)])
    out = tmp_path / "out.jsonl"
    export_run(run, "trl", out)
    before = out.read_bytes()
    write_run(run, [dialogue(f"e-{i}", verdict="invalid") for i in range(3)])
    real_read = spool.read_span
    reads = iter(range(100))

    def failing_read(handle: Any, span: tuple[int, int]) -> bytes:
        if next(reads) == 2:
            raise OSError(28, "No space left on device")
        return real_read(handle, span)

    monkeypatch.setattr(spool, "read_span", failing_read)
    with pytest.raises(ExportError, match=r"No space left on device.*earlier file there is unchanged"):
        export_run(run, "trl", out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "run"]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_exported_files_get_the_mode_the_umask_gives_any_new_file(tmp_path: Path, umask: int) -> None:
    run = write_run(tmp_path / "run", [dialogue(f"d-{i}") for i in range(4)])
    previous = os.umask(umask)
    try:
        result = export_run(run, "trl", tmp_path / "out.jsonl", split={"train": 0.5, "test": 0.5})
    finally:
        os.umask(previous)
    assert {stat.S_IMODE(path.stat().st_mode) for path in result.files} == {0o666 & ~umask}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.test.jsonl", "out.train.jsonl", "run"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_nothing_to_write_still_writes_every_output_empty(tmp_path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("datasets", reason="datasets not installed (pip install 'dialforge[hf]')")
    run = write_run(tmp_path / "run", [dialogue("a", status="failed")])
    out = tmp_path / f"out{suffix}"
    result = export_run(run, "trl", out, split={"train": 0.5, "test": 0.5}, hf_dataset=tmp_path / "hf")
    assert result.written == {"train": 0, "test": 0} and result.skipped == {"failed": 1}
    assert all(path.exists() for path in result.files)
    one = write_run(tmp_path / "one", [dialogue("a")])
    assert export_run(one, "trl", out, split={"train": 0.9, "test": 0.1}).written == {"train": 1, "test": 0}


def test_outputs_that_would_destroy_input_or_clash_are_refused_before_writing(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue("a")])
    original = (run / "dialogues.jsonl").read_bytes()
    with pytest.raises(ExportError, match=r"the run's own dialogues\.jsonl"):
        export_run(run, "trl", run / "dialogues.jsonl")
    with pytest.raises(ExportError, match="use letters, digits and '_'"):
        export_run(run, "trl", tmp_path / "out.jsonl", split={"train-a": 0.5, "test": 0.5})
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="something other than a saved dataset"):
        export_run(run, "trl", tmp_path / "out.jsonl", hf_dataset=tmp_path / "notes")
    with pytest.raises(ExportError, match="run directory not found"):
        export_run(tmp_path / "missing", "trl", tmp_path / "new" / "out.jsonl")
    with pytest.raises(ExportError, match=r"use a \.jsonl"):
        export_run(run, "trl", tmp_path / "out.json")
    assert (run / "dialogues.jsonl").read_bytes() == original
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "run"]


def test_a_split_named_all_is_a_split_like_any_other(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue(f"d-{i}") for i in range(10)])
    result = export_run(run, "trl", tmp_path / "out.jsonl", split={"all": 0.5, "train": 0.5})
    assert result.written == {"all": 5, "train": 5}
    assert [p.name for p in result.files] == ["out.all.jsonl", "out.train.jsonl"]


def test_a_saved_dataset_directory_is_replaced_whole(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets not installed (pip install 'dialforge[hf]')")
    run = write_run(tmp_path / "run", [dialogue(f"d-{i}") for i in range(4)])
    export_run(run, "trl", tmp_path / "out.jsonl", split={"train": 0.5, "test": 0.5}, hf_dataset=tmp_path / "hf")
    export_run(run, "trl", tmp_path / "out.jsonl", hf_dataset=tmp_path / "hf")
    assert sorted(datasets.load_from_disk(str(tmp_path / "hf"))) == ["train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "out.jsonl", "out.test.jsonl", "out.train.jsonl", "run"]


def test_read_and_spool_failures_are_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dialforge.export import spool

    run = write_run(tmp_path / "run", [dialogue("a")])
    source = run / "dialogues.jsonl"
    real_open = Path.open

    class FailingDisk:
        def __enter__(self) -> FailingDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def __iter__(self) -> Any:
            raise OSError(5, "Input/output error")

    def open_source(path: Path, *args: Any, **kwargs: Any) -> Any:
        return FailingDisk() if path == source else real_open(path, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(Path, "open", open_source)
        with pytest.raises(ExportError, match=r"could not read .*dialogues\.jsonl: .*Input/output error"):
            export_run(run, "trl", tmp_path / "out.jsonl")

    good = write_run(tmp_path / "good", [dialogue("a")])

    def full(handle: Any, record: dict[str, Any]) -> tuple[int, int]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool, "append", full)
    with pytest.raises(ExportError, match=r"could not spool the records .*No space left"):
        export_run(good, "trl", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
