"""``export_run``: a run's ``dialogues.jsonl`` as a training dataset (JSONL, Parquet, or a ``datasets`` dir).

Which dialogues are written: ``running`` ones never; ``failed`` ones only with ``include_failed=True``
(they stopped early and rarely make good training data); truncated ones (cut back to their last completed
goal, judged on the goals they kept) unless ``include_truncated=False``; with ``only_valid`` only those the
judge called valid (unjudged ones are skipped too); dialogues with no assistant turn (nothing to learn) never.
Every skip is counted by reason.

Splits are deterministic: records are ordered by a SHA-256 of ``"{seed}:{id}"`` and cut into exact-size parts
(``round(n * fraction)``, the last split takes the rest), so the same run and seed always split the same way.
With a split, ``out.jsonl`` becomes ``out.train.jsonl``, ``out.test.jsonl``...

Memory stays flat: dialogues are read and converted one at a time and spooled (``spool``) to a temporary
directory beside the output; the outputs are made from the spool: JSONL by copying, Parquet and ``datasets``
through Arrow files that ``datasets`` writes batch by batch (``hf``). Each output file is written under a
temporary name of its own and renamed when complete, so an interrupted or failed export never leaves a
truncated file under the real name, and two exports to one name cannot mix.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import ValidationError

from dialforge.export import spool
from dialforge.export.errors import ExportError
from dialforge.export.formats import (
    FORMAT_NOTES,
    FORMATS,
    ReasoningMode,
    TrainOn,
    Unexportable,
    convert,
    train_on_problem,
    whole_conversation,
)
from dialforge.export.hf import HubPush, require_datasets, spooled_dataset
from dialforge.export.templates import check_template
from dialforge.model.dialogue import Dialogue

T = TypeVar("T")
SPLIT_NAME = re.compile(r"^\w+$")
CONTINUATION_NOTES: dict[str, str] = {
    "openai": 'assistant messages of an imported conversation carry "weight": 0 (not trained)',
    "trl": "records are prompt/completion: SFTTrainer trains on the completion only (completion_only_loss, on by "
    "default for this shape); it starts at the continuation's first assistant message",
}


@dataclass
class ExportResult:
    written: dict[str, int] = field(default_factory=dict)
    """split name (``all`` without splits) -> records written"""
    skipped: dict[str, int] = field(default_factory=dict)
    """reason -> dialogues skipped"""
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_written(self) -> int:
        return sum(self.written.values())

    def summary(self) -> str:
        lines = [f"written: {self.total_written} ({', '.join(f'{k} {v}' for k, v in self.written.items())})"]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        lines += [f"file: {path}" for path in self.files]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def parse_split(text: str) -> dict[str, float]:
    """``"train=0.95,test=0.05"`` -> ``{"train": 0.95, "test": 0.05}``; fractions positive, summing to 1."""
    split: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            fraction = float(value)
        except ValueError:
            fraction = math.nan
        if not sep or not name or not (fraction > 0) or name in split:
            raise ExportError(f"bad split {part.strip()!r}: expected name=fraction, e.g. train=0.95,test=0.05")
        split[name] = fraction
    check_split(split)
    return split


def check_split(split: dict[str, float]) -> None:
    if not split or any(not (f > 0) for f in split.values()):
        raise ExportError("split fractions must be positive")
    if abs(sum(split.values()) - 1.0) > 1e-6:
        raise ExportError(f"split fractions must sum to 1, not {sum(split.values()):g}")
    for name in split:
        if not SPLIT_NAME.match(name):
            raise ExportError(f"split name {name!r}: use letters, digits and '_' (what the Hub accepts too)")


def split_records(items: list[tuple[str, T]], split: dict[str, float], seed: int = 0) -> dict[str, list[T]]:
    """Deterministic exact-size split of ``(id, value)`` pairs."""
    check_split(split)
    ordered = sorted(items, key=lambda item: hashlib.sha256(f"{seed}:{item[0]}".encode()).hexdigest())
    parts: dict[str, list[T]] = {}
    start = 0
    names = list(split)
    for index, name in enumerate(names):
        end = len(ordered) if index == len(names) - 1 else min(len(ordered), start + round(len(ordered) * split[name]))
        parts[name] = [value for _, value in ordered[start:end]]
        start = end
    return parts


def dialogues_file(run_dir: Path) -> Path:
    """The run's ``dialogues.jsonl``, or an ``ExportError`` saying what is missing."""
    path = Path(run_dir) / "dialogues.jsonl"
    if not Path(run_dir).is_dir():
        raise ExportError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise ExportError(f"no dialogues.jsonl in {run_dir} (has the run written any dialogue yet?)")
    return path


def iter_dialogues(path: Path) -> Iterator[Dialogue | None]:
    """The dialogues of a ``dialogues.jsonl`` one at a time, ``None`` for a malformed line."""
    try:
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    try:
                        yield Dialogue.model_validate_json(line)
                    except ValidationError:
                        yield None
    except OSError as exc:
        raise ExportError(f"could not read {path}: {exc}; nothing was written") from exc


def _skip_reason(dialogue: Dialogue, only_valid: bool, include_failed: bool, include_truncated: bool) -> str | None:
    if dialogue.status == "running":
        return "running"
    if dialogue.status == "failed" and not include_failed:
        return "failed"
    if dialogue.truncated and not include_truncated:
        return "truncated"
    if only_valid:
        if dialogue.judgment is None:
            return "not judged"
        if dialogue.judgment.judgment != "valid":
            return "judged invalid"
    return None


def output_paths(output: Path, split: dict[str, float] | None) -> dict[str, Path]:
    """Split name (``all`` without a split) -> the file it is written to."""
    if split is None:
        return {"all": output}
    return {name: output.with_name(f"{output.stem}.{name}{output.suffix}") for name in split}


def export_run(
    run_dir: Path,
    fmt: str,
    output: Path,
    *,
    only_valid: bool = False,
    reasoning: ReasoningMode = "drop",
    split: dict[str, float] | None = None,
    hf_dataset: Path | None = None,
    push_to_hub: HubPush | None = None,
    include_failed: bool = False,
    include_truncated: bool = True,
    one_call_per_message: bool = False,
    nullable_as_flag: bool = False,
    string_arguments: bool = False,
    check_templates: Sequence[Path] = (),
    train_on: TrainOn = "all",
    seed: int = 0,
) -> ExportResult:
    """Write the run's dialogues in ``fmt`` to ``output`` (``.jsonl`` or ``.parquet``). Everything that can be
    checked is checked before anything is written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if reasoning not in ("keep", "drop"):
        raise ExportError(f"reasoning must be keep or drop, not {reasoning!r}")
    if string_arguments and fmt != "trl":
        raise ExportError(f"--string-arguments is an option of --format trl, not {fmt}")
    if problem := train_on_problem(fmt, train_on):
        raise ExportError(problem)
    if check_templates and fmt != "trl":
        raise ExportError(f"--check-template renders the chat-template shape: use --format trl, not {fmt}")
    for template in check_templates:
        if not Path(template).is_file():
            raise ExportError(f"--check-template {template}: no such file (a Jinja chat template, e.g. from vLLM)")
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ExportError(f"output {output}: use a .jsonl (JSON Lines) or .parquet file name")
    if split is not None:
        check_split(split)
    source = dialogues_file(run_dir)
    paths = output_paths(output, split)
    for path in paths.values():
        if path.resolve() == source.resolve():
            raise ExportError(f"output {path} is the run's own dialogues.jsonl: write the export somewhere else")
    if suffix == ".parquet":
        require_datasets("Parquet output")
    if hf_dataset is not None:
        require_datasets("--hf-dataset")
        _check_dataset_directory(Path(hf_dataset))
    token = ""
    if push_to_hub is not None:
        require_datasets("--push-to-hub")
        token = push_to_hub.check()

    result = ExportResult()
    if reasoning == "keep" and fmt == "openai":
        result.notes.append("--reasoning keep is not supported for openai: " + FORMAT_NOTES["openai"])
    wants_datasets = suffix == ".parquet" or hf_dataset is not None or push_to_hub is not None
    if wants_datasets and fmt in ("openai", "trl"):
        columns = "prompt, completion" if fmt == "trl" and train_on == "continuation" else "messages"
        result.notes.append(
            f"{columns} and tools are stored as datasets Json values (other Parquet readers: JSON text)"
        )
    if train_on == "continuation":
        result.notes.append(CONTINUATION_NOTES[fmt])

    def exportable(dialogue: Dialogue | None) -> dict[str, Any] | str:
        """The dialogue's record, or why it is skipped."""
        if dialogue is None:
            return "malformed record"
        reason = _skip_reason(dialogue, only_valid, include_failed, include_truncated)
        if reason is not None:
            return reason
        try:
            return convert(
                dialogue,
                fmt,  # type: ignore[arg-type]
                reasoning,
                one_call_per_message=one_call_per_message,
                nullable_flag=nullable_as_flag,
                string_arguments=string_arguments,
                train_on=train_on,
            )
        except Unexportable as exc:
            return exc.reason

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        workspace = tempfile.TemporaryDirectory(dir=output.parent, prefix=".dialforge-export-")
    except OSError as exc:
        raise ExportError(
            f"cannot write to {output.parent}: {exc.strerror or exc}; nothing was written: "
            "choose an --output path in a writable directory"
        ) from None
    with workspace as work:
        spooled = Path(work) / "records.jsonl"
        spans: list[tuple[str, spool.Span]] = []
        try:
            with spooled.open("wb") as handle:
                for dialogue in iter_dialogues(source):
                    outcome = exportable(dialogue)
                    if isinstance(outcome, str):
                        result.skipped[outcome] = result.skipped.get(outcome, 0) + 1
                    else:
                        assert dialogue is not None
                        spans.append((dialogue.id, spool.append(handle, outcome)))
        except OSError as exc:
            raise ExportError(f"could not spool the records beside {output}: {exc}; nothing was written") from exc

        every = [span for _, span in spans]
        parts = split_records(spans, split, seed) if split else {"all": every}
        tables: dict[str, Any] = {}  # datasets split name ("train" without a split) -> datasets.Dataset
        for name, part in parts.items():
            write: Callable[[IO[bytes]], object] = partial(_copy, spooled, part)
            if wants_datasets:
                table = tables["train" if split is None else name] = spooled_dataset(
                    fmt, train_on, spooled, part, Path(work)
                )
                if suffix == ".parquet":
                    write = table.to_parquet
            _write_whole(paths[name], write)
            result.written[name] = len(part)
            result.files.append(paths[name])
        for template in check_templates:
            records = map(whole_conversation, spool.spooled_records(str(spooled), every))
            result.notes.append(check_template(template, records).summary())
        if hf_dataset is not None or push_to_hub is not None:  # still inside: the tables' Arrow files are in work
            import datasets

            dataset = datasets.DatasetDict(tables)
            if hf_dataset is not None:
                _save_to_disk(dataset, Path(hf_dataset))
                result.files.append(Path(hf_dataset))
            if push_to_hub is not None:
                push_to_hub.push(dataset, token, f"dialforge export: {fmt}, {result.total_written} dialogues")
                result.notes.append(f"pushed to the Hub: {push_to_hub.repo_id}")
    return result


def _copy(spooled: Path, spans: list[spool.Span], handle: IO[bytes]) -> None:
    with spooled.open("rb") as records:
        for span in spans:
            handle.write(spool.read_span(records, span))


def _write_whole(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(handle)`` into a temporary file of its own beside ``path``, renamed over ``path`` once complete.
    Created as any other file is (mode 0o666 less the umask): ``mkstemp``'s 0o600 would hide the dataset from
    the people and jobs the umask lets read it."""
    unfinished = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        with unfinished.open("xb") as handle:
            write(handle)
        unfinished.replace(path)
    except OSError as exc:
        raise ExportError(f"could not write {path}: {exc}; any earlier file there is unchanged") from exc
    finally:
        unfinished.unlink(missing_ok=True)


def _check_dataset_directory(directory: Path) -> None:
    """``--hf-dataset`` may name a new directory, or one an earlier export saved a dataset in (it is replaced);
    never a file or a directory holding anything else."""
    if directory.exists() and not (directory.is_dir() and _is_saved_dataset(directory)):
        raise ExportError(
            f"--hf-dataset {directory}: something other than a saved dataset is there; name a new directory"
        )


def _is_saved_dataset(directory: Path) -> bool:
    return not any(directory.iterdir()) or (directory / "dataset_dict.json").is_file()


def _save_to_disk(dataset: Any, directory: Path) -> None:
    """``save_to_disk`` into a fresh directory beside ``directory``, swapped in once complete."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        dataset.save_to_disk(str(staging / "dataset"))
        if directory.exists():
            shutil.rmtree(directory)
        (staging / "dataset").replace(directory)
    except OSError as exc:
        raise ExportError(f"could not write the dataset to {directory}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
