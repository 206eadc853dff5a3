"""Render exported ``trl`` records through real chat templates, with jinja2 set up as transformers does.

``render`` is strict (a template's own ``raise_exception`` raises ``TemplateError``); ``template_problems``
never raises: it renders the record and reports, per record, what the template could not do, e.g.
Llama 3.1's "only supports single tool-calls at once" (met by exporting with ``one_call_per_message``), or the
vLLM Mistral example template, which writes an assistant message's content after ``[TOOL_CALLS]`` and so drops
the calls themselves.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

TemplateError = jinja2.exceptions.TemplateError

# Special tokens of the model families the shared templates come from; override with bos_token/eos_token.
_SPECIAL_TOKENS: tuple[tuple[str, str, str], ...] = (
    ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    ("mistral", "<s>", "</s>"),
    ("hermes", "<|begin_of_text|>", "<|im_end|>"),
    ("qwen", "", "<|im_end|>"),
)


def special_tokens(template: Path | str) -> tuple[str, str]:
    """``(bos_token, eos_token)`` guessed from the template's file name; ``("<s>", "</s>")`` otherwise."""
    name = Path(str(template)).name.lower() if _is_path(template) else ""
    for key, bos, eos in _SPECIAL_TOKENS:
        if key in name.replace(".", ""):
            return bos, eos
    return "<s>", "</s>"


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    # transformers' own tojson: no HTML escaping, unicode kept, indent/separators/sort_keys passed through
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def _is_path(template: Path | str) -> bool:
    return isinstance(template, Path) or ("{{" not in template and "{%" not in template)


def load_template(template: Path | str) -> str:
    """A template's source: ``template`` is a path, or the template text itself (a str containing ``{{``/``{%``)."""
    return Path(template).read_text(encoding="utf-8") if _is_path(template) else str(template)


def render(
    template_path: Path | str,
    record_trl: dict[str, Any],
    *,
    add_generation_prompt: bool = False,
    bos_token: str | None = None,
    eos_token: str | None = None,
    **extra: Any,
) -> str:
    """The record (``messages``, ``tools``) rendered by the template, as ``apply_chat_template(tokenize=False)``
    would; raises ``TemplateError`` (or another exception from a broken template) on failure."""
    bos, eos = special_tokens(template_path)
    template = _compile(load_template(template_path))
    return template.render(
        messages=record_trl["messages"],
        tools=record_trl.get("tools") or None,
        add_generation_prompt=add_generation_prompt,
        bos_token=bos if bos_token is None else bos_token,
        eos_token=eos if eos_token is None else eos_token,
        **extra,
    )


def _appears(text: str, rendered: str) -> bool:
    text = text.strip()
    if not text or text in rendered:
        return True
    return json.dumps(text, ensure_ascii=False)[1:-1] in rendered


def _marker(message_index: int, call_index: int) -> str:
    return f"zzcall{message_index}x{call_index}zz"


def _with_call_markers(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every tool call's name replaced by a unique marker (the tool list stays as it is), to see
    whether the template writes the calls themselves rather than just the tool names from the tool list."""
    if not any(m.get("tool_calls") for m in record["messages"]):
        return record
    messages = []
    for index, message in enumerate(record["messages"]):
        if message.get("tool_calls"):
            calls = [
                {**call, "function": {**call["function"], "name": _marker(index, number)}}
                for number, call in enumerate(message["tool_calls"])
            ]
            message = {**message, "tool_calls": calls}
        messages.append(message)
    return {**record, "messages": messages}


def template_problems(template: Path | str, record: dict[str, Any], **render_kwargs: Any) -> list[str]:
    """What the template cannot do with this ``trl`` record, as readable lines; empty when it renders it whole.

    Never raises: a render failure is one problem (``render failed: ...``); otherwise each tool call name, tool
    result, system prompt and assistant text missing from the rendered text is reported with its message index.
    """
    try:
        rendered = render(template, record, **render_kwargs)
    except RecursionError:
        return [
            "render failed: the template recursed without end (e.g. Hermes' json_to_python_type on a "
            "JSON-schema type it does not know, such as 'null'; export with --nullable-as-flag)"
        ]
    except Exception as exc:
        return [f"render failed: {type(exc).__name__}: {exc}"]
    problems: list[str] = []
    marked = _with_call_markers(record)
    try:
        with_markers = render(template, marked, **render_kwargs) if marked is not record else rendered
    except Exception:
        with_markers = rendered
    for index, message in enumerate(record["messages"]):
        role = message.get("role")
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        if role == "system" and not _appears(content, rendered):
            problems.append(f"message {index}: system prompt not rendered")
        elif role == "tool" and not _appears(content, rendered):
            problems.append(f"message {index}: tool result not rendered")
        elif role == "assistant":
            for number, call in enumerate(message.get("tool_calls") or []):
                name = call["function"]["name"]
                if _marker(index, number) not in with_markers:
                    problems.append(f"message {index}: tool call {name!r} not rendered")
            if content and not _appears(content, rendered):
                what = "assistant text beside tool calls" if message.get("tool_calls") else "assistant text"
                problems.append(f"message {index}: {what} not rendered")
    return problems


@dataclass
class TemplateCheck:
    """How one template fared on a set of records: how many render whole, and each kind of problem's count."""

    template: str
    records: int = 0
    whole: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    """problem (without its message index) -> records that have it"""

    def summary(self) -> str:
        line = f"template {self.template}: {self.whole} of {self.records} records render whole"
        kinds = "; ".join(f"{problem} ({count})" for problem, count in self.problems.most_common(5))
        return f"{line}; {kinds}" if kinds else line


_KIND = re.compile(r"^message \d+: |(?<=tool call) '[^']*'")
"""what varies between problems of one kind: the message index, the tool's name"""


def check_template(template: Path | str, records: Iterable[dict[str, Any]]) -> TemplateCheck:
    """``template_problems`` over many records, counted by kind of problem."""
    check = TemplateCheck(Path(str(template)).name if _is_path(template) else "(inline)")
    for record in records:
        problems = template_problems(template, record)
        check.records += 1
        check.whole += not problems
        check.problems.update({_KIND.sub("", problem) for problem in problems})
    return check
