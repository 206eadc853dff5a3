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
from itertools import count
from typing import Any

import aiohttp
import orjson

from dialforge.llm._transport import BadResponse, HttpTransport
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.base import RepairingChatModel
from dialforge.llm.completion import Completion, CompletionOptions
from dialforge.llm.endpoint_pool import EndpointPool
from dialforge.llm.errors import ModelRequestRejected
from dialforge.llm.reasoning import split_reasoning
from dialforge.llm.settings import StructuredOutput
from dialforge.llm.structured import json_instruction, with_instruction
from dialforge.model.messages import FunctionCall, Message, ToolCall, to_openai
from dialforge.model.usage import Usage

_BUILTIN_CHOICES = {"auto", "none", "required"}
_MISSING_ID = count()


def _tool_call(raw: dict[str, Any]) -> ToolCall:
    function = raw.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return ToolCall(
        id=raw.get("id") or f"call_missing_{next(_MISSING_ID)}",
        function=FunctionCall(name=function.get("name") or "", arguments=arguments),
    )


def completion_from_response(data: Any, model: str, seconds: float) -> Completion:
    """Build a ``Completion`` from a chat.completion body; ``BadResponse`` when it is not one."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise BadResponse("no choices[0].message in the reply") from None
    content, inline_reasoning = split_reasoning(message.get("content"))
    reasoning = message.get("reasoning_content") or message.get("reasoning") or inline_reasoning
    usage = data.get("usage") or {}
    details = usage.get("completion_tokens_details") or {}
    return Completion(
        content=content,
        tool_calls=[_tool_call(raw) for raw in message.get("tool_calls") or ()],
        reasoning=reasoning,
        finish_reason=choice.get("finish_reason"),
        model=data.get("model") or model,
        usage=Usage(
            calls=1,
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            reasoning_tokens=details.get("reasoning_tokens") or 0,
            seconds=seconds,
        ),
    )


class OpenAICompatible(RepairingChatModel):
    """A role's view of one model served by a pool of OpenAI-compatible endpoints."""

    def __init__(
        self,
        model: str,
        pool: EndpointPool,
        transport: HttpTransport,
        *,
        role: str = "default",
        ledger: UsageLedger | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout_s: float = 300.0,
        max_retries: int | None = None,
        structured_output: StructuredOutput = "auto",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.name = model
        self.role = role
        self.pool = pool
        self._transport = transport
        self.ledger: UsageLedger = ledger or UsageLedger()
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_retries = max_retries
        self._structured_output = structured_output
        self._native_json: bool | None = {"native": True, "prompt": False}.get(structured_output)
        self._extra_body = extra_body or {}

    def _record_retry(self, kind: str) -> None:
        self.ledger.record_retry(self.role, self.name, kind)

    def _body_options(self, options: CompletionOptions) -> dict[str, Any]:
        """Everything in the request body but the messages and the response format."""
        body: dict[str, Any] = {"model": self.name, **self._extra_body}
        if options.tools:
            body["tools"] = [tool.to_openai() for tool in options.tools]
        if (choice := options.tool_choice) is not None:
            body["tool_choice"] = (
                choice if choice in _BUILTIN_CHOICES else {"type": "function", "function": {"name": choice}}
            )
        for key, value in (
            ("temperature", self._temperature if options.temperature is None else options.temperature),
            ("max_tokens", self._max_tokens if options.max_tokens is None else options.max_tokens),
            ("seed", options.seed),
        ):
            if value is not None:
                body[key] = value
        return body

    async def _send(self, messages: Sequence[Message], options: CompletionOptions) -> Completion:
        response_format = options.response_format
        native = response_format is not None and self._native_json is not False
        body = self._body_options(options)
        if response_format is not None and not native:
            messages = with_instruction(messages, json_instruction(response_format))
        elif response_format is not None:
            body["response_format"] = response_format.to_openai()
        body["messages"] = [to_openai(message) for message in messages]
        started = time.perf_counter()
        try:
            completion = await self._transport.post_json(
                self.pool,
                orjson.dumps(body),
                model=self.name,
                headers=self._headers,
                timeout=self._timeout,
                parse=lambda data: completion_from_response(data, self.name, time.perf_counter() - started),
                on_retry=self._record_retry,
                max_retries=self._max_retries,
            )
        except ModelRequestRejected as exc:
            if native and self._native_json is None and exc.status in (400, 422):
                # Not yet known whether this server does structured outputs: assume it does not.
                self._native_json = False
                self.ledger.record_failure(self.role, self.name, "structured_output_unsupported")
                return await self._send(messages, options)
            raise
        if native:
            self._native_json = True
        return completion
