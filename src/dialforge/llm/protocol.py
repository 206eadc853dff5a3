"""The one interface every chat backend implements: real servers and offline models alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from dialforge.llm.completion import NO_OPTIONS, Completion, RequestOptions
from dialforge.model.messages import Message


@runtime_checkable
class ChatModel(Protocol):
    """An async chat model.

    ``options.response_format`` asks for a reply satisfying a JSON schema: the returned completion's
    ``parsed`` holds the validated value. ``options.tools`` offers functions; invalid calls (unknown
    name, arguments that are not a JSON object) are repaired once or raise ``ModelOutputError``.
    Sampling options left unset take the role's configured defaults.
    """

    name: str

    async def complete(self, messages: Sequence[Message], options: RequestOptions = NO_OPTIONS) -> Completion: ...
