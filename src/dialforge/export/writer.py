"""``export_run``: a run's ``dialogues.jsonl`` as a training dataset (JSONL, Parquet, or a ``datasets`` dir).

Which dialogues are written: ``running`` ones never; ``failed`` ones only with ``include_failed=True``
(they stopped early and rarely make good training data); with ``only_valid`` only those the judge called
valid (unjudged ones are skipped too); dialogues with no assistant turn (nothing to learn) never. Every skip is
counted by reason.

Splits are deterministic: records are ordered by a SHA-256 of ``"{seed}:{id}"`` and cut into exact-size parts
(``round(n * fraction)``, the last split takes the rest), so the same run and seed always split the same way.
With a split, ``out.jsonl`` becomes ``out.train.jsonl``, ``out.test.jsonl``...

Memory stays flat: dialogues are read and converted one at a time, their JSON lines spooled to a temporary
directory beside the output, and the outputs are made from the spool: JSONL by copying, Parquet and ``datasets``
through Arrow files that ``datasets`` writes batch by batch. Each output file is written to ``.NAME.partial`` and
renamed when complete, so an interrupted export never leaves a truncated file under the real name.

Parquet and ``datasets`` outputs are built by ``datasets`` with one fixed schema per format
(``dataset_features``). Arrow merges the keys of all structs in a column, so tool-call arguments or tool schemas
that differ between records would come back padded with ``null`` keys, which chat templates then render.
Messages and tools are therefore ``Json`` values: read back by ``datasets``, ``messages`` is a list of message
objects exactly as exported, for SFTTrainer and axolotl; other Parquet readers see them as JSON text.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson
from pydantic import ValidationError

from dialforge.export.formats import FORMAT_NOTES, FORMATS, ReasoningMode, Unexportable, convert
from dialforge.export.templates import check_template
from dialforge.model.dialogue import Dialogue

HF_HINT = "pip install 'dialforge[hf]'"
T = TypeVar("T")
Span = tuple[int, int]
"""where one exported record's JSON line lies in the spool file: (offset, length)"""


class ExportError(Exception):
    """A problem with the export request or its inputs (one line for the user)."""


@dataclass(frozen=True)
class HubPush:
    """Where ``export_run`` pushes the dataset on the Hugging Face Hub, and as whom."""

    repo_id: str
    private: bool = False
    token_env: str = "HF_TOKEN"

    def check(self) -> str:
        """The write token (the environment variable ``token_env``, else the login stored by ``hf auth login``),
        after checking the repository id, so that nothing is written before a push that cannot start."""
        import huggingface_hub
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(self.repo_id)
        except HFValidationError as exc:
            raise ExportError(
                f"--push-to-hub {self.repo_id!r}: {exc} (expected e.g. your-name/bookstore-dialogues)"
            ) from None
        token = os.environ.get(self.token_env) or huggingface_hub.get_token()
        if not token:
            raise ExportError(
                f"pushing to {self.repo_id} needs a Hugging Face write token: set {self.token_env} to one "
                "(https://huggingface.co/settings/tokens) or run `hf auth login`"
            )
        return token


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
    _check_split(split)
    return split


def _check_split(split: dict[str, float]) -> None:
    if not split or any(not (f > 0) for f in split.values()):
        raise ExportError("split fractions must be positive")
    if abs(sum(split.values()) - 1.0) > 1e-6:
        raise ExportError(f"split fractions must sum to 1, not {sum(split.values()):g}")
    for name in split:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ExportError(f"split name {name!r}: use letters, digits, '-' or '_'")


def split_records(items: list[tuple[str, T]], split: dict[str, float], seed: int = 0) -> dict[str, list[T]]:
    """Deterministic exact-size split of ``(id, value)`` pairs."""
    _check_split(split)
    ordered = sorted(items, key=lambda item: hashlib.sha256(f"{seed}:{item[0]}".encode()).hexdigest())
    parts: dict[str, list[T]] = {}
    start = 0
    names = list(split)
    for index, name in enumerate(names):
        end = len(ordered) if index == len(names) - 1 else min(len(ordered), start + round(len(ordered) * split[name]))
        parts[name] = [value for _, value in ordered[start:end]]
        start = end
    return parts


def iter_dialogues(run_dir: Path) -> Iterator[Dialogue | None]:
    """The run's dialogues one at a time, ``None`` for a malformed line, so exports hold one record at a time."""
    path = Path(run_dir) / "dialogues.jsonl"
    if not Path(run_dir).is_dir():
        raise ExportError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise ExportError(f"no dialogues.jsonl in {run_dir} (has the run written any dialogue yet?)")
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                try:
                    yield Dialogue.model_validate_json(line)
                except ValidationError:
                    yield None


def _skip_reason(dialogue: Dialogue, only_valid: bool, include_failed: bool) -> str | None:
    if dialogue.status == "running":
        return "running"
    if dialogue.status == "failed" and not include_failed:
        return "failed"
    if only_valid:
        if dialogue.judgment is None:
            return "not judged"
        if dialogue.judgment.judgment != "valid":
            return "judged invalid"
    return None


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
    one_call_per_message: bool = False,
    nullable_as_flag: bool = False,
    string_arguments: bool = False,
    check_templates: Sequence[Path] = (),
    seed: int = 0,
) -> ExportResult:
    """Write the run's dialogues in ``fmt`` to ``output`` (``.jsonl``/``.json`` or ``.parquet``)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if reasoning not in ("keep", "drop"):
        raise ExportError(f"reasoning must be keep or drop, not {reasoning!r}")
    if string_arguments and fmt != "trl":
        raise ExportError(f"--string-arguments is an option of --format trl, not {fmt}")
    if check_templates and fmt != "trl":
        raise ExportError(f"--check-template renders the chat-template shape: use --format trl, not {fmt}")
    for template in check_templates:
        if not Path(template).is_file():
            raise ExportError(f"--check-template {template}: no such file (a Jinja chat template, e.g. from vLLM)")
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet"):
        raise ExportError(f"output {output}: use a .jsonl or .parquet file name")
    if suffix == ".parquet":
        _require_datasets("Parquet output")
    if hf_dataset is not None:
        _require_datasets("--hf-dataset")
    if push_to_hub is not None:
        _require_datasets("--push-to-hub")
        token = push_to_hub.check()
    if split is not None:
        _check_split(split)

    result = ExportResult()
    if reasoning == "keep" and fmt == "openai":
        result.notes.append("--reasoning keep is not supported for openai: " + FORMAT_NOTES["openai"])
    wants_datasets = suffix == ".parquet" or hf_dataset is not None or push_to_hub is not None
    if wants_datasets and fmt in ("openai", "trl"):
        result.notes.append("messages and tools are stored as datasets Json values (other Parquet readers: JSON text)")

    def exportable(dialogue: Dialogue | None) -> dict[str, Any] | str:
        """The dialogue's record, or why it is skipped."""
        if dialogue is None:
            return "malformed record"
        reason = _skip_reason(dialogue, only_valid, include_failed)
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
            )
        except Unexportable as exc:
            return exc.reason

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".dialforge-export-") as work:
        spool = Path(work) / "records.jsonl"
        spans: list[tuple[str, Span]] = []
        try:
            with spool.open("wb") as handle:
                for dialogue in iter_dialogues(run_dir):
                    outcome = exportable(dialogue)
                    if isinstance(outcome, str):
                        result.skipped[outcome] = result.skipped.get(outcome, 0) + 1
                        continue
                    line = orjson.dumps(outcome) + b"\n"
                    spans.append((dialogue.id, (handle.tell(), len(line))))  # type: ignore[union-attr]
                    handle.write(line)
        except OSError as exc:
            raise ExportError(f"could not spool the records beside {output}: {exc}; nothing was written") from exc

        parts = split_records(spans, split, seed) if split else {"all": [span for _, span in spans]}
        splits: dict[str, Any] = {}  # split name -> datasets.Dataset
        for name, part in parts.items():
            path = output if name == "all" else output.with_name(f"{output.stem}.{name}{output.suffix}")
            if wants_datasets:
                dataset = splits["train" if name == "all" else name] = spooled_dataset(fmt, spool, part, Path(work))
            _write_whole(path, dataset.to_parquet if suffix == ".parquet" else partial(_copy, spool, part))
            result.written[name] = len(part)
            result.files.append(path)
        for template in check_templates:
            check = check_template(Path(template), _spooled_records(str(spool), [span for _, span in spans]))
            result.notes.append(check.summary())
        if hf_dataset is not None or push_to_hub is not None:  # still inside: the splits' Arrow files are in work
            import datasets

            dataset = datasets.DatasetDict(splits)
            if hf_dataset is not None:
                dataset.save_to_disk(str(hf_dataset))
                result.files.append(Path(hf_dataset))
            if push_to_hub is not None:
                _push(dataset, push_to_hub, token, f"dialforge export: {fmt}, {result.total_written} dialogues")
                result.notes.append(f"pushed to the Hub: {push_to_hub.repo_id}")
    return result


def _write_whole(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(handle)`` to ``.NAME.partial`` beside ``path``, renamed over ``path`` only once complete."""
    unfinished = path.with_name(f".{path.name}.partial")
    try:
        with unfinished.open("wb") as handle:
            write(handle)
        unfinished.replace(path)
    except OSError as exc:
        raise ExportError(f"could not write {path}: {exc}; any earlier file there is unchanged") from exc
    finally:
        unfinished.unlink(missing_ok=True)


def _copy(spool: Path, spans: list[Span], handle: IO[bytes]) -> None:
    with spool.open("rb") as records:
        for span in spans:
            handle.write(_read(records, span))


def _read(spool: IO[bytes], span: Span) -> bytes:
    spool.seek(span[0])
    return spool.read(span[1])


def _require_datasets(why: str) -> None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise ExportError(f"{why} needs the datasets library (4.7 or newer): {HF_HINT}") from None


def dataset_features(fmt: str) -> Any:
    """The ``datasets.Features`` of a format's records, fixed so that every export of a format has one schema.

    Messages and tools are ``Json`` values (objects whose keys vary: tool-call arguments, tool schemas): read
    back by ``datasets`` they are the exported dicts, exactly, with no ``null`` padding."""
    from datasets import Features, Json, List, Value

    turns = List({"from": Value("string"), "value": Value("string")})
    features = {
        "openai": {"messages": List(Json()), "tools": List(Json()), "parallel_tool_calls": Value("bool")},
        "trl": {"messages": List(Json()), "tools": List(Json())},
        "sharegpt": {"conversations": turns, "system": Value("string"), "tools": Value("string")},
        "hermes": {"conversations": turns},
    }
    return Features(features[fmt])


def _spooled_records(spool: str, spans: list[Span]) -> Iterator[dict[str, Any]]:
    with open(spool, "rb") as handle:
        for span in spans:
            yield orjson.loads(_read(handle, span))


def spooled_dataset(fmt: str, spool: Path, spans: list[Span], work: Path) -> Any:
    """The records at ``spans`` of the spool file as a ``datasets.Dataset``, written batch by batch to Arrow
    files under ``work`` (so memory does not grow with the split)."""
    import datasets

    if not spans:
        return datasets.Dataset.from_list([], features=dataset_features(fmt))
    return datasets.Dataset.from_generator(
        _spooled_records,
        features=dataset_features(fmt),
        gen_kwargs={"spool": str(spool), "spans": spans},
        cache_dir=str(work / "cache"),
    )


def _push(dataset: Any, target: HubPush, token: str, message: str) -> None:
    try:
        private = True if target.private else None  # None: the account's default visibility for new repos
        dataset.push_to_hub(target.repo_id, private=private, token=token, commit_message=message)
    except Exception as exc:  # HTTP, network and Hub validation errors all arrive here
        raise ExportError(
            f"pushing to the Hub repository {target.repo_id} failed: {type(exc).__name__}: {exc}; "
            "the local output is complete, so fix the cause and run the same export again"
        ) from exc
