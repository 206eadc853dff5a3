"""The exported ``trl`` data in the trainers that consume it: TRL's SFTTrainer and axolotl's ``chat_template`` loader.

Offline: the tokenizer is a small byte-level BPE trained here on the data, carrying the real xLAM-Qwen template
from ``tests/data/chat_templates/``; the model is a randomly initialised Qwen2 with one tiny layer. So these
tests check the data path (loading, templating, tokenizing, a training step), not what a model learns.

Slow, and they need torch, transformers, trl and axolotl (``.ci/run`` installs them for its second step). They
skip when those are missing, unless ``DIALFORGE_REQUIRE_CONSUMERS=1`` makes a missing library a failure.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.test_export import dialogue, read_jsonl

from dialforge.export import export_run
from dialforge.model.messages import AssistantMessage, ToolCall, ToolMessage, UserMessage

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "tool_chat_template_xlam_qwen.jinja"


def need(module: str) -> ModuleType:
    if os.environ.get("DIALFORGE_REQUIRE_CONSUMERS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(
        module,
        reason=f"{module} is not installed: pip install torch==2.13.0 trl transformers accelerate && "
        "pip install --no-deps axolotl colorama addict",
    )


def with_null_argument(id: str) -> Any:
    """A dialogue whose agent passed an explicit ``null``: the value a trainer must not lose."""
    base = dialogue(id)
    call = ToolCall.make("n1", "get_weather", {"city": None})
    extra = [
        UserMessage(content="And for no city in particular?"),
        AssistantMessage(tool_calls=[call]),
        ToolMessage(tool_call_id="n1", name="get_weather", content='{"error": "city is required"}'),
        AssistantMessage(content="I need a city for that."),
    ]
    return base.model_copy(update={"messages": [*base.messages, *extra]})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart pipeline (user simulator, real SQL tools) on the dry-run model, plus one null argument."""
    folder = tmp_path_factory.mktemp("consumers")
    command = [sys.executable, "-m", "dialforge.cli.main", "run", str(ROOT / "examples" / "quickstart.yaml")]
    command += ["--dry-run", "--limit", "4", "--out", str(folder / "run")]
    subprocess.run(command, check=True, capture_output=True, timeout=300, cwd=ROOT)
    with (folder / "run" / "dialogues.jsonl").open("a") as handle:
        handle.write(with_null_argument("null-argument").model_dump_json() + "\n")
    return folder / "run"


@pytest.fixture(scope="module")
def template_path(test_data: Path) -> Path:
    return test_data / "chat_templates" / TEMPLATE


def tiny_tokenizer(records: list[dict[str, Any]], template: str) -> Any:
    """A byte-level BPE trained on the records' own text, as a transformers tokenizer with ``template``."""
    tokenizers = need("tokenizers")
    transformers = need("transformers")
    texts = [json.dumps(record, ensure_ascii=False) for record in records]
    model = tokenizers.Tokenizer(tokenizers.models.BPE())
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    model.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<|im_start|>", "<|im_end|>", "<pad>", "<s>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    model.train_from_iterator(texts, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=model, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    tokenizer.chat_template = template
    return tokenizer


def tiny_model(tokenizer: Any) -> Any:
    """A randomly initialised Qwen2 with one tiny layer over ``tokenizer``'s vocabulary."""
    transformers = need("transformers")
    return transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )


def rendered_calls(record: dict[str, Any]) -> list[str]:
    """How the xLAM-Qwen template writes each tool call of the record (arguments as an object, nulls included)."""
    calls = [call["function"] for m in record["messages"] for call in m.get("tool_calls") or []]
    return [
        json.dumps({"name": c["name"], "arguments": c["arguments"]}, ensure_ascii=False)
        for c in calls
        if not isinstance(c["arguments"], str)
    ]


def test_trl_sft_trainer_tokenizes_every_record_whole_and_trains(
    run_dir: Path, template_path: Path, tmp_path: Path
) -> None:
    datasets = need("datasets")
    need("torch")
    need("transformers")
    trl = need("trl")
    export_run(run_dir, "trl", tmp_path / "train.jsonl", hf_dataset=tmp_path / "hf")
    export_run(run_dir, "trl", tmp_path / "train.parquet")
    records = read_jsonl(tmp_path / "train.jsonl")
    assert any(None in json.loads(c)["arguments"].values() for r in records for c in rendered_calls(r))

    from_json = datasets.load_dataset("json", data_files=str(tmp_path / "train.jsonl"), split="train")
    assert from_json.to_list() == records == datasets.load_from_disk(str(tmp_path / "hf"))["train"].to_list()
    # train on the Parquet export: its Json columns must survive TRL's own dataset.map passes
    loaded = datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"), split="train")
    assert loaded.to_list() == records

    tokenizer = tiny_tokenizer(records, template_path.read_text())
    arguments = trl.SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=1,
        max_length=65536,  # no truncation: the check below wants every token
        report_to="none",
        use_cpu=True,
        save_strategy="no",
    )
    trainer = trl.SFTTrainer(
        model=tiny_model(tokenizer),
        args=arguments,
        train_dataset=loaded,
        processing_class=tokenizer,
    )
    for record, tokenized in zip(records, trainer.train_dataset, strict=True):
        text = tokenizer.decode(tokenized["input_ids"])
        assert text == tokenizer.apply_chat_template(record["messages"], tools=record["tools"], tokenize=False)
        for call in rendered_calls(record):
            assert call in text
        for message in record["messages"]:
            if message["role"] == "tool":
                assert message["content"] in text
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0


def test_axolotl_chat_template_loader_keeps_every_call_of_a_string_arguments_export(
    run_dir: Path, template_path: Path, tmp_path: Path
) -> None:
    need("torch")
    chat_template = need("axolotl.prompt_strategies.chat_template")
    dict_default = need("axolotl.utils.dict").DictDefault
    export_run(run_dir, "trl", tmp_path / "objects.jsonl")
    export_run(run_dir, "trl", tmp_path / "texts.jsonl", string_arguments=True)
    records = read_jsonl(tmp_path / "objects.jsonl")
    tokenizer = tiny_tokenizer(records, template_path.read_text())
    dataset_config = {
        "path": str(tmp_path / "texts.jsonl"),
        "type": "chat_template",
        "field_messages": "messages",
        "field_tools": "tools",
        "chat_template": "jinja",
        "chat_template_jinja": str(template_path),
        "roles_to_train": ["assistant"],
        "train_on_eos": "turn",
    }
    config = dict_default({"chat_template": "jinja", "chat_template_jinja": str(template_path), "sequence_len": 65536})
    strategy = chat_template.load(tokenizer, config, dataset_config)

    for as_objects, as_text in zip(records, read_jsonl(tmp_path / "texts.jsonl"), strict=True):
        tokenized = strategy.tokenize_prompt(as_text)
        ids, labels = tokenized["input_ids"], tokenized["labels"]
        assert len(ids) == len(labels) > 0
        text = tokenizer.decode(ids)
        trained = tokenizer.decode([token for token, label in zip(ids, labels, strict=True) if label != -100])
        for call in rendered_calls(as_objects):  # nulls included: parsed by axolotl after its null clean-up
            assert call in text and call in trained
