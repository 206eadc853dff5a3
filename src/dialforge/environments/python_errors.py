"""What an exception raised by a Python tool tells the agent: one of the error kinds a real API would return.

Rules are tried in order, the user's (config ``python.errors``) before the defaults; the first that matches
gives the kind. By default a lookup error, or any exception whose class name or message says that something
was not found, is ``not_found``; a ``PermissionError`` is ``refused``; a ``ValueError`` (the tool's own logic
declining a request whose arguments had the right types, as in "Non-pending order cannot be cancelled") is a
``constraint_violation``; anything else is an ``execution_error``. ``invalid_arguments`` is kept for
arguments that fail the tool's schema or types, which are checked before the tool runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dialforge.environments.base import ToolErrorKind, ToolResult


@dataclass(frozen=True)
class ErrorRule:
    """Exceptions of ``exception``'s class (any, when None) whose text matches ``message`` (any, when None)."""

    kind: ToolErrorKind
    exception: type[BaseException] | None = None
    message: re.Pattern[str] | None = None

    def matches(self, exc: BaseException, text: str) -> bool:
        if self.exception is not None and not isinstance(exc, self.exception):
            return False
        return self.message is None or self.message.search(text) is not None


_NOT_FOUND = re.compile(r"not[ _-]?found|does[ _-]?not[ _-]?exist|no such", re.IGNORECASE)

DEFAULT_RULES: tuple[ErrorRule, ...] = (
    ErrorRule("not_found", LookupError),
    ErrorRule("refused", PermissionError),
    ErrorRule("not_found", message=_NOT_FOUND),
    ErrorRule("constraint_violation", ValueError),
)


def failure_from(tool: str, exc: Exception, rules: Sequence[ErrorRule] = ()) -> ToolResult:
    """An exception raised by ``tool``, as the error an agent would get from a real API."""
    keyed = isinstance(exc, KeyError) and len(exc.args) == 1  # str(KeyError) would quote its argument
    text = str(exc.args[0]) if keyed else str(exc) or type(exc).__name__
    exception = type(exc).__name__
    named = f"{exception}: {text}"  # the class name counts for the defaults: OrderNotFound
    for rule in rules:
        if rule.matches(exc, text):
            return _failure(rule.kind, tool, text, exception)
    for rule in DEFAULT_RULES:
        if rule.matches(exc, named):
            return _failure(rule.kind, tool, text, exception)
    return _failure("execution_error", tool, text, exception)


def _failure(kind: ToolErrorKind, tool: str, text: str, exception: str) -> ToolResult:
    message = f"{tool} failed with {exception}: {text}" if kind == "execution_error" else f"{tool}: {text}"
    return ToolResult.failure(kind, message, exception=exception)
