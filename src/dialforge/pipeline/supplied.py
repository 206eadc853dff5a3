"""Reading artifacts a user supplies instead of generating them; errors name the file and the entry.

A run's own artifacts (``artifacts/*.jsonl``, one row per item with a ``domain`` key) can be given
back as input: rows of other domains are skipped and the bookkeeping keys are dropped.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from dialforge.config import DomainConfig
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.tool import SQLTool
from dialforge.environments.sql.validation import validate_tools
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


def check_supplied_tools(domains: Iterable[DomainConfig], today: datetime | None = None) -> None:
    """Refuse, before anything runs, the tools files whose tools the agent could not use: for a domain with a
    database, each tool goes through the checks of ``dialforge tools check`` (SQL, parameters, names, a trial
    run, whose SQL 'now' is ``today``, the dialogues' date); for a domain of tool specs, the names must be unique.
    One error names every bad tool of every domain, why, and how to fix it."""
    refusals = []
    for domain in domains:
        if domain.tools is None:
            continue
        try:
            problems = _tool_problems(domain, today)
        except ValueError as exc:  # an unreadable file or database, a malformed entry
            problems = [str(exc)]
        if problems:
            listed = "".join(f"\n  - {problem}" for problem in problems)
            refusals.append(f"the tools supplied for the domain {domain.name!r} cannot be used:{listed}")
            refusals.append(_fix(domain))
    if refusals:
        raise ValueError("\n".join([*refusals, "nothing was started and no model was called"]))


def _tool_problems(domain: DomainConfig, today: datetime | None) -> list[str]:
    assert domain.tools is not None
    if domain.database is not None:
        database = SQLDatabase.load(domain.database)
        verdicts = validate_tools(load_sql_tools(domain.tools, domain.name), database, clock=today)
        return [f"{verdict.name}: {'; '.join(verdict.reasons)}" for verdict in verdicts if not verdict.valid]
    names = [spec.name for spec in load_tool_specs(domain.tools, domain.name)]
    repeated = [name for name in dict.fromkeys(names) if names.count(name) > 1]
    return [f"{name}: {names.count(name)} tools have this name; names must be unique" for name in repeated]


def _fix(domain: DomainConfig) -> str:
    assert domain.tools is not None
    tools = shlex.quote(str(domain.tools))
    if domain.database is None:
        return f"fix: give each tool in {tools} a name of its own, or remove the repeats"
    database, name = shlex.quote(str(domain.database)), shlex.quote(domain.name)
    return f"fix or remove them, then check the file: dialforge tools check {tools} --db {database} --domain {name}"


def load_tasks(path: Path, domain: str | None = None) -> list[Task]:
    tasks = []
    for where, value in _entries(path, domain):
        try:
            tasks.append(Task.model_validate(value))
        except ValidationError as exc:
            raise ValueError(f"{where}: not a valid task: {_problem(exc)}") from None
    return tasks
