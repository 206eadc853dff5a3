"""Kill -9 at random moments, resume, repeat: the dataset equals an uninterrupted run's, exactly once each."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from samples import write_music_config


def write_config(tmp_path: Path, chinook_path: Path) -> Path:
    return write_music_config(tmp_path, chinook_path, per_domain=40)


def command(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "dialforge.cli.main", "run", str(config), "--dry-run", "--out", str(out),
            "--concurrency", "4"]  # fmt: skip


def content(out: Path) -> list[dict[str, Any]]:
    rows = [orjson.loads(line) for line in (out / "dialogues.jsonl").read_bytes().splitlines()]
    for row in rows:
        row.pop("usage")  # wall-clock seconds differ between runs; everything else must not
    return rows


def test_killed_runs_resume_to_the_same_dataset(tmp_path: Path, chinook_path: Path) -> None:
    config = write_config(tmp_path, chinook_path)
    whole = tmp_path / "whole"
    subprocess.run(command(config, whole), check=True, capture_output=True, timeout=120)

    crashed = tmp_path / "crashed"
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        process = subprocess.Popen(command(config, crashed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 1.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=30)
    subprocess.run(command(config, crashed), check=True, capture_output=True, timeout=120)

    assert kills >= 2, "the run must really have been killed mid-way"
    expected, got = content(whole), content(crashed)
    assert len(got) == len(expected) == 40
    assert len({row["id"] for row in got}) == 40
    assert got == expected


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path, chinook_path: Path) -> None:
    config = write_config(tmp_path, chinook_path)
    out = tmp_path / "interrupted"
    process = subprocess.Popen(command(config, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (out / "state.sqlite").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and f"--out {out}" in stderr
    subprocess.run(command(config, out), check=True, capture_output=True, timeout=120)
    rows = content(out)
    assert len(rows) == 40 and len({row["id"] for row in rows}) == 40
