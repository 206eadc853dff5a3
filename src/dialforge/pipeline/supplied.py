"""Reading artifacts a user supplies instead of generating them; errors name the file and the entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec


def _entries(path: Path) -> list[tuple[str, Any]]:
    """(where, value) for each entry of a JSON list or a JSONL file."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            values = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
        return [(f"{path}, entry {index}", value) for index, value in enumerate(values)]
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                entries.append((f"{path}, line {number}", orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not valid JSON: {exc}") from None
    return entries


def _problem(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in error.errors())


def load_questions(path: Path) -> list[str]:
    """JSONL of strings or ``{"question": ...}`` objects, or plain text with one question per line."""
    if path.suffix != ".jsonl":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = []
    for where, value in _entries(path):
        question = value.get("question") if isinstance(value, dict) else value
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f'{where}: a question is a string or {{"question": "..."}}')
        questions.append(question.strip())
    return questions


def load_tool_specs(path: Path) -> list[ToolSpec]:
    """OpenAI tool specs (``{"type": "function", "function": {...}}`` or bare functions), as a list or JSONL."""
    specs = []
    for where, value in _entries(path):
        if not isinstance(value, dict) or "name" not in value.get("function", value):
            raise ValueError(f"{where}: a tool spec is an object with a name (OpenAI function format)")
        try:
            specs.append(ToolSpec.from_openai(value))
        except ValidationError as exc:
            raise ValueError(f"{where}: not a valid tool spec: {_problem(exc)}") from None
    return specs


def load_tasks(path: Path) -> list[Task]:
    tasks = []
    for where, value in _entries(path):
        try:
            tasks.append(Task.model_validate(value))
        except ValidationError as exc:
            raise ValueError(f"{where}: not a valid task: {_problem(exc)}") from None
    return tasks
