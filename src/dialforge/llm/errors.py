"""Errors a chat model raises; each has a ``kind`` that accounting counts failures by."""

from __future__ import annotations

import functools
from typing import Any

from dialforge.model.usage import Usage


class ModelError(Exception):
    """``usage`` is what the failed call spent before it failed (replies that came but could not be used):
    they were paid for, so the dialogue that asked books them like the usage of a call that succeeded."""

    kind: str = "error"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.usage = Usage()

    @property
    def blocks_every_request(self) -> bool:
        """True when every request of the run would fail the same way, so no dialogue can get past it: the run
        stops instead of failing its dialogues one by one."""
        return False


class ModelRequestRejected(ModelError):
    """The server refused the request itself (a 4xx other than 408, 409 and 429): retrying cannot help.

    Most refusals meet every request of a run: a wrong key, an unknown model or URL, a request format the
    server does not take. ``fix`` says what to change, and ``blocks_every_request`` is true. A refusal of one
    request's content (a prompt over the context length, a content filter) concerns only the dialogue that
    sent it: ``fix`` is None; so does a 400 or 422 whose words name no known cause (its dialogue fails, and
    ``dialforge run --retry-failed`` runs it again once the cause is fixed). ``role`` and ``api_key_env`` are
    filled in by the client that sent the request.
    """

    kind = "rejected"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        endpoint: str | None = None,
        model: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.endpoint, self.model = endpoint, model
        self.reason = message if reason is None else reason
        """The server's own words."""
        self.role: str | None = None
        self.api_key_env: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (Ray workers): rebuilt with its keyword-only status, then its attributes.
        return functools.partial(type(self), status=self.status), (str(self),), self.__dict__

    @property
    def blocks_every_request(self) -> bool:
        return self.fix is not None

    @property
    def fix(self) -> str | None:
        """What to change so that requests go through, or None for a refusal of this request's content alone."""
        settings = f"models.{self.role}" if self.role else "the model's settings"
        if self.status in (401, 403):
            if self.api_key_env is None:
                return (
                    "the request carried no API key: put the key in an environment variable and name that "
                    f"variable in {settings}.api_key_env"
                )
            refused = "did not accept it" if self.status == 401 else "did not accept it for this model"
            return (
                f"check the API key in the environment variable {self.api_key_env} "
                f"({settings}.api_key_env names it): the server {refused}"
            )
        if self.status == 402:
            return (
                f"the account of the API key{_in(self.api_key_env)} has no credit left: add credit, or use another key"
            )
        text = self.reason.lower()
        if self.status not in (404, 405) and (self.status not in (400, 422) or _says(text, _ONE_REQUEST)):
            return None
        if self.status in (404, 405) or _says(text, _UNKNOWN_MODEL):
            where = self.endpoint or "the base URL"
            return (
                f"check the model name ({settings}.model: {self.model!r}) and the base URL ({where}, usually ending "
                f"in /v1): GET {where}/models lists the models the server serves"
            )
        if _says(text, _TOOLS):
            return (
                "the server does not take the tools or tool_choice that the agent's requests carry: serve the model "
                "with tool calling on (vLLM: --enable-auto-tool-choice and --tool-call-parser; Ollama: a model "
                "with tool support)"
            )
        if _says(text, _CHAT_TEMPLATE):
            return (
                "the model's chat template refuses the conversations dialforge sends (a system prompt, tool calls "
                "and tool results between user turns): serve the model with a template that takes them (vLLM: "
                "--chat-template)"
            )
        if _says(text, _RESPONSE_FORMAT):
            return (
                f"the server does not take response_format: set {settings}.structured_output: prompt, which asks "
                "for the JSON in the prompt instead"
            )
        if _says(text, _PARAMETER):
            return (
                f"remove or rename the parameter the server names in {settings} (its sampling options, "
                "max_tokens_field or extra_body)"
            )
        return None


_ONE_REQUEST = (
    "context length",
    "context_length",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "reduce the length",
    "content filter",
    "content_filter",
    "content management",
    "content_policy",
    "safety system",
)
"""What servers say when they refuse one request's content: only the dialogue that sent it is concerned."""
_UNKNOWN_MODEL = ("not a valid model", "model_not_found", "does not exist", "unknown model", "no such model")
_TOOLS = ("tool choice", "tool_choice", "tool-call-parser", "does not support tools", "function calling")
_CHAT_TEMPLATE = ("roles must alternate", "chat template", "chat_template")
_RESPONSE_FORMAT = ("response_format", "json_schema", "structured output", "guided_")
_PARAMETER = (
    "unsupported parameter",
    "unsupported value",
    "unrecognized request argument",
    "unknown parameter",
    "extra inputs are not permitted",
    "extra_forbidden",
)


def _says(text: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase in text for phrase in phrases)


def _in(api_key_env: str | None) -> str:
    return f" in {api_key_env}" if api_key_env else ""


class ModelUnavailable(ModelError):
    """Transient failures (429, 5xx, timeouts, resets, broken bodies) outlasted every retry."""

    kind = "unavailable"


class ModelOutputError(ModelError):
    """The reply arrived but cannot be used (bad JSON, schema mismatch, invalid tool call), even after repair."""

    kind = "invalid_output"
