"""A chat model that answers from a queue of scripted replies, for tests that need exact turns.

Replies go through the same ``complete_with_repair`` policy as every backend, so a malformed
scripted reply is followed by a repair request that consumes the next reply, exactly as a real
server would be asked again. Every request is recorded so tests can assert on prompts.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dialforge.llm.accounting import UsageLedger
from dialforge.llm.base import RepairingChatModel
from dialforge.llm.completion import Completion, RequestOptions
from dialforge.llm.errors import ModelError
from dialforge.model.messages import Message, ToolCall

Reply = Completion | str | dict[str, Any] | Exception
"""A scripted reply: a completion, its text, a dict of its fields, or an exception to raise."""

_REPLY_KEYS = frozenset(("content", "tool_calls", "reasoning", "finish_reason"))
_CALL_KEYS = frozenset(("name", "arguments", "id"))


class ScriptExhausted(ModelError):
    """The test asked the model more often than it scripted replies for."""

    kind = "script_exhausted"


@dataclass(frozen=True)
class ScriptedRequest:
    """One request as the model received it (repair requests included)."""

    messages: list[Message]
    options: RequestOptions


class ScriptedModel(RepairingChatModel):
    """Offline ``ChatModel`` that returns its scripted replies in order."""

    def __init__(
        self,
        replies: Iterable[Reply],
        *,
        name: str = "scripted",
        role: str = "default",
        ledger: UsageLedger | None = None,
    ) -> None:
        self.name = name
        self.role = role
        self.ledger = ledger
        self.requests: list[ScriptedRequest] = []
        self._queue: deque[Completion | Exception] = deque()
        self._scripted = 0
        self._call_ids = itertools.count()
        for index, reply in enumerate(replies):
            self._add(reply, f"reply {index}")

    @classmethod
    def from_jsonl(cls, path: str | Path, **kwargs: Any) -> ScriptedModel:
        """Replies from a JSONL file, one reply dict per line (blank lines skipped)."""
        model = cls((), **kwargs)
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                reply = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON: {exc}") from None
            if not isinstance(reply, dict):
                raise ValueError(f"{where}: a scripted reply is a JSON object, not {type(reply).__name__}")
            model._add(reply, where)
        return model

    @property
    def remaining(self) -> int:
        return len(self._queue)

    def pop(self) -> Completion:
        """The next raw reply; raises it if it is an exception, ``ScriptExhausted`` if none is left."""
        if not self._queue:
            raise ScriptExhausted(
                f"scripted model {self.name!r} (role {self.role!r}) has no reply left: "
                f"all {self._scripted} scripted replies were used"
            )
        reply = self._queue.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _send(self, messages: Sequence[Message], options: RequestOptions) -> Completion:
        self.requests.append(ScriptedRequest(messages=list(messages), options=options))
        return self.pop()

    def _add(self, reply: Reply, where: str) -> None:
        """Queue a reply, checked now so a bad script fails at load time, naming ``where``."""
        if isinstance(reply, Exception):
            self._queue.append(reply)
        elif isinstance(reply, Completion):
            self._queue.append(reply.model_copy(deep=True, update={"model": reply.model or self.name}))
        elif isinstance(reply, str):
            self._queue.append(Completion(content=reply, finish_reason="stop", model=self.name))
        elif isinstance(reply, dict):
            try:
                self._queue.append(self._from_dict(reply))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                raise ValueError(f"{where}: not a valid scripted reply: {exc}") from None
        else:
            raise TypeError(f"{where}: a reply is a Completion, str, dict or exception, not {reply!r}")
        self._scripted += 1

    def _from_dict(self, reply: dict[str, Any]) -> Completion:
        unknown = reply.keys() - _REPLY_KEYS
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; a reply may have {sorted(_REPLY_KEYS)}")
        calls = [self._tool_call(call) for call in reply.get("tool_calls") or ()]
        return Completion(
            content=reply.get("content"),
            tool_calls=calls,
            reasoning=reply.get("reasoning"),
            finish_reason=reply.get("finish_reason", "tool_calls" if calls else "stop"),
            model=self.name,
        )

    def _tool_call(self, call: Any) -> ToolCall:
        if not isinstance(call, dict) or "name" not in call or call.keys() - _CALL_KEYS:
            raise ValueError(f"a tool call is a dict with 'name' (and 'arguments', 'id'), not {call!r}")
        call_id = call.get("id") or f"call_{next(self._call_ids)}"
        return ToolCall.make(call_id, call["name"], call.get("arguments", {}))


def scripted_roles(
    replies_by_role: Mapping[str, Iterable[Reply]], *, ledger: UsageLedger | None = None
) -> dict[str, ScriptedModel]:
    """One scripted model per role, sharing a ledger, e.g. for ``RoleModels``."""
    return {role: ScriptedModel(script, role=role, ledger=ledger) for role, script in replies_by_role.items()}
