"""Exports and statistics of a large run: wall time and peak memory of each command, in its own process.

    python benchmarks/export.py [--dialogues 20000]

The run is the quickstart's dry run (user simulator, real SQL tools), its records repeated under new ids up to
``--dialogues``. Each command is the CLI, as a user runs it; its peak RSS is read from the kernel for that child.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dialforge.cli.main"]


def make_run(folder: Path, dialogues: int) -> Path:
    seed_run = folder / "seed"
    subprocess.run(
        [*CLI, "run", str(REPO / "examples" / "quickstart.yaml"), "--dry-run", "--out", str(seed_run)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    records = [orjson.loads(line) for line in (seed_run / "dialogues.jsonl").read_bytes().splitlines()]
    run = folder / "big"
    run.mkdir()
    with (run / "dialogues.jsonl").open("wb") as handle:
        for index in range(dialogues):
            record = dict(records[index % len(records)], id=f"{records[index % len(records)]['id']}-{index}")
            handle.write(orjson.dumps(record) + b"\n")
    return run


def measure(label: str, args: list[str]) -> None:
    """Run one CLI command in a child process; print its wall time and peak RSS (ru_maxrss of that child)."""
    script = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, *CLI, *args], check=True, capture_output=True, text=True)
    seconds, peak_kb = out.stdout.split()
    print(f"{label:<34} {float(seconds):7.2f} s {int(peak_kb) / 1024:8.0f} MB peak RSS", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=20000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = make_run(folder, options.dialogues)
        size_mb = (run / "dialogues.jsonl").stat().st_size / 1e6
        print(f"{options.dialogues} dialogues, dialogues.jsonl {size_mb:.0f} MB, {os.cpu_count()} cores")
        out = folder / "out"
        measure("export trl -> JSONL", ["export", str(run), "--format", "trl", "-o", str(out / "a.jsonl")])
        measure(
            "export sharegpt -> JSONL, split",
            ["export", str(run), "--format", "sharegpt", "-o", str(out / "b.jsonl"), "--split", "train=0.95,test=0.05"],
        )
        measure("export trl -> Parquet", ["export", str(run), "--format", "trl", "-o", str(out / "c.parquet")])
        measure("stats", ["stats", str(run)])
        measure("report", ["report", str(run), "-o", str(out / "report.html")])


if __name__ == "__main__":
    main()
