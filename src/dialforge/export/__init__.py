"""Training-format exports of a run (``dialforge export``)."""

from dialforge.export.errors import ExportError
from dialforge.export.formats import (
    CONVERTERS,
    FORMATS,
    Unexportable,
    convert,
    nullable_as_flag,
    split_parallel_calls,
    to_hermes_record,
    to_openai_record,
    to_sharegpt_record,
    to_trl_record,
)
from dialforge.export.hf import HubPush
from dialforge.export.templates import render, template_problems
from dialforge.export.writer import ExportResult, export_run, parse_split

__all__ = [
    "CONVERTERS",
    "FORMATS",
    "ExportError",
    "ExportResult",
    "HubPush",
    "Unexportable",
    "convert",
    "export_run",
    "nullable_as_flag",
    "parse_split",
    "render",
    "split_parallel_calls",
    "template_problems",
    "to_hermes_record",
    "to_openai_record",
    "to_sharegpt_record",
    "to_trl_record",
]
