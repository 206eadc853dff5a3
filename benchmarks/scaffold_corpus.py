"""Scaffolded tools over a corpus of real schemas: how many pass their own check, and why the others fail.

    python benchmarks/scaffold_corpus.py FOLDER_OR_FILE... [--json results.jsonl] [--show 40]

Every ``.sqlite``, ``.sqlite3``, ``.db`` and ``.sql`` file under the given paths is loaded as ``dialforge``
loads a domain's database, its tools are scaffolded and each goes through ``validate_tools`` (static checks,
then trial runs on forks), exactly as ``dialforge tools check`` does. The report: tools valid of tools
scaffolded (overall and per database), the invalid tools with their reasons, the schema defects found and the
write tools left out for them, read tools whose trials returned no row and why, write tools whose trials changed
none, and scaffolded sets with read-back gaps. A database that cannot be loaded is listed with its reason.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.scaffold import scaffold_notes, scaffold_tools
from dialforge.environments.sql.validation import read_back_gaps, validate_tools

SUFFIXES = (".sqlite", ".sqlite3", ".db", ".sql")


def databases(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def measure(path: Path) -> dict[str, Any]:
    """One database: its tools' verdicts and what the check says about the schema."""
    started = time.perf_counter()
    try:
        database = SQLDatabase.load(path)
    except ValueError as exc:
        return {"database": str(path), "error": str(exc)}
    try:
        tools = scaffold_tools(database.schema)
        verdicts = validate_tools(tools, database)
        reads = {tool.name for tool in tools if tool.kind == "read"}
        return {
            "database": str(path),
            "tables": len(database.schema.tables),
            "tools": len(tools),
            "valid": sum(verdict.valid for verdict in verdicts),
            "invalid": [{"tool": v.name, "reasons": v.reasons} for v in verdicts if not v.valid],
            "reads_without_rows": [
                v.name for v in verdicts if v.valid and v.name in reads and not (v.trial or {}).get("rows")
            ],
            "writes_without_change": [
                v.name for v in verdicts if v.valid and v.name not in reads and not (v.trial or {}).get("rows")
            ],
            "notes": {v.name: v.trial["note"] for v in verdicts if v.valid and v.trial and "note" in v.trial},
            "reads": len(reads),
            "foreign_key_defects": [d.message for d in database.schema.defects if d.kind == "foreign_key"],
            "left_out": [note for note in scaffold_notes(database.schema) if note.endswith("tool for it)")],
            "left_out_tools": sum(len(d.blocks) for d in database.schema.defects),
            "foreign_keys_enforced": database.schema.foreign_keys_enforced,
            "read_back_gaps": read_back_gaps(tools, database.schema),
            "seconds": round(time.perf_counter() - started, 2),
        }
    finally:
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", type=Path, help="database files, or folders searched for them")
    parser.add_argument("--json", type=Path, help="write one JSON line per database here")
    parser.add_argument("--show", type=int, default=40, help="invalid tools to list (default 40)")
    args = parser.parse_args()

    results = []
    for path in databases(args.paths):
        result = measure(path)
        results.append(result)
        if "error" in result:
            print(f"{path.name}: not loaded: {result['error']}", file=sys.stderr)
        else:
            print(f"{path.name}: {result['valid']}/{result['tools']} valid ({result['seconds']} s)", file=sys.stderr)
    if args.json:
        args.json.write_bytes(b"".join(orjson.dumps(result) + b"\n" for result in results))
    report([r for r in results if "error" not in r], args.show)
    for result in results:
        if "error" in result:
            print(f"not loaded: {result['database']}: {result['error']}")


def report(loaded: list[dict[str, Any]], show: int) -> None:
    total = sum(r["tools"] for r in loaded)
    valid = sum(r["valid"] for r in loaded)
    tables = sum(r["tables"] for r in loaded)
    print(f"\n{len(loaded)} databases loaded, {tables} tables")
    fk_defects = sum(len(r["foreign_key_defects"]) for r in loaded)
    unenforced = sum(1 for r in loaded if r["foreign_key_defects"])
    left_out = [(Path(r["database"]).name, note) for r in loaded for note in r["left_out"]]
    print(
        f"schema defects: {fk_defects} foreign keys SQLite cannot enforce, in {unenforced} databases (whose forks run"
        f" without foreign-key enforcement); {sum(r['left_out_tools'] for r in loaded)} write tools left out where"
        " SQLite refuses the write"
    )
    for name, note in left_out:
        print(f"  left out: {name}: {note[:300]}")
    print(f"scaffolded tools valid: {valid}/{total} = {100 * valid / max(total, 1):.2f}%")
    print(f"databases with every tool valid: {sum(r['valid'] == r['tools'] for r in loaded)}/{len(loaded)}")
    reads = sum(r["reads"] for r in loaded)
    unproved = [(r, name) for r in loaded for name in r["reads_without_rows"]]
    on_empty = [(r, name) for r, name in unproved if r["notes"].get(name, "").endswith("no rows")]
    print(
        f"read tools that returned rows in a trial: {reads - len(unproved)}/{reads}; of the others,"
        f" {len(on_empty)} read an empty table and {len(unproved) - len(on_empty)} find nothing to match in the data"
    )
    for r, name in unproved:
        if (r, name) not in on_empty:
            print(f"  no rows: {Path(r['database']).name}: {name}: {r['notes'].get(name, '')}")
    writes = total - reads
    unchanged = sum(len(r["writes_without_change"]) for r in loaded)
    print(f"write tools that changed a row in a trial: {writes - unchanged}/{writes}")
    gaps = [r for r in loaded if r["read_back_gaps"]]
    print(f"scaffolded sets with read-back gaps: {len(gaps)}/{len(loaded)}")
    reasons = Counter(_reason_kind(reason) for r in loaded for tool in r["invalid"] for reason in tool["reasons"][:1])
    if reasons:
        print("\ninvalid tools by first reason:")
        for kind, count in reasons.most_common():
            print(f"  {count:5d}  {kind}")
    invalid = [(Path(r["database"]).name, tool) for r in loaded for tool in r["invalid"]]
    if invalid:
        print(f"\ninvalid tools (first {min(show, len(invalid))} of {len(invalid)}):")
        for name, tool in invalid[:show]:
            print(f"  {name}: {tool['tool']}: {' | '.join(tool['reasons'])[:400]}")


def _reason_kind(reason: str) -> str:
    """A reason without its particulars (names, values, the arguments tried), so that like failures count together."""
    reason = reason.split("; arguments")[0]
    reason = re.sub(r"^the trial run failed \(\w+\): [a-z_0-9]+: ", lambda m: m.group(0).split(": ")[0] + ": ", reason)
    return re.sub(r'"[^"]*"|\'[^\']*\'|\b\d+(\.\d+)?\b|\{.*\}', "_", reason)[:140]


if __name__ == "__main__":
    main()
