"""The mock server speaks the OpenAI chat-completions protocol and fails on demand, exactly as asked.

These tests use raw aiohttp requests: they pin the wire format the dialforge client is tested against.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest

from conftest import MockServerHandle, StartMockServer
from dialforge.llm.reasoning import split_reasoning
from dialforge.llm.structured import extract_json
from dialforge.mock_server.faults import REPEATED_CHARS, REPEATED_SENTENCE, Fault, FaultPlan
from dialforge.mock_server.prefix_stats import PrefixReuse, common_prefix_length

HELLO = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True}}


@dataclass
class Reply:
    status: int
    headers: Any
    raw: bytes

    def json(self) -> Any:
        return orjson.loads(self.raw)

    @property
    def message(self) -> dict[str, Any]:
        return self.json()["choices"][0]["message"]

    @property
    def finish_reason(self) -> str:
        return self.json()["choices"][0]["finish_reason"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def chat(
    http: aiohttp.ClientSession,
    server: MockServerHandle,
    *,
    conversation: str | None = None,
    timeout: float = 10,
    **body: Any,
) -> Reply:
    body = {"model": "mock-model", "messages": HELLO, **body}
    headers = {"X-Dialforge-Conversation": conversation} if conversation else None
    async with http.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        return Reply(response.status, response.headers, await response.read())


def assert_openai_error(reply: Reply, status: int) -> dict[str, Any]:
    assert reply.status == status
    error = reply.json()["error"]
    assert {"message", "type", "code"} <= error.keys()
    return error


# --- normal replies ---------------------------------------------------------------------------


async def test_plain_reply_is_a_chat_completion(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    reply = await chat(http, mock_server)

    assert reply.status == 200
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "mock-model"
    assert body["id"] and isinstance(body["created"], int)
    assert reply.message["role"] == "assistant"
    assert isinstance(reply.message["content"], str) and reply.message["content"]
    assert "tool_calls" not in reply.message
    assert reply.finish_reason == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


async def test_json_schema_reply_satisfies_the_schema(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    reply = await chat(http, mock_server, response_format=PERSON_FORMAT)

    assert reply.status == 200
    jsonschema.validate(orjson.loads(reply.message["content"]), PERSON_SCHEMA)


async def test_tool_call_reply_has_arguments_valid_for_the_tool(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    reply = await chat(http, mock_server, tools=[WEATHER], tool_choice="required")

    assert reply.status == 200
    assert reply.finish_reason == "tool_calls"
    [call] = reply.message["tool_calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather"
    jsonschema.validate(orjson.loads(call["function"]["arguments"]), WEATHER["function"]["parameters"])


async def test_requests_are_read_leniently(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    """Real clients send extra fields, developer messages, content parts and nameless tool messages."""
    messages = [
        {"role": "developer", "content": "Be brief.", "name": "ops"},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "look it up",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 3}'},
    ]
    reply = await chat(
        http,
        mock_server,
        messages=messages,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0.2,
        logprobs=False,
    )

    assert reply.status == 200
    assert reply.message["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0]"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0]"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
    ],
)
async def test_invalid_requests_get_a_400_naming_the_field(
    mock_server: MockServerHandle, http: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    error = assert_openai_error(await chat(http, mock_server, **body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_streaming_is_refused_with_a_clear_error(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    error = assert_openai_error(await chat(http, mock_server, stream=True), 400)
    assert "streaming is not supported" in error["message"]
    assert error["param"] == "stream"


async def test_models_and_health(start_mock_server: StartMockServer, http: aiohttp.ClientSession) -> None:
    server = await start_mock_server(model_name="qwen-mock")
    async with http.get(f"{server.base_url}/models") as response:
        assert [m["id"] for m in (await response.json())["data"]] == ["qwen-mock"]
    async with http.get(f"{server.url}/health") as response:
        assert response.status == 200
    reply = await chat(http, server, model="anything")
    assert reply.json()["model"] == "qwen-mock"


# --- faults -----------------------------------------------------------------------------------


async def test_rate_limit_advertises_retry_after(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    await mock_server.queue_faults("rate_limit")

    reply = await chat(http, mock_server)

    assert_openai_error(reply, 429)
    assert reply.headers["Retry-After"] == "0.05"
    assert reply.headers["retry-after-ms"] == "50"
    assert (await chat(http, mock_server)).status == 200


async def test_whole_second_retry_after_is_an_integer_header(
    start_mock_server: StartMockServer, http: aiohttp.ClientSession
) -> None:
    server = await start_mock_server(retry_after=2)
    await server.queue_faults("rate_limit")

    reply = await chat(http, server)

    assert (reply.headers["Retry-After"], reply.headers["retry-after-ms"]) == ("2", "2000")


@pytest.mark.parametrize(("kind", "status"), [("server_error", 500), ("unavailable", 503)])
async def test_server_faults_are_openai_errors(
    mock_server: MockServerHandle, http: aiohttp.ClientSession, kind: str, status: int
) -> None:
    await mock_server.queue_faults(kind)
    error = assert_openai_error(await chat(http, mock_server), status)
    assert error["type"] == "server_error"


async def test_drop_closes_the_connection_without_a_response(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    await mock_server.queue_faults("drop")

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await chat(http, mock_server)
    assert (await chat(http, mock_server)).status == 200


async def test_slow_outlasts_the_client_timeout(
    start_mock_server: StartMockServer, http: aiohttp.ClientSession
) -> None:
    server = await start_mock_server(slow_seconds=5)
    await server.queue_faults("slow")

    with pytest.raises(asyncio.TimeoutError):
        await chat(http, server, timeout=0.2)
    assert (await chat(http, server, timeout=2)).status == 200
    assert (await server.stats())["in_flight"] == 0  # the abandoned request was cancelled, not left sleeping


async def test_malformed_body_is_truncated_json(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    await mock_server.queue_faults("malformed_body")

    reply = await chat(http, mock_server)

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    with pytest.raises(orjson.JSONDecodeError):
        reply.json()


async def test_length_cuts_the_text(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    full = await chat(http, mock_server)
    await mock_server.queue_faults("length")

    cut = await chat(http, mock_server)

    assert cut.finish_reason == "length"
    assert len(cut.message["content"]) < len(full.message["content"].strip())


async def test_length_leaves_requested_json_invalid(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    await mock_server.queue_faults("length")

    reply = await chat(http, mock_server, response_format=PERSON_FORMAT)

    assert reply.finish_reason == "length"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(reply.message["content"])


async def test_cut_fragment_ends_by_the_token_limit_with_complete_json_inside_the_cut_text(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    await mock_server.queue_faults("cut_fragment")

    reply = await chat(http, mock_server, response_format=PERSON_FORMAT)

    assert reply.finish_reason == "length"
    assert extract_json(reply.message["content"]) == [4]  # what a search for embedded JSON finds in it


async def test_repetition_fills_the_first_text_field_with_one_sentence(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    await mock_server.queue_faults("repetition")

    reply = await chat(http, mock_server, response_format=PERSON_FORMAT)

    assert reply.finish_reason == "stop"
    person = orjson.loads(reply.message["content"])
    (text,) = [value for value in person.values() if isinstance(value, str)]
    assert len(text) >= REPEATED_CHARS - len(REPEATED_SENTENCE) and set(text.split(". ")) <= {"I'll be right back", ""}


async def test_empty_has_no_content_and_no_calls(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    await mock_server.queue_faults("empty")

    reply = await chat(http, mock_server, tools=[WEATHER], tool_choice="required")

    assert reply.message["content"] == ""
    assert "tool_calls" not in reply.message
    assert reply.finish_reason == "stop"


async def test_unknown_tool_calls_a_tool_that_was_not_offered(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    await mock_server.queue_faults("unknown_tool")

    reply = await chat(http, mock_server, tools=[WEATHER])

    [call] = reply.message["tool_calls"]
    assert call["function"]["name"] != "get_weather"
    assert reply.finish_reason == "tool_calls"


async def test_bad_arguments_are_not_json(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    await mock_server.queue_faults("bad_arguments")

    reply = await chat(http, mock_server, tools=[WEATHER], tool_choice="required")

    [call] = reply.message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(call["function"]["arguments"])


async def test_queued_faults_apply_in_order_and_are_counted(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    await mock_server.queue_faults("unavailable", "server_error", "empty")

    statuses = [(await chat(http, mock_server)).status for _ in range(4)]

    assert statuses == [503, 500, 200, 200]
    stats = await mock_server.stats()
    assert stats["faults"] == {"empty": 1, "server_error": 1, "unavailable": 1}
    assert stats["faults_queued"] == 0


async def test_unknown_fault_kinds_are_refused(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{mock_server.url}/control/faults", json={"faults": ["meteor"]}) as response:
        assert response.status == 400
        assert "rate_limit" in (await response.json())["error"]["message"]


async def test_fault_rate_one_draws_only_the_listed_kinds(
    start_mock_server: StartMockServer, http: aiohttp.ClientSession
) -> None:
    server = await start_mock_server(fault_rate=1.0, faults=["server_error", "unavailable"])

    statuses = {(await chat(http, server)).status for _ in range(20)}

    assert statuses == {500, 503}
    assert sum((await server.stats())["faults"].values()) == 20


def test_fault_plan_is_seeded_and_serves_the_queue_first() -> None:
    def draws(plan: FaultPlan) -> list[Fault | None]:
        return [plan.next() for _ in range(30)]

    assert draws(FaultPlan(0.5, list(Fault), seed=3)) == draws(FaultPlan(0.5, list(Fault), seed=3))
    plan = FaultPlan(0.0, list(Fault), seed=0)
    plan.queue([Fault.DROP, Fault.SLOW])
    assert draws(plan)[:3] == [Fault.DROP, Fault.SLOW, None]


# --- server modes -----------------------------------------------------------------------------


async def test_reject_json_schema_emulates_a_server_without_structured_output(
    start_mock_server: StartMockServer, http: aiohttp.ClientSession
) -> None:
    server = await start_mock_server(reject_json_schema=True)

    error = assert_openai_error(await chat(http, server, response_format=PERSON_FORMAT), 400)

    assert "response_format" in error["message"]
    assert (await chat(http, server, response_format={"type": "json_object"})).status == 200
    assert (await chat(http, server)).status == 200


async def test_reasoning_as_a_field(start_mock_server: StartMockServer, http: aiohttp.ClientSession) -> None:
    server = await start_mock_server(reasoning="field")

    reply = await chat(http, server)

    assert reply.message["reasoning_content"]
    assert "<think>" not in reply.message["content"]
    assert reply.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


async def test_reasoning_inline_as_think_block(start_mock_server: StartMockServer, http: aiohttp.ClientSession) -> None:
    server = await start_mock_server(reasoning="think")

    reply = await chat(http, server, response_format=PERSON_FORMAT)

    assert "reasoning_content" not in reply.message
    answer, reasoning = split_reasoning(reply.message["content"])
    assert reasoning
    jsonschema.validate(orjson.loads(answer), PERSON_SCHEMA)


async def test_no_reasoning_by_default(mock_server: MockServerHandle, http: aiohttp.ClientSession) -> None:
    reply = await chat(http, mock_server)
    assert "reasoning_content" not in reply.message
    assert "<think>" not in reply.message["content"]


async def test_scripted_replies_are_served_in_order(
    start_mock_server: StartMockServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    script = tmp_path / "replies.jsonl"
    lines = [
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_a"}]},
        {"content": "It is 3 degrees in Oslo.", "reasoning": "The tool said 3."},
    ]
    script.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    server = await start_mock_server(script=script, reasoning="field")

    first, second, third = [await chat(http, server, tools=[WEATHER]) for _ in range(3)]

    assert first.message["tool_calls"][0]["id"] == "call_a"
    assert orjson.loads(first.message["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert first.finish_reason == "tool_calls"
    assert (second.message["content"], second.message["reasoning_content"]) == (
        "It is 3 degrees in Oslo.",
        "The tool said 3.",
    )
    error = assert_openai_error(third, 500)
    assert error["code"] == "script_exhausted"
    assert (await server.stats())["backend"] == "scripted"


async def test_latency_delays_replies_but_not_error_faults(
    start_mock_server: StartMockServer, http: aiohttp.ClientSession
) -> None:
    server = await start_mock_server(latency_ms=300)
    await server.queue_faults("rate_limit")
    loop = asyncio.get_running_loop()

    started = loop.time()
    assert (await chat(http, server)).status == 429
    rejected = loop.time()
    assert (await chat(http, server)).status == 200
    replied = loop.time()

    assert rejected - started < 0.25
    assert replied - rejected >= 0.3


# --- statistics -------------------------------------------------------------------------------


async def test_stats_count_requests_by_status_and_reset_clears_them(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    await chat(http, mock_server)
    await chat(http, mock_server, stream=True)
    await mock_server.queue_faults("rate_limit", "drop")
    await chat(http, mock_server)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await chat(http, mock_server)

    stats = await mock_server.stats()
    assert stats["requests"] == 4
    assert stats["by_status"] == {"200": 1, "400": 1, "429": 1}
    assert stats["faults"] == {"drop": 1, "rate_limit": 1}

    await mock_server.queue_faults("server_error")
    await mock_server.reset()
    stats = await mock_server.stats()
    assert (stats["requests"], stats["by_status"], stats["faults_queued"]) == (0, {}, 0)
    assert stats["prefix_reuse"]["requests_compared"] == 0
    assert (await chat(http, mock_server)).status == 200


async def test_a_growing_conversation_reuses_its_prefix(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    messages = [{"role": "system", "content": "You help with weather." * 20}, {"role": "user", "content": "Oslo?"}]
    for turn in range(4):
        await chat(http, mock_server, messages=messages, tools=[WEATHER])
        messages = [
            *messages,
            {"role": "assistant", "content": f"It is {turn} degrees."},
            {"role": "user", "content": "And tomorrow?"},
        ]
    await chat(http, mock_server, messages=[{"role": "user", "content": "Something unrelated."}])

    reuse = (await mock_server.stats())["prefix_reuse"]
    assert reuse["conversations"] == 2
    assert reuse["requests_compared"] == 3
    assert reuse["mean_ratio"] > 0.9
    assert reuse["chars_weighted_ratio"] > 0.9
    assert reuse["append_only_requests"] == 3
    growing = next(row for row in reuse["rows"] if row["requests"] == 4)
    assert growing["last_ratio"] > 0.9


async def test_a_rewritten_history_shows_as_low_reuse(
    mock_server: MockServerHandle, http: aiohttp.ClientSession
) -> None:
    """The conversation header groups requests even when the first messages change."""
    first = [{"role": "system", "content": "Rules v1. " * 50}, {"role": "user", "content": "Hi"}]
    edited = [{"role": "system", "content": "Rules v2. " * 50}, {"role": "user", "content": "Hi"}]
    await chat(http, mock_server, messages=first, conversation="dialogue-7")
    await chat(http, mock_server, messages=edited, conversation="dialogue-7")

    reuse = (await mock_server.stats())["prefix_reuse"]
    assert reuse["conversations"] == 1
    assert reuse["rows"][0]["conversation"] == "dialogue-7"
    assert reuse["mean_ratio"] < 0.1
    assert reuse["append_only_requests"] == 0


def test_common_prefix_length_spans_pieces() -> None:
    assert common_prefix_length([b"abc", b"def"], [b"abc", b"def", b"ghi"]) == 6
    assert common_prefix_length([b"abc", b"dXf"], [b"abc", b"def"]) == 4
    assert common_prefix_length([b"xyz"], [b"abc"]) == 0
    assert common_prefix_length([], [b"abc"]) == 0


def test_prefix_reuse_forgets_the_least_recent_conversations_but_keeps_totals() -> None:
    reuse = PrefixReuse(max_conversations=2, max_rows=1)
    for conversation in ("a", "b", "a", "c"):
        reuse.record(conversation, (b"prompt",), 6)

    snapshot = reuse.snapshot()
    assert (snapshot["conversations"], snapshot["conversations_tracked"]) == (3, 2)
    assert (snapshot["requests_compared"], snapshot["mean_ratio"]) == (1, 1.0)
    assert [row["conversation"] for row in snapshot["rows"]] == ["c"]
    assert snapshot["rows_omitted"] == 1
