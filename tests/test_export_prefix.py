"""``dialforge export --train-on``: an extended conversation trained on whole, or on its continuation only.

The imported part of a record (its first ``prefix_messages`` messages after the system prompt) must reach the
trainer with its assistant turns out of the loss, as each format's trainer reads it: ``"weight": 0`` for OpenAI,
the prompt of a prompt-completion record for TRL's SFTTrainer (the slow test tokenizes with SFTTrainer itself).
Formats with no such mark are refused; the default output is the one of a record without a prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from tests.test_export import TOOLS, read_jsonl, write_run
from typer.testing import CliRunner

from dialforge.cli.main import app
from dialforge.export import FORMATS, ExportError, Unexportable, convert, export_run, writer
from dialforge.export.formats import MASKING_FORMATS, FormatName
from dialforge.export.templates import TemplateCheck, check_template
from dialforge.model.dialogue import Dialogue, Judgment
from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, UserMessage

IMPORTED_ANSWER = "It is 4 °C and raining in Oslo; I could not get the time."
CONTINUED_ANSWER = "Bergen has 7 °C and clouds."


def extended(id: str = "x-1", prefix_messages: int = 5) -> Dialogue:
    """An imported exchange (a parallel call, its results, an answer) continued by a generated one; the person's
    last words, which nobody answered, are dropped by every format."""
    messages: list[Message] = [
        SystemMessage(content="You are a travel helper."),
        UserMessage(content="Weather and time in Oslo?"),
        AssistantMessage(
            tool_calls=[
                ToolCall.make("c1", "get_weather", {"city": "Oslo"}),
                ToolCall.make("c2", "get_time", {"zone": "Europe/Oslo"}),
            ]
        ),
        ToolMessage(tool_call_id="c1", name="get_weather", content='{"temp_c": 4, "sky": "rain"}'),
        ToolMessage(tool_call_id="c2", name="get_time", content='{"error": "unknown zone"}'),
        AssistantMessage(content=IMPORTED_ANSWER),
        UserMessage(content="And in Bergen?"),
        AssistantMessage(content="Checking Bergen.", tool_calls=[ToolCall.make("c3", "get_weather", {"city": None})]),
        ToolMessage(tool_call_id="c3", name="get_weather", content='{"temp_c": 7, "sky": "clouds"}'),
        AssistantMessage(content=CONTINUED_ANSWER),
        UserMessage(content="Thanks!"),
    ]
    return Dialogue(
        id=id,
        mode="user",
        domain="travel",
        tools=TOOLS,
        messages=messages,
        judgment=Judgment(judgment="valid", reasoning="ok"),
        prefix_messages=prefix_messages,
    )


def without_weights(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in m.items() if key != "weight"} for m in messages]


def assistant_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "assistant" and m["content"]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_default_trains_on_everything_exactly_as_a_record_without_a_prefix(fmt: FormatName) -> None:
    name: FormatName = fmt
    plain = convert(extended(prefix_messages=0), name)
    assert convert(extended(), name) == plain == convert(extended(), name, train_on="all")


@pytest.mark.parametrize("one_call_per_message", [False, True])
def test_openai_weighs_the_imported_assistant_messages_zero(one_call_per_message: bool) -> None:
    whole = convert(extended(), "openai", one_call_per_message=one_call_per_message)
    record = convert(extended(), "openai", one_call_per_message=one_call_per_message, train_on="continuation")
    assert without_weights(record["messages"]) == whole["messages"]
    assistants = [m for m in record["messages"] if m["role"] == "assistant"]
    imported = 3 if one_call_per_message else 2  # the parallel call is one message per call once split
    assert [m.get("weight") for m in assistants] == [0] * imported + [None, None]
    assert all("weight" not in m for m in record["messages"] if m["role"] != "assistant")
    assert assistant_texts(assistants[:imported]) == [IMPORTED_ANSWER]
    assert convert(extended(prefix_messages=0), "openai", train_on="continuation") == convert(
        extended(prefix_messages=0), "openai"
    )


@pytest.mark.parametrize("one_call_per_message", [False, True])
@pytest.mark.parametrize("string_arguments", [False, True])
def test_trl_puts_the_imported_part_in_the_prompt(one_call_per_message: bool, string_arguments: bool) -> None:
    options: dict[str, Any] = {"one_call_per_message": one_call_per_message, "string_arguments": string_arguments}
    whole = convert(extended(), "trl", **options)
    record = convert(extended(), "trl", train_on="continuation", **options)
    assert list(record) == ["prompt", "completion", "tools"]
    assert record["prompt"] + record["completion"] == whole["messages"]
    assert record["tools"] == whole["tools"]
    assert record["prompt"][-1] == {"role": "user", "content": "And in Bergen?"}
    assert record["completion"][0]["role"] == "assistant"
    assert assistant_texts(record["prompt"]) == [IMPORTED_ANSWER]
    assert assistant_texts(record["completion"]) == ["Checking Bergen.", CONTINUED_ANSWER]
    assert record["completion"][-1]["role"] == "assistant"  # the unanswered thanks stays out


def test_trl_without_a_prefix_trains_on_every_assistant_turn() -> None:
    record = convert(extended(prefix_messages=0), "trl", train_on="continuation")
    assert [m["role"] for m in record["prompt"]] == ["system", "user"]
    assert record["prompt"] + record["completion"] == convert(extended(prefix_messages=0), "trl")["messages"]


def test_a_prefix_ending_in_open_calls_leaves_their_results_in_the_prompt() -> None:
    record = convert(extended(prefix_messages=2), "trl", train_on="continuation")
    assert [m["role"] for m in record["prompt"]] == ["system", "user", "assistant", "tool", "tool"]
    assert [
        m.get("weight")
        for m in convert(extended(prefix_messages=2), "openai", train_on="continuation")["messages"]
        if m["role"] == "assistant"
    ] == [0, None, None, None]


@pytest.mark.parametrize("fmt", MASKING_FORMATS)
def test_a_continuation_with_no_assistant_turn_is_unexportable(fmt: FormatName) -> None:
    with pytest.raises(Unexportable, match="no assistant turn in the continuation"):
        convert(extended(prefix_messages=9), fmt, train_on="continuation")  # the rest is the unanswered thanks
    convert(extended(prefix_messages=9), fmt)


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - set(MASKING_FORMATS)))
def test_formats_without_a_per_turn_mask_refuse_the_continuation(fmt: FormatName, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="openai or trl"):
        convert(extended(prefix_messages=0), fmt, train_on="continuation")
    run = write_run(tmp_path / "run", [extended()])
    with pytest.raises(ExportError, match="openai or trl"):
        export_run(run, fmt, tmp_path / "out.jsonl", train_on="continuation")
    assert not (tmp_path / "out.jsonl").exists()
    cli = CliRunner().invoke(
        app, ["export", str(run), "--format", fmt, "-o", str(tmp_path / "o.jsonl"), "--train-on", "continuation"]
    )
    assert cli.exit_code == 2 and "openai or trl" in cli.output and "Traceback" not in cli.output


def test_an_unknown_train_on_value_is_refused(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [extended()])
    cli = CliRunner().invoke(
        app, ["export", str(run), "--format", "trl", "-o", str(tmp_path / "o.jsonl"), "--train-on", "prefix"]
    )
    assert cli.exit_code == 2 and "all or continuation" in cli.output


def test_the_default_file_is_byte_for_byte_that_of_records_without_a_prefix(tmp_path: Path) -> None:
    for fmt in FORMATS:
        with_prefix = write_run(tmp_path / "with", [extended("a"), extended("b", 2)])
        without = write_run(tmp_path / "without", [extended("a", 0), extended("b", 0)])
        export_run(with_prefix, fmt, tmp_path / f"with-{fmt}.jsonl")
        export_run(without, fmt, tmp_path / f"without-{fmt}.jsonl")
        assert (tmp_path / f"with-{fmt}.jsonl").read_bytes() == (tmp_path / f"without-{fmt}.jsonl").read_bytes()


def test_cli_writes_the_continuation_with_splits_and_counts_what_is_left_to_train(tmp_path: Path) -> None:
    dialogues = [extended(f"x-{i}") for i in range(8)] + [extended("all-imported", 9)]
    run = write_run(tmp_path / "run", dialogues)
    out = tmp_path / "openai.jsonl"
    cli = CliRunner().invoke(
        app,
        [
            "export",
            str(run),
            "--format",
            "openai",
            "-o",
            str(out),
            "--train-on",
            "continuation",
            "--split",
            "train=0.75,test=0.25",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert "no assistant turn in the continuation 1" in cli.output
    records = read_jsonl(tmp_path / "openai.train.jsonl") + read_jsonl(tmp_path / "openai.test.jsonl")
    assert len(records) == 8
    for record in records:
        assert [m.get("weight") for m in record["messages"] if m["role"] == "assistant"] == [0, 0, None, None]


def test_hf_dataset_of_a_trl_continuation_has_prompt_and_completion_columns(
    tmp_path: Path, test_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets not installed (pip install 'dialforge[hf]')")
    checks: list[TemplateCheck] = []

    def recorded_check(template: Path, records: Iterable[dict[str, Any]]) -> TemplateCheck:
        checks.append(check_template(template, records))
        return checks[-1]

    monkeypatch.setattr(writer, "check_template", recorded_check)
    run = write_run(tmp_path / "run", [extended(f"x-{i}") for i in range(4)])
    result = export_run(
        run,
        "trl",
        tmp_path / "trl.parquet",
        hf_dataset=tmp_path / "hf",
        split={"train": 0.5, "test": 0.5},
        train_on="continuation",
        check_templates=[test_data / "chat_templates" / "tool_chat_template_qwen2.5.jinja"],
    )
    assert result.written == {"train": 2, "test": 2}
    expected = convert(extended(), "trl", train_on="continuation")
    saved = datasets.load_from_disk(str(tmp_path / "hf"))
    for split in ("train", "test"):
        assert set(saved[split].column_names) == {"prompt", "completion", "tools"}
        parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / f"trl.{split}.parquet"), split="train")
        for row in [*saved[split].to_list(), *parquet.to_list()]:
            assert row == json.loads(json.dumps(expected))
    assert [(check.records, check.whole) for check in checks] == [(4, 4)]  # rendered as whole conversations


@pytest.mark.slow
def test_sft_trainer_computes_no_loss_on_the_imported_part(tmp_path: Path, test_data: Path) -> None:
    from tests.test_consumers import TEMPLATE, need, tiny_model, tiny_tokenizer

    datasets = need("datasets")
    need("torch")
    need("transformers")
    trl = need("trl")
    run = write_run(tmp_path / "run", [extended(f"x-{i}") for i in range(2)])
    export_run(run, "trl", tmp_path / "whole.jsonl")
    export_run(run, "trl", tmp_path / "continuation.parquet", train_on="continuation")
    records = read_jsonl(tmp_path / "whole.jsonl")
    tokenizer = tiny_tokenizer(records, (test_data / "chat_templates" / TEMPLATE).read_text())
    model = tiny_model(tokenizer)

    def trained_texts(data_file: Path, kind: str) -> list[tuple[str, str]]:
        """Each record's whole text and the text of its tokens with a loss, as SFTTrainer prepares them."""
        arguments = trl.SFTConfig(
            output_dir=str(tmp_path / kind), max_length=65536, report_to="none", use_cpu=True, save_strategy="no"
        )
        dataset = datasets.load_dataset(kind, data_files=str(data_file), split="train")
        trainer = trl.SFTTrainer(model=model, args=arguments, train_dataset=dataset, processing_class=tokenizer)
        out = []
        for row in trainer.train_dataset:
            labels = row.get("labels") or row["input_ids"]
            trained = [token for token, label in zip(row["input_ids"], labels, strict=True) if label != -100]
            out.append((tokenizer.decode(row["input_ids"]), tokenizer.decode(trained)))
        return out

    for _, trained in trained_texts(tmp_path / "whole.jsonl", "json"):
        assert IMPORTED_ANSWER in trained and CONTINUED_ANSWER in trained
    for (text, trained), record in zip(
        trained_texts(tmp_path / "continuation.parquet", "parquet"), records, strict=True
    ):
        assert text == tokenizer.apply_chat_template(record["messages"], tools=record["tools"], tokenize=False)
        assert IMPORTED_ANSWER in text and IMPORTED_ANSWER not in trained
        assert '"Oslo"' not in trained  # the imported parallel call
        assert CONTINUED_ANSWER in trained and '"city": null' in trained  # the continuation's call and answer
