"""The mock server's routes and serving logic: an OpenAI-compatible endpoint with latency and faults.

It stands in for vLLM or a hosted API in tests and benchmarks, so the hot path stays cheap:
orjson both ways, cached parsing of repeated prompt parts, no access log, no per-request logging.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialforge.llm.completion import Completion, RequestOptions, ResponseSchema
from dialforge.llm.dry_run import DryRunModel
from dialforge.llm.errors import ModelError, ModelRequestRejected, ModelUnavailable
from dialforge.llm.scripted import ScriptedModel
from dialforge.llm.structured import extract_json
from dialforge.mock_server.faults import (
    RANDOM_FAULTS,
    REJECTIONS,
    REPLY_FAULTS,
    Fault,
    FaultPlan,
    corrupt_reply,
    parse_faults,
)
from dialforge.mock_server.prefix_stats import PrefixReuse, conversation_key
from dialforge.mock_server.protocol import (
    ChatRequest,
    ReasoningMode,
    RequestError,
    chat_completion_body,
    error_body,
    parse_chat_request,
)
from dialforge.model.messages import Message, UserMessage

CONVERSATION_HEADER = "X-Dialforge-Conversation"
RECENT_REQUESTS = 100
"""Well-formed chat request bodies kept for ``GET /control/requests``, so a test can see what a client sent."""
_JSON = "application/json"


class MockServerSettings(BaseModel):
    """How the mock behaves; validated once at start, never per request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = "mock-model"
    latency_ms: float = Field(default=200.0, ge=0, description="delay before every reply (error faults answer at once)")
    fault_rate: float = Field(default=0.0, ge=0, le=1, description="chance a request gets a random fault")
    faults: tuple[Fault, ...] = Field(default=RANDOM_FAULTS, description="the kinds random faults pick from")
    reject_json_schema: bool = Field(default=False, description="refuse response_format json_schema (400)")
    template_without_tools: bool = Field(
        default=False,
        description="a chat template without tool support, as llama.cpp serves it: tools dropped from the prompt, "
        "tool_choice ignored, a history with a tool message refused (400)",
    )
    reasoning: ReasoningMode = "none"
    retry_after: float = Field(default=1.0, ge=0, description="seconds a 429 asks the client to wait")
    slow_seconds: float = Field(default=30.0, ge=0, description="delay of the slow fault")
    seed: int = 0
    script: Path | None = Field(default=None, description="JSONL of scripted replies, served in order")
    max_conversations: int = Field(default=100_000, gt=0, description="conversations kept for prefix stats")
    api_key: str | None = Field(default=None, description="when set, chat requests need 'Authorization: Bearer KEY'")


class Backend(Protocol):
    """Where replies come from; a raw reply, before any fault or reasoning placement."""

    name: str

    def reply(self, request: ChatRequest) -> Completion: ...


class DryRunBackend:
    name = "dry-run"

    def __init__(self, settings: MockServerSettings) -> None:
        self._model = DryRunModel(settings.seed, name=settings.model_name, reasoning=settings.reasoning != "none")

    def reply(self, request: ChatRequest) -> Completion:
        prompted = None if request.response_format else prompted_schema(request.messages)
        try:
            options = RequestOptions(
                tools=request.tools,
                tool_choice=request.tool_choice,
                response_format=request.response_format or prompted,
                max_tokens=request.max_tokens,
                seed=request.seed,
            )
        except ValidationError as exc:
            raise ModelRequestRejected(f"invalid request options: {exc.errors()[0]['msg']}", status=400) from None
        completion = self._model.raw_completion(request.messages, options)
        if prompted is not None:
            # Like a chatty model asked for JSON in the prompt: right value, wrapped in prose.
            completion.content = f"Here is the JSON you asked for:\n```json\n{completion.content}\n```"
            completion.parsed = None
        return completion


def prompted_schema(messages: Sequence[Message]) -> ResponseSchema | None:
    """The JSON schema a prompt asks for in its last user message, if any (as our clients phrase it)."""
    last = messages[-1] if messages else None
    if not isinstance(last, UserMessage) or (marker := last.content.rfind("JSON schema")) < 0:
        return None
    try:
        schema = extract_json(last.content[marker:])
    except ValueError:
        return None
    return ResponseSchema(name="prompted", json_schema=schema) if isinstance(schema, dict) else None


class ScriptedBackend:
    name = "scripted"

    def __init__(self, script: Path, model_name: str) -> None:
        self._model = ScriptedModel.from_jsonl(script, name=model_name)

    def reply(self, request: ChatRequest) -> Completion:
        return self._model.pop()


class ServerStats:
    """Plain counters: they are bumped on every request, so no locks and no models."""

    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.by_status: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()

    def reset(self) -> None:
        self.requests = 0
        self.max_in_flight = self.in_flight
        self.by_status.clear()
        self.faults.clear()


class MockServer:
    """State and request handling behind the routes of ``build_app``."""

    def __init__(self, settings: MockServerSettings) -> None:
        self.settings = settings
        self.backend: Backend = (
            ScriptedBackend(settings.script, settings.model_name) if settings.script else DryRunBackend(settings)
        )
        self.fault_plan = FaultPlan(settings.fault_rate, settings.faults, settings.seed)
        self.prefix_reuse = PrefixReuse(max_conversations=settings.max_conversations)
        self.stats = ServerStats()
        self.recent_requests: deque[bytes] = deque(maxlen=RECENT_REQUESTS)
        self._latency = settings.latency_ms / 1000
        self._authorization = f"Bearer {settings.api_key}" if settings.api_key else None
        self._ids = itertools.count(1)
        self._retry_headers = {
            "Retry-After": _seconds(settings.retry_after),
            "retry-after-ms": str(round(settings.retry_after * 1000)),
        }

    def _respond(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
        self.stats.by_status[status] += 1
        return web.Response(body=orjson.dumps(payload), status=status, content_type=_JSON, headers=headers)

    def _error(self, status: int, message: str, *, type: str, code: str, param: str | None = None) -> web.Response:
        return self._respond(status, error_body(message, type=type, code=code, param=param))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self._chat(request)
        finally:
            stats.in_flight -= 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self._authorization is not None and request.headers.get("Authorization") != self._authorization:
            return self._error(
                401, "incorrect or missing API key (mock server)", type="invalid_request_error", code="invalid_api_key"
            )
        raw = await request.read()
        try:
            chat = parse_chat_request(raw)
        except RequestError as exc:
            return self._error(400, str(exc), type="invalid_request_error", code=exc.code, param=exc.param)
        self.recent_requests.append(raw)
        if chat.stream:
            return self._error(
                400,
                "streaming is not supported by the dialforge mock server; send stream: false",
                type="invalid_request_error",
                code="stream_not_supported",
                param="stream",
            )
        if chat.json_schema_requested and self.settings.reject_json_schema:
            return self._error(
                400,
                "response_format of type json_schema is not supported by this server "
                "(it was started with --reject-json-schema)",
                type="invalid_request_error",
                code="response_format_not_supported",
                param="response_format",
            )
        if self.settings.template_without_tools:
            if any(message.get("role") == "tool" for message in chat.raw_messages):
                message, code = REJECTIONS[Fault.CHAT_TEMPLATE]
                return self._error(400, message, type="invalid_request_error", code=code)
            chat = chat.without_tools()

        fault = self.fault_plan.next()
        if fault is not None:
            self.stats.faults[fault.value] += 1
            if fault is Fault.RATE_LIMIT:
                return self._respond(
                    429,
                    error_body(
                        "rate limit reached (mock fault); retry after the advertised delay",
                        type="rate_limit_error",
                        code="rate_limit_exceeded",
                    ),
                    self._retry_headers,
                )
            if fault is Fault.SERVER_ERROR:
                return self._error(
                    500, "internal server error (mock fault)", type="server_error", code="internal_error"
                )
            if fault is Fault.UNAVAILABLE:
                return self._error(
                    503, "service unavailable (mock fault)", type="server_error", code="service_unavailable"
                )
            if fault in REJECTIONS:
                message, code = REJECTIONS[fault]
                return self._error(400, message, type="invalid_request_error", code=code)
            if fault is Fault.DROP:
                if request.transport is not None:
                    request.transport.close()
                return web.Response()  # never sent: the connection is already gone
            if fault is Fault.SLOW:
                await asyncio.sleep(self.settings.slow_seconds)

        if self._latency:
            await asyncio.sleep(self._latency)
        try:
            completion = self.backend.reply(chat)
        except ModelError as exc:
            return self._backend_error(exc)
        if fault is not None and fault in REPLY_FAULTS:
            completion = corrupt_reply(completion, fault, tool_names=[t.name for t in chat.tools or ()])
        # Only served prompts count: a retry after a fault would look like a perfectly cached repeat.
        conversation = request.headers.get(CONVERSATION_HEADER) or conversation_key(chat.raw_messages)
        self.prefix_reuse.record(conversation, chat.prompt_pieces, chat.prompt_chars)
        payload = chat_completion_body(
            completion,
            request_id=f"chatcmpl-mock-{next(self._ids)}",
            created=int(time.time()),
            model=self.settings.model_name,
            prompt_chars=chat.prompt_chars,
            reasoning=self.settings.reasoning,
        )
        if fault is Fault.MALFORMED_BODY:
            body = orjson.dumps(payload)
            self.stats.by_status[200] += 1
            return web.Response(body=body[: len(body) // 2], content_type=_JSON)
        return self._respond(200, payload)

    def _backend_error(self, exc: ModelError) -> web.Response:
        """A backend refusal (or an exhausted script) as the HTTP status a real server would give it."""
        if isinstance(exc, ModelRequestRejected):
            return self._error(400, str(exc), type="invalid_request_error", code=exc.kind)
        status = 503 if isinstance(exc, ModelUnavailable) else 500
        return self._error(status, str(exc), type="server_error", code=exc.kind)

    async def models(self, request: web.Request) -> web.Response:
        model = {"id": self.settings.model_name, "object": "model", "created": 0, "owned_by": "dialforge"}
        return web.json_response({"object": "list", "data": [model]}, dumps=_dumps)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, dumps=_dumps)

    async def stats_view(self, request: web.Request) -> web.Response:
        stats = self.stats
        return web.json_response(
            {
                "model": self.settings.model_name,
                "backend": self.backend.name,
                "requests": stats.requests,
                "in_flight": stats.in_flight,
                "max_in_flight": stats.max_in_flight,
                "by_status": {str(status): n for status, n in sorted(stats.by_status.items())},
                "faults": dict(sorted(stats.faults.items())),
                "faults_queued": self.fault_plan.queued,
                "prefix_reuse": self.prefix_reuse.snapshot(),
            },
            dumps=_dumps,
        )

    async def queue_faults(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            names = body["faults"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError
            faults = parse_faults(names)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = 'the body must be {"faults": ["rate_limit", ...]}'
            return web.json_response(
                error_body(message, type="invalid_request_error", code="invalid_body"), status=400, dumps=_dumps
            )
        except ValueError as exc:
            return web.json_response(
                error_body(str(exc), type="invalid_request_error", code="unknown_fault"), status=400, dumps=_dumps
            )
        self.fault_plan.queue(faults)
        return web.json_response({"queued": self.fault_plan.queued}, dumps=_dumps)

    async def requests_view(self, request: web.Request) -> web.Response:
        """The last chat request bodies, oldest first, as the server received them."""
        return web.json_response([orjson.loads(body) for body in self.recent_requests], dumps=_dumps)

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.reset()
        self.recent_requests.clear()
        self.fault_plan.clear()
        self.prefix_reuse.reset()
        return web.json_response({"status": "reset"}, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _seconds(value: float) -> str:
    """Whole seconds as an integer (the HTTP form); fractions kept, so tests can ask for short waits."""
    return str(int(value)) if float(value).is_integer() else str(value)


def build_app(settings: MockServerSettings) -> web.Application:
    server = MockServer(settings)
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/chat/completions", server.chat_completions)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/health", server.health)
    app.router.add_get("/stats", server.stats_view)
    app.router.add_post("/control/faults", server.queue_faults)
    app.router.add_get("/control/requests", server.requests_view)
    app.router.add_post("/control/reset", server.reset)
    return app


async def start_mock_server(
    settings: MockServerSettings, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout: float = 5.0
) -> tuple[web.AppRunner, str]:
    """Serve in the running event loop; returns the runner (``await runner.cleanup()`` stops it) and the
    base URL ending in ``/v1``. Port 0 picks a free port.

    Handlers are cancelled when their client disconnects, as vLLM aborts such requests: a client that
    timed out on a ``slow`` fault frees the server at once. The large backlog keeps a burst of a thousand
    connections from overflowing the accept queue (which costs a one-second SYN retry).
    """
    runner = web.AppRunner(
        build_app(settings), access_log=None, handler_cancellation=True, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=4096).start()
    bound_port = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound_port}/v1"


def serve(
    settings: MockServerSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_ready: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready`` gets the base URL once the port is bound."""
    asyncio.run(_serve_until_signalled(settings, host, port, on_ready))


async def _serve_until_signalled(
    settings: MockServerSettings, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    runner, base_url = await start_mock_server(settings, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    on_ready(base_url)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
