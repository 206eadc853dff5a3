"""Reading artifacts a user supplies instead of generating them; errors name the file and the entry.

A run's own artifacts (``artifacts/*.jsonl``, one row per item with a ``domain`` key) can be given
back as input: rows of other domains are skipped and the bookkeeping keys are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from dialforge.environments.sql.tool import SQLTool
from dialforge.model.tasks import Task
from dialforge.model.tools import ToolSpec

_BOOKKEEPING = ("domain", "role")


def _for_domain(entries: list[tuple[str, Any]], domain: str | None) -> list[tuple[str, Any]]:
    """Entries for ``domain`` (rows naming another domain are skipped), without the bookkeeping keys."""
    kept = []
    for where, value in entries:
        if isinstance(value, dict) and "domain" in value:
            if domain is not None and value["domain"] != domain:
                continue
            value = {k: v for k, v in value.items() if k not in _BOOKKEEPING}
        kept.append((where, value))
    return kept


def _entries(path: Path, domain: str | None = None) -> list[tuple[str, Any]]:
    """(where, value) for each entry of a JSON list or a JSONL file, for ``domain`` when rows name one."""
    return _for_domain(_all_entries(path), domain)


def _all_entries(path: Path) -> list[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: is not UTF-8 text") from None
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


def load_questions(path: Path, domain: str | None = None) -> list[str]:
    """JSON or JSONL of strings or ``{"question": ...}`` objects, or plain text with one question per line."""
    if path.suffix not in (".jsonl", ".json"):
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = []
    for where, value in _entries(path, domain):
        question = value.get("question") if isinstance(value, dict) else value
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f'{where}: a question is a string or {{"question": "..."}}')
        questions.append(question.strip())
    return questions


def load_tool_specs(path: Path, domain: str | None = None) -> list[ToolSpec]:
    """OpenAI tool specs (``{"type": "function", "function": {...}}`` or bare functions), as a list or JSONL."""
    specs = []
    for where, value in _entries(path, domain):
        if not isinstance(value, dict) or "name" not in value.get("function", value):
            raise ValueError(f"{where}: a tool spec is an object with a name (OpenAI function format)")
        try:
            specs.append(ToolSpec.from_openai(value))
        except ValidationError as exc:
            raise ValueError(f"{where}: not a valid tool spec: {_problem(exc)}") from None
    return specs


def load_sql_tools(path: Path, domain: str | None = None) -> list[SQLTool]:
    """SQL tools (``{name, description, parameters, sql, kind}``, or OpenAI specs carrying ``sql``), as a JSON list
    (``tools scaffold`` writes one) or JSONL (a run's ``artifacts/tools.jsonl``); names must be unique. Without
    ``domain``, a file whose rows name several domains is refused: which domain's tools is meant?"""
    entries = _all_entries(path)
    named = list(dict.fromkeys(v["domain"] for _, v in entries if isinstance(v, dict) and "domain" in v))
    if domain is None and len(named) > 1:
        raise ValueError(f"{path}: holds the tools of {len(named)} domains ({', '.join(named)}); name one")
    tools: list[SQLTool] = []
    first: dict[str, str] = {}
    for where, value in _for_domain(entries, domain):
        try:
            tool = SQLTool.from_entry(value)
        except ValidationError as exc:
            raise ValueError(f"{where}: not a valid SQL tool: {_problem(exc)}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: not a valid SQL tool: {exc}") from None
        if tool.name in first:
            raise ValueError(f"{where}: the tool name {tool.name!r} is already used ({first[tool.name]})")
        first[tool.name] = where
        tools.append(tool)
    return tools


def load_tasks(path: Path, domain: str | None = None) -> list[Task]:
    tasks = []
    for where, value in _entries(path, domain):
        try:
            tasks.append(Task.model_validate(value))
        except ValidationError as exc:
            raise ValueError(f"{where}: not a valid task: {_problem(exc)}") from None
    return tasks
