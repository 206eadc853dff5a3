"""``OpenAICompatible``: the chat model behind any ``/v1/chat/completions`` server.

vLLM, SGLang, Ollama, llama.cpp server, OpenAI and hosted APIs all speak this protocol with
small differences this module absorbs: reasoning arrives as ``reasoning_content``,
``reasoning`` or inline ``<think>`` blocks; some servers reject ``response_format`` of type
``json_schema`` (we fall back to asking for JSON in the prompt and extracting it); tool-call
arguments occasionally arrive as objects instead of strings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from dialforge.llm._transport import HttpTransport
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.base import RepairingChatModel
from dialforge.llm.completion import Completion, RequestOptions
from dialforge.llm.endpoint_pool import EndpointPool
from dialforge.llm.errors import ModelRequestRejected
from dialforge.llm.server_reply import completion_from_response
from dialforge.llm.settings import ResolvedModelSettings
from dialforge.llm.structured import json_instruction, with_instruction
from dialforge.model.messages import Message, to_openai

_BUILTIN_CHOICES = {"auto", "none", "required"}


class OpenAICompatible(RepairingChatModel):
    """A role's view of one model served by a pool of OpenAI-compatible endpoints."""

    def __init__(
        self,
        settings: ResolvedModelSettings,
        pool: EndpointPool,
        transport: HttpTransport,
        *,
        ledger: UsageLedger | None = None,
        api_key: str | None = None,
    ) -> None:
        """``api_key`` is passed apart from ``settings``, which only name the variable that holds it."""
        self.settings = settings
        self.name = settings.model
        self.role = settings.role
        self.pool = pool
        self._transport = transport
        self.ledger: UsageLedger = ledger or UsageLedger()
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        self._native_json: bool | None = {"native": True, "prompt": False}.get(settings.structured_output)

    def _record_retry(self, kind: str) -> None:
        self.ledger.record_retry(self.role, self.name, kind)

    def _body_options(self, options: RequestOptions) -> dict[str, Any]:
        """Everything in the request body but the messages and the response format."""
        body: dict[str, Any] = {"model": self.name, **self.settings.extra_body}
        if options.tools:
            body["tools"] = [tool.to_openai() for tool in options.tools]
        if options.tools and (choice := options.tool_choice) is not None:
            body["tool_choice"] = (
                choice if choice in _BUILTIN_CHOICES else {"type": "function", "function": {"name": choice}}
            )
        for key, value in options.body_parameters().items():
            body[self.settings.max_tokens_field if key == "max_tokens" else key] = value
        return body

    async def _send(self, messages: Sequence[Message], options: RequestOptions) -> Completion:
        options = options.over(self.settings)
        while True:
            native = options.response_format is not None and self._native_json is not False
            try:
                return await self._post(messages, options, native)
            except ModelRequestRejected as exc:
                exc.role, exc.api_key_env = self.role, self.settings.api_key_env  # for its fix, which names them
                if not (native and self._native_json is None and _refuses_structured_output(exc)):
                    raise
                # Now known: this server does not do structured outputs. Ask in the prompt from now on. The
                # request is sent again that way: a retry, not a failed call.
                self._native_json = False
                self._record_retry("structured_output_unsupported")

    async def _post(self, messages: Sequence[Message], options: RequestOptions, native: bool) -> Completion:
        completion, _ = await self._exchange(messages, options, native)
        if native:
            self._native_json = True
        return completion

    async def exchange(self, messages: Sequence[Message], options: RequestOptions) -> tuple[Completion, Any]:
        """One request exactly as asked (``response_format`` sent as it is), neither repaired nor counted: the
        reply and the JSON body it came in, for probes of what a server does (``llm/server_check.py``)."""
        return await self._exchange(messages, options.over(self.settings), True)

    async def list_models(self) -> Any:
        """The JSON body of ``GET /models`` at the first base URL: the models the server serves."""
        return await self._transport.get_json(f"{self.pool.base_urls[0]}/models", self._headers, self._timeout)

    async def _exchange(
        self, messages: Sequence[Message], options: RequestOptions, native: bool
    ) -> tuple[Completion, Any]:
        body = self._body_options(options)
        if options.response_format is not None and not native:
            messages = with_instruction(messages, json_instruction(options.response_format))
        elif options.response_format is not None:
            body["response_format"] = options.response_format.to_openai()
        body["messages"] = [to_openai(message) for message in messages]
        started = time.perf_counter()
        return await self._transport.post_json(
            self.pool,
            orjson.dumps(body),
            model=self.name,
            headers=self._headers,
            timeout=self._timeout,
            parse=lambda data: (completion_from_response(data, self.name, time.perf_counter() - started), data),
            on_retry=self._record_retry,
            max_retries=self.settings.max_retries,
        )


def _refuses_structured_output(error: ModelRequestRejected) -> bool:
    """A 400/422 about the response format itself (not, say, a prompt over the context length)."""
    text = str(error).lower()
    return error.status in (400, 422) and any(
        word in text for word in ("response_format", "json_schema", "structured output", "guided")
    )
