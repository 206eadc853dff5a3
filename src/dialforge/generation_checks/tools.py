"""What the generation stages read off a tool: whether calling it changes data, whether it needs an account, and
how a prompt lists it.

A tool that changes data needs a policy rule (confirm first) and, in a task, checks that show the change
happened. Its SQL says so when it has SQL; otherwise the verb its name starts with does (``cancel_order``).
A tool that needs an account cannot serve a goal that touches no one's account (an independent follow-up).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import sqlglot
from sqlglot import exp

from dialforge.model.tools import ToolSpec

WRITE_VERBS = frozenset(
    (
        "create", "add", "insert", "new", "register", "enroll", "book", "reserve", "schedule", "reschedule",
        "place", "submit", "send", "post", "issue", "open", "save", "update", "set", "change", "modify",
        "edit", "rename", "move", "assign", "transfer", "mark", "apply", "approve", "reject", "confirm",
        "renew", "upgrade", "downgrade", "activate", "deactivate", "enable", "disable", "block", "unblock",
        "subscribe", "unsubscribe", "pay", "refund", "charge", "redeem", "reset", "restore", "archive",
        "close", "delete", "remove", "cancel", "revoke", "void", "clear",
    )
)  # fmt: skip
"""First words of tool names that change data, for tools without SQL to read (``cancel_order``, ``addItem``)."""

ACCOUNT_HOLDERS = (
    "account", "customer", "member", "user", "client", "patient", "guest", "subscriber", "student", "passenger",
    "traveler", "traveller", "buyer", "employee", "person", "profile", "holder", "owner",
)  # fmt: skip
"""Whose records a parameter names when it starts with one of these words (``customer_id``, ``memberNumber``)."""
_HOLDER_KEYS = frozenset(
    ("", "id", "ids", "number", "no", "num", "code", "ref", "reference", "key", "email", "emailaddress", "name",
     "username", "login", "phone", "phonenumber")
)  # fmt: skip
"""What follows the holder word in a parameter that identifies an account: nothing, an id, a login."""
_LOGINS = frozenset(("email", "emailaddress", "username", "login", "phone", "phonenumber"))
"""Parameters that identify an account on their own."""
_NAME_PARTS = re.compile(r"[\W_]+")
_FIRST_WORD = re.compile(r"[_\-\s]|(?<=[a-z0-9])(?=[A-Z])")
_WRITE_STATEMENTS = (exp.Insert, exp.Update, exp.Delete)
_TOOL_STATEMENTS = (exp.Select, exp.SetOperation, *_WRITE_STATEMENTS)


def changes_data(tool: ToolSpec) -> bool:
    """Whether calling the tool changes data: its SQL is an INSERT, UPDATE or DELETE, else its name's verb says so.

    SQL that is not one SELECT, INSERT, UPDATE or DELETE statement says nothing; the name still does.
    """
    statement = _only_statement(tool.sql) if tool.sql is not None else None
    if isinstance(statement, _TOOL_STATEMENTS):
        return isinstance(statement, _WRITE_STATEMENTS)
    return _FIRST_WORD.split(tool.name, maxsplit=1)[0].casefold() in WRITE_VERBS


def needs_account(tool: ToolSpec) -> bool:
    """Whether every call of the tool names someone's account: a required parameter identifies one
    (``customer_id``, ``memberNumber``, ``email``), so the tool cannot serve a goal that leaves accounts alone."""
    return any(_identifies_account(str(name)) for name in tool.parameters.get("required", ()))


def _identifies_account(parameter: str) -> bool:
    key = _NAME_PARTS.sub("", parameter.casefold())
    return key in _LOGINS or any(
        key.startswith(holder) and key.removeprefix(holder) in _HOLDER_KEYS for holder in ACCOUNT_HOLDERS
    )


def describe_tools(tools: Sequence[ToolSpec], *, with_returns: bool = False) -> str:
    """The tools as prompts show them: one compact JSON object per line (name, description, parameters)."""
    lines = []
    for tool in tools:
        shown: dict[str, Any] = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        if with_returns and tool.returns is not None:
            shown["returns"] = tool.returns
        lines.append(orjson.dumps(shown).decode())
    return "\n".join(lines)


def _only_statement(sql: str) -> exp.Expr | None:
    """The SQL's statement when it has exactly one that parses (SQLite dialect), else ``None``."""
    try:
        statements = [statement for statement in sqlglot.parse(sql, read="sqlite") if statement is not None]
    except (sqlglot.errors.SqlglotError, RecursionError):
        return None
    return statements[0] if len(statements) == 1 else None
