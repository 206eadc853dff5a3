"""The one interface every chat backend implements: real servers and offline models alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from dialforge.llm.completion import Completion, ResponseSchema, ToolChoice
from dialforge.model.messages import Message
from dialforge.model.tools import ToolSpec


@runtime_checkable
class ChatModel(Protocol):
    """An async chat model.

    ``response_format`` asks for a reply satisfying a JSON schema: the returned completion's
    ``parsed`` holds the validated value. ``tools`` offers functions; invalid calls (unknown
    name, arguments that are not a JSON object) are repaired once or raise ``ModelOutputError``.
    """

    name: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] | None = None,
        tool_choice: ToolChoice | None = None,
        response_format: ResponseSchema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> Completion: ...
