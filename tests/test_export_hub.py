"""``dialforge export --push-to-hub``: the real ``datasets`` push over HTTP to a stand-in Hub on 127.0.0.1.

The export runs in a subprocess because ``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fake_hub import running_fake_hub
from tests.test_export import dialogue, read_jsonl, write_run

datasets = pytest.importorskip("datasets", reason="datasets not installed (pip install 'dialforge[hf]')")


def export(tmp_path: Path, endpoint: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environment |= {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_DISABLE_XET": "1",  # the stand-in speaks plain LFS
        "HF_HOME": str(tmp_path / "hf-home"),  # no stored login
        "HF_HUB_DISABLE_TELEMETRY": "1",
        **env,
    }
    command = [sys.executable, "-m", "dialforge.cli.main", "export", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


def pushed_split(files: dict[str, bytes], split: str, folder: Path) -> list[dict]:
    """The rows of one pushed split, read as a consumer of the Hub repo would, with ``load_dataset``."""
    shards = []
    for path, data in sorted(files.items()):
        if path.startswith(f"data/{split}-"):
            shards.append(folder / Path(path).name)
            shards[-1].write_bytes(data)
    assert shards, f"no {split} files in {sorted(files)}"
    return datasets.load_dataset("parquet", data_files=[str(s) for s in shards], split="train").to_list()


def test_push_sends_every_split_exactly_with_the_token_from_the_named_variable(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue(f"d-{i}") for i in range(10)])
    out = tmp_path / "train.jsonl"
    with running_fake_hub() as hub:
        result = export(
            tmp_path,
            hub.base_url,
            str(run),
            "--format",
            "trl",
            "-o",
            str(out),
            "--split",
            "train=0.8,test=0.2",
            "--push-to-hub",
            "me/bookstore-dialogues",
            "--private",
            "--hub-token-env",
            "TEAM_HF_TOKEN",
            TEAM_HF_TOKEN="hf_team_write",
        )
    assert result.returncode == 0, result.stderr
    assert "pushed to the Hub: me/bookstore-dialogues" in result.stdout
    assert hub.private == {"me/bookstore-dialogues": True}
    assert hub.tokens == {"hf_team_write"}
    files = hub.files["me/bookstore-dialogues"]
    assert "README.md" in files
    for split in ("train", "test"):
        assert pushed_split(files, split, tmp_path) == read_jsonl(tmp_path / f"train.{split}.jsonl")


def test_push_without_a_token_stops_before_writing_anything(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue()])
    out = tmp_path / "out.jsonl"
    result = export(
        tmp_path, "http://127.0.0.1:9", str(run), "--format", "trl", "-o", str(out), "--push-to-hub", "me/x"
    )
    assert result.returncode == 2
    assert "needs a Hugging Face write token: set HF_TOKEN" in result.stderr
    assert not out.exists()


def test_a_named_token_variable_must_hold_the_token_itself(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue()])
    out = tmp_path / "out.jsonl"
    args = (str(run), "--format", "trl", "-o", str(out), "--push-to-hub", "me/x", "--hub-token-env", "TEAM_HF_TOKEN")
    result = export(tmp_path, "http://127.0.0.1:9", *args, HF_TOKEN="hf_personal")
    assert result.returncode == 2
    assert "needs a Hugging Face write token: set TEAM_HF_TOKEN" in result.stderr
    assert not out.exists()


def test_bad_repo_id_and_stray_private_flag_are_refused_up_front(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue()])
    out = tmp_path / "out.jsonl"
    bad = export(tmp_path, "http://127.0.0.1:9", str(run), "--format", "trl", "-o", str(out), "--push-to-hub", "a b")
    assert bad.returncode == 2 and "--push-to-hub 'a b'" in bad.stderr and "your-name/" in bad.stderr
    stray = export(tmp_path, "http://127.0.0.1:9", str(run), "--format", "trl", "-o", str(out), "--private")
    assert stray.returncode == 2 and "--private applies to --push-to-hub" in stray.stderr
    assert not out.exists()


def test_an_unreachable_hub_is_reported_and_the_local_output_is_kept(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [dialogue()])
    out = tmp_path / "out.jsonl"
    args = (str(run), "--format", "trl", "-o", str(out), "--push-to-hub", "me/x")
    result = export(tmp_path, "http://127.0.0.1:9", *args, HF_TOKEN="hf_x")
    assert result.returncode == 2
    assert "pushing to the Hub repository me/x failed" in result.stderr
    assert "the local output is complete" in result.stderr
    assert len(read_jsonl(out)) == 1
