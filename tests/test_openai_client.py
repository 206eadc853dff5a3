"""``OpenAICompatible`` over real HTTP against the mock server: replies, faults, retries, pools, scale."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from jsonschema import Draft202012Validator

from conftest import MockServerHandle, StartMockServer
from dialforge.actors.user_simulator import USER_TURN_FORMAT
from dialforge.llm import ModelError, ModelOutputError, ModelRequestRejected, ModelUnavailable
from dialforge.llm._transport import HttpTransport, RetryPolicy
from dialforge.llm.accounting import UsageLedger
from dialforge.llm.completion import RequestOptions
from dialforge.llm.endpoint_pool import EndpointPool
from dialforge.llm.openai_compatible import OpenAICompatible
from dialforge.llm.reply_limits import LONG_TEXT_CHARS
from dialforge.llm.role_models import RoleModels
from dialforge.llm.settings import ModelsConfig, ResolvedModelSettings
from dialforge.llm.structured import CUT_OFF, ECHO_CHARS
from dialforge.mock_server.faults import REPEATED_CHARS, REPEATED_SENTENCE
from dialforge.model import AssistantMessage, SystemMessage, ToolMessage, ToolSpec, UserMessage
from samples import USER_TURN

FAST_RETRIES = RetryPolicy(backoff_base_s=0.005, backoff_max_s=0.02)
ORDER_TOOLS = [
    ToolSpec(
        name="get_order",
        description="Look up one order by its id; returns the order with status and lines.",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "integer", "minimum": 1}, "include_lines": {"type": "boolean"}},
            "required": ["order_id"],
        },
    ),
    ToolSpec(
        name="cancel_order",
        description="Cancel an order that has not shipped; returns the updated order.",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "integer"}, "reason": {"type": "string", "enum": ["late", "other"]}},
            "required": ["order_id", "reason"],
        },
    ),
]
CONVERSATION = [
    SystemMessage(content="You are the support agent of a bookstore."),
    UserMessage(content="Where is order 1042?"),
]

MakeClient = Callable[..., OpenAICompatible]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Build clients on one transport with fast retries; closed after the test."""
    transport = HttpTransport(FAST_RETRIES, seed=0)

    def make(
        *base_urls: str, concurrency: int = 64, api_key: str | None = None, **settings: object
    ) -> OpenAICompatible:
        resolved = ResolvedModelSettings.model_validate(
            {"role": "agent", "model": "mock-model", "base_urls": base_urls, "max_retries": 3, **settings}
        )
        return OpenAICompatible(
            resolved, EndpointPool(base_urls, concurrency), transport, ledger=UsageLedger(), api_key=api_key
        )

    yield make
    await transport.close()


def counters(client: OpenAICompatible) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    stats = client.ledger.stats("agent", "mock-model")
    return dict(stats.retries), dict(stats.failures), dict(stats.output_problems)


async def test_plain_reply_is_returned_with_server_usage(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    completion = await client.complete(CONVERSATION)
    assert completion.content and completion.finish_reason == "stop" and completion.model == "mock-model"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    usage = client.ledger.stats("agent", "mock-model").usage
    assert (usage.calls, usage.prompt_tokens) == (1, completion.usage.prompt_tokens)


async def test_tool_call_arguments_satisfy_the_tool_schema(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    completion = await client.complete(CONVERSATION, RequestOptions(tools=ORDER_TOOLS, tool_choice="required", seed=3))
    assert completion.tool_calls and completion.finish_reason == "tool_calls"
    schemas = {tool.name: tool.parameters for tool in ORDER_TOOLS}
    for call in completion.tool_calls:
        Draft202012Validator(schemas[call.name]).validate(call.parsed_arguments())


async def test_named_tool_choice_reaches_the_server_as_a_function_object(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    completion = await make_client(mock_server.base_url).complete(
        CONVERSATION, RequestOptions(tools=ORDER_TOOLS, tool_choice="cancel_order")
    )
    assert [call.name for call in completion.tool_calls] == ["cancel_order"]


async def test_json_schema_reply_is_parsed_with_native_structured_output(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    completion = await make_client(mock_server.base_url).complete(
        CONVERSATION, RequestOptions(response_format=USER_TURN)
    )
    assert set(completion.parsed) == {"user_message", "is_task_complete"}
    assert (await mock_server.stats())["by_status"] == {"200": 1}


async def test_server_without_structured_output_gets_prompt_json_from_then_on(
    start_mock_server: StartMockServer, make_client: MakeClient
) -> None:
    server = await start_mock_server(reject_json_schema=True)
    client = make_client(server.base_url)
    for _ in range(3):
        completion = await client.complete(CONVERSATION, RequestOptions(response_format=USER_TURN))
        assert isinstance(completion.parsed["is_task_complete"], bool)
        assert "```json" in completion.content, "the value was extracted from a chatty, fenced reply"
    assert (await server.stats())["by_status"] == {"400": 1, "200": 3}
    retries, failures, _ = counters(client)
    assert retries == {"structured_output_unsupported": 1} and not failures, "sent again in the prompt's way"


async def test_native_mode_never_falls_back(start_mock_server: StartMockServer, make_client: MakeClient) -> None:
    server = await start_mock_server(reject_json_schema=True)
    client = make_client(server.base_url, structured_output="native")
    with pytest.raises(ModelRequestRejected, match="response_format"):
        await client.complete(CONVERSATION, RequestOptions(response_format=USER_TURN))


@pytest.mark.parametrize("mode", ["field", "think"])
async def test_reasoning_is_captured_apart_from_the_answer(
    start_mock_server: StartMockServer, make_client: MakeClient, mode: str
) -> None:
    server = await start_mock_server(reasoning=mode)
    completion = await make_client(server.base_url).complete(CONVERSATION)
    assert completion.reasoning
    assert completion.content and "<think>" not in completion.content and "</think>" not in completion.content


@pytest.mark.parametrize(
    ("fault", "retry_kind"),
    [
        ("rate_limit", "rate_limited"),
        ("server_error", "server_error"),
        ("unavailable", "server_error"),
        ("drop", "connection"),
        ("malformed_body", "malformed_body"),
    ],
)
async def test_transient_faults_are_retried_and_counted(
    mock_server: MockServerHandle, make_client: MakeClient, fault: str, retry_kind: str
) -> None:
    client = make_client(mock_server.base_url)
    await mock_server.queue_faults(fault)
    completion = await client.complete(CONVERSATION)
    assert completion.content
    retries, failures, _ = counters(client)
    assert (retries, failures) == ({retry_kind: 1}, {})
    assert (await mock_server.stats())["faults"] == {fault: 1}


async def test_reply_slower_than_the_timeout_is_abandoned_and_retried(
    start_mock_server: StartMockServer, make_client: MakeClient
) -> None:
    server = await start_mock_server(slow_seconds=5)
    client = make_client(server.base_url, timeout_s=0.3)
    await server.queue_faults("slow")
    completion = await client.complete(CONVERSATION)
    assert completion.content
    assert counters(client)[0] == {"timeout": 1}


async def test_retry_after_is_honoured(start_mock_server: StartMockServer, make_client: MakeClient) -> None:
    server = await start_mock_server(retry_after=0.4)
    client = make_client(server.base_url)
    await server.queue_faults("rate_limit")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.complete(CONVERSATION)
    assert loop.time() - started >= 0.38, "backoff alone (<= 0.02 s) cannot explain the wait"


@pytest.mark.parametrize(
    ("fault", "options", "problem"),
    [
        ("empty", {}, "empty"),
        ("length", {"response_format": USER_TURN}, "truncated"),
        ("length", {}, "truncated"),
        ("length", {"tools": ORDER_TOOLS, "tool_choice": "required"}, "truncated"),
        ("cut_fragment", {"response_format": USER_TURN}, "truncated"),
        ("unknown_tool", {"tools": ORDER_TOOLS, "tool_choice": "required"}, "unknown_tool"),
        ("bad_arguments", {"tools": ORDER_TOOLS, "tool_choice": "required"}, "bad_arguments"),
    ],
)
async def test_unusable_replies_are_repaired_once_and_counted(
    mock_server: MockServerHandle, make_client: MakeClient, fault: str, options: dict, problem: str
) -> None:
    client = make_client(mock_server.base_url)
    await mock_server.queue_faults(fault)
    completion = await client.complete(CONVERSATION, RequestOptions(**options))
    assert completion.content or completion.tool_calls
    assert counters(client)[2] == {problem: 1, "repaired": 1}
    assert completion.usage.calls == 2


async def test_text_cut_by_the_token_limit_twice_is_no_message(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    await mock_server.queue_faults("length", "length")
    with pytest.raises(ModelOutputError, match="cut off by the token limit") as raised:
        await client.complete(CONVERSATION)
    assert raised.value.kind == "truncated" and counters(client)[1] == {"truncated": 1}


async def test_a_structured_reply_cut_off_is_sent_back_as_too_long_not_as_a_schema_mismatch(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    await mock_server.queue_faults("cut_fragment")
    completion = await client.complete(CONVERSATION, RequestOptions(response_format=USER_TURN_FORMAT, max_tokens=300))
    assert completion.parsed["user_message"]
    assert counters(client)[2] == {"truncated": 1, "repaired": 1}
    first, repair = await mock_server.requests()
    assert CUT_OFF in repair["messages"][-1]["content"]
    assert repair["max_tokens"] == first["max_tokens"] == 300


async def test_an_over_long_field_is_sent_back_naming_the_field_and_its_limit(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    await mock_server.queue_faults("repetition")
    completion = await client.complete(CONVERSATION, RequestOptions(response_format=USER_TURN_FORMAT))
    assert len(completion.parsed["user_message"]) <= LONG_TEXT_CHARS
    assert counters(client)[2] == {"too_long": 1, "repaired": 1}
    _, repair = await mock_server.requests()
    *_, echo, instruction = repair["messages"]
    assert (
        f"at user_message: the text is {len(REPEATED_SENTENCE) * (REPEATED_CHARS // len(REPEATED_SENTENCE))}"
        in (instruction["content"])
    )
    assert f"more than the {LONG_TEXT_CHARS} allowed" in instruction["content"]
    assert len(echo["content"]) < ECHO_CHARS + 100, "the repetition is not sent back in full"


async def test_unusable_twice_raises_model_output_error(mock_server: MockServerHandle, make_client: MakeClient) -> None:
    client = make_client(mock_server.base_url)
    await mock_server.queue_faults("empty", "empty")
    with pytest.raises(ModelOutputError, match="unusable reply twice"):
        await client.complete(CONVERSATION)
    assert counters(client)[1] == {"empty": 1}


async def test_retries_are_bounded_and_the_error_names_endpoint_and_model(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    await mock_server.queue_faults(*["unavailable"] * 4)
    with pytest.raises(ModelUnavailable, match=r"'mock-model' at http://127\.0\.0\.1:\d+/v1 failed 4 attempts.*503"):
        await client.complete(CONVERSATION)
    assert (await mock_server.stats())["requests"] == 4
    retries, failures, _ = counters(client)
    assert (retries, failures) == ({"server_error": 3}, {"server_error": 1})


async def test_wrong_path_is_rejected_at_once_not_retried(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(f"{mock_server.url}/wrong/v1")
    with pytest.raises(
        ModelRequestRejected, match=r"endpoint http://\S+/wrong/v1 rejected model 'mock-model': HTTP 404"
    ):
        await client.complete(CONVERSATION)
    assert counters(client)[0] == {}


async def test_bad_api_key_is_rejected_at_once_with_the_server_message(
    start_mock_server: StartMockServer, make_client: MakeClient
) -> None:
    server = await start_mock_server(api_key="sk-right")
    with pytest.raises(ModelRequestRejected, match="HTTP 401: incorrect or missing API key"):
        await make_client(server.base_url, api_key="sk-wrong").complete(CONVERSATION)
    assert (await server.stats())["by_status"] == {"401": 1}
    assert (await make_client(server.base_url, api_key="sk-right").complete(CONVERSATION)).content


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_pool_spreads_load_and_rests_a_dead_replica(
    start_mock_server: StartMockServer, make_client: MakeClient
) -> None:
    first, second = await start_mock_server(latency_ms=20), await start_mock_server(latency_ms=20)
    dead = closed_port_url()
    client = make_client(first.base_url, second.base_url, dead, concurrency=8)
    results = await asyncio.gather(*(client.complete(CONVERSATION, RequestOptions(seed=i)) for i in range(60)))
    assert all(r.content for r in results)
    served = [(await s.stats())["requests"] for s in (first, second)]
    assert min(served) >= 20, f"load is spread over the live replicas: {served}"
    dead_endpoint = client.pool.endpoints[2]
    assert dead_endpoint.episodes >= 1 and dead_endpoint.cooldown_until > 0
    # One wave of in-flight requests (8) fails before the pool learns (5 in a row); then it rests.
    assert counters(client)[0].get("connection", 0) <= 8 + 3, "a dead replica is rested, not hammered"


async def test_a_thousand_concurrent_requests_complete(
    start_mock_server: StartMockServer, make_client: MakeClient
) -> None:
    server = await start_mock_server(latency_ms=200)
    client = make_client(server.base_url, concurrency=1000)
    results = await asyncio.gather(*(client.complete(CONVERSATION, RequestOptions(seed=i)) for i in range(1000)))
    assert len(results) == 1000 and all(r.content for r in results)
    stats = await server.stats()
    assert stats["by_status"] == {"200": 1000}
    assert stats["max_in_flight"] >= 500, "requests really were in flight together"


async def test_random_faults_never_crash_a_caller(start_mock_server: StartMockServer, make_client: MakeClient) -> None:
    kinds = ["rate_limit", "server_error", "unavailable", "drop", "malformed_body", "length", "empty",
             "unknown_tool", "bad_arguments"]  # fmt: skip
    server = await start_mock_server(fault_rate=0.3, faults=kinds, seed=11)
    client = make_client(server.base_url)
    outcomes = await asyncio.gather(
        *(client.complete(CONVERSATION, RequestOptions(tools=ORDER_TOOLS, seed=i)) for i in range(200)),
        return_exceptions=True,
    )
    unexpected = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, ModelError)]
    assert unexpected == []
    failed = sum(isinstance(o, ModelError) for o in outcomes)
    retries, failures, problems = counters(client)
    assert sum(failures.values()) == failed
    assert sum(retries.values()) > 0 and sum(problems.values()) > 0
    assert failed < 20


async def test_a_growing_conversation_is_sent_as_a_growing_prefix(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    conversation = list(CONVERSATION)
    for turn in range(4):
        reply = await client.complete(conversation, RequestOptions(tools=ORDER_TOOLS, seed=turn))
        conversation.append(reply.to_message())
        for call in reply.tool_calls:
            conversation.append(ToolMessage(tool_call_id=call.id, name=call.name, content='{"status": "shipped"}'))
        if not reply.tool_calls:
            conversation.append(UserMessage(content=f"Thanks. And question {turn}?"))
    reuse = (await mock_server.stats())["prefix_reuse"]
    assert reuse["requests_compared"] == reuse["append_only_requests"] == 3, "history is never rewritten"


async def test_roles_on_one_server_share_its_pool(mock_server: MockServerHandle) -> None:
    settings = ModelsConfig.model_validate(
        {
            "default": {"model": "mock-model", "base_urls": mock_server.base_url, "max_concurrency": 4},
            "judge": {"model": "judge-model", "temperature": 0},
        }
    )
    async with RoleModels.from_settings(settings, environ={}) as models:
        agent, user, judge = models["agent"], models["user"], models["judge"]
        assert isinstance(agent, OpenAICompatible) and isinstance(judge, OpenAICompatible)
        assert agent.pool is user.pool is judge.pool
        assert models.names()["judge"] == "judge-model"
        await asyncio.gather(agent.complete(CONVERSATION), judge.complete(CONVERSATION))
        rows = {row["role"]: row for row in models.ledger.snapshot()}
        assert rows["agent"]["model"] == "mock-model" and rows["judge"]["model"] == "judge-model"


async def test_assistant_history_with_tool_calls_is_accepted_by_the_server(
    mock_server: MockServerHandle, make_client: MakeClient
) -> None:
    client = make_client(mock_server.base_url)
    first = await client.complete(CONVERSATION, RequestOptions(tools=ORDER_TOOLS, tool_choice="get_order"))
    call = first.tool_calls[0]
    history = [
        *CONVERSATION,
        AssistantMessage(tool_calls=[call], reasoning="look it up"),
        ToolMessage(tool_call_id=call.id, name=call.name, content='{"status": "shipped"}'),
    ]
    assert (await client.complete(history, RequestOptions(tools=ORDER_TOOLS, tool_choice="none"))).content


async def test_a_peer_that_does_not_speak_http_is_retried_then_reported(make_client: MakeClient) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = make_client(f"http://127.0.0.1:{port}/v1")
        with pytest.raises(ModelUnavailable, match="did not speak HTTP") as error:
            await client.complete(CONVERSATION)
        assert error.value.kind == "protocol"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("message", "about_format"),
    [
        ("HTTP 400: response_format of type json_schema is not supported", True),
        ("HTTP 400: guided decoding backend xgrammar failed", True),
        ("HTTP 400: This model's maximum context length is 8192 tokens", False),
    ],
)
def test_only_errors_about_the_response_format_switch_to_prompt_json(message: str, about_format: bool) -> None:
    from dialforge.llm.openai_compatible import _refuses_structured_output

    assert _refuses_structured_output(ModelRequestRejected(message, status=400)) is about_format


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_token_budget_reaches_the_server_under_either_field_name(
    mock_server: MockServerHandle, make_client: MakeClient, field: str
) -> None:
    client = make_client(mock_server.base_url, max_tokens_field=field)
    await client.complete(CONVERSATION, RequestOptions(max_tokens=50))
    (body,) = await mock_server.requests()
    (other,) = {"max_tokens", "max_completion_tokens"} - {field}
    assert body[field] == 50 and other not in body


async def test_sampling_options_reach_the_request_body_only_when_set(mock_server: MockServerHandle) -> None:
    settings = ModelsConfig.model_validate(
        {
            "default": {"model": "mock-model", "base_urls": mock_server.base_url},
            "agent": {"top_p": 0.9, "temperature": 0.3},
        }
    )
    async with RoleModels.from_settings(settings, environ={}) as models:
        await models["agent"].complete(CONVERSATION)
        await models["agent"].complete(CONVERSATION, RequestOptions(top_p=0.5, seed=7))
        await models["user"].complete(CONVERSATION)
    configured, overridden, plain = await mock_server.requests()
    assert (configured["top_p"], configured["temperature"]) == (0.9, 0.3)
    assert (overridden["top_p"], overridden["temperature"], overridden["seed"]) == (0.5, 0.3, 7)
    assert not {"top_p", "temperature", "max_tokens", "seed"} & plain.keys()
