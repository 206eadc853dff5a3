"""Hugging Face outputs of an export: ``datasets`` datasets (Parquet files, ``--hf-dataset``) and Hub pushes.

Every export of a format has one schema (``dataset_features``). Arrow merges the keys of all structs in a column,
so tool-call arguments or tool schemas that differ between records would come back padded with ``null`` keys,
which chat templates then render. Messages and tools are therefore ``Json`` values: read back by ``datasets``,
``messages`` is a list of message objects exactly as exported, for SFTTrainer and axolotl; other Parquet readers
see them as JSON text. ``datasets`` 4.7 or newer has the ``Json`` feature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialforge.errors import HF_HINT
from dialforge.export.errors import ExportError
from dialforge.export.spool import Span, spooled_records


def require_datasets(why: str) -> None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise ExportError(f"{why} needs the datasets library (4.7 or newer): {HF_HINT}") from None


def dataset_features(fmt: str, train_on: str = "all") -> Any:
    """The ``datasets.Features`` of a format's records (``trl`` trained on the continuation only is the
    prompt-completion shape)."""
    from datasets import Features, Json, List, Value

    turns = List({"from": Value("string"), "value": Value("string")})
    trl = {"messages": List(Json()), "tools": List(Json())}
    if train_on == "continuation":
        trl = {"prompt": List(Json()), "completion": List(Json()), "tools": List(Json())}
    features = {
        "openai": {"messages": List(Json()), "tools": List(Json()), "parallel_tool_calls": Value("bool")},
        "trl": trl,
        "sharegpt": {"conversations": turns, "system": Value("string"), "tools": Value("string")},
        "hermes": {"conversations": turns},
    }
    return Features(features[fmt])


def spooled_dataset(fmt: str, train_on: str, spool: Path, spans: list[Span], work: Path) -> Any:
    """The records at ``spans`` of the spool as a ``datasets.Dataset``, written batch by batch to Arrow files
    under ``work`` (so memory does not grow with the split)."""
    import datasets

    features = dataset_features(fmt, train_on)
    if not spans:
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_generator(
        spooled_records,
        features=features,
        gen_kwargs={"spool": str(spool), "spans": spans},
        cache_dir=str(work / "cache"),
    )


@dataclass(frozen=True)
class HubPush:
    """Where an export pushes its dataset on the Hugging Face Hub, and as whom."""

    repo_id: str
    private: bool = False
    token_env: str = "HF_TOKEN"

    def check(self) -> str:
        """The write token, after checking the repository id, so that nothing is written before a push that
        cannot start (split names are checked with the split: they are names the Hub accepts). The token is the
        environment variable ``token_env``; only for the default ``HF_TOKEN`` may it also come from the login
        stored by ``hf auth login``."""
        import huggingface_hub
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(self.repo_id)
        except HFValidationError as exc:
            raise ExportError(
                f"--push-to-hub {self.repo_id!r}: {exc} (expected e.g. your-name/bookstore-dialogues)"
            ) from None
        token = os.environ.get(self.token_env)
        if not token and self.token_env == "HF_TOKEN":
            token = huggingface_hub.get_token()
        if not token:
            stored = " or run `hf auth login`" if self.token_env == "HF_TOKEN" else ""
            raise ExportError(
                f"pushing to {self.repo_id} needs a Hugging Face write token: set {self.token_env} to one "
                f"(https://huggingface.co/settings/tokens){stored}"
            )
        return token

    def push(self, dataset: Any, token: str, message: str) -> None:
        """Push a ``DatasetDict``; every failure (HTTP, network, the Hub's checks) is one ``ExportError``."""
        try:
            private = True if self.private else None  # None: the account's default visibility for new repos
            dataset.push_to_hub(self.repo_id, private=private, token=token, commit_message=message)
        except Exception as exc:
            raise ExportError(
                f"pushing to the Hub repository {self.repo_id} failed: {type(exc).__name__}: {exc}; "
                "the local output is complete, so fix the cause and run the same export again"
            ) from exc
