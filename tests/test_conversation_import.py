"""Existing conversations can be read (OpenAI or ShareGPT) and given a goal that continues them."""

from __future__ import annotations

from pathlib import Path

import orjson

from dialforge.actors.generators.tasks import generate_continuation
from dialforge.llm import ScriptedModel
from dialforge.model import AssistantMessage, Domain, ToolMessage, ToolSpec, UserMessage
from dialforge.pipeline.conversations import load_conversations
from prompt_checks import assert_in_order, filled_in

ORDER_TOOL = ToolSpec(
    name="get_order",
    description="Look up one order by id; returns the order with status and lines.",
    parameters={"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]},
)


def test_openai_and_sharegpt_records_become_the_same_messages(tmp_path: Path) -> None:
    openai = {
        "messages": [
            {"role": "user", "content": "Where is order 7?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": 7}'}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "name": "get_order", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "It has shipped."},
        ],
        "tools": [ORDER_TOOL.to_openai()],
    }  # fmt: skip
    sharegpt = {
        "conversations": [
            {"from": "human", "value": "Where is order 7?"},
            {"from": "function_call", "value": '{"name": "get_order", "arguments": {"order_id": 7}}'},
            {"from": "observation", "value": '{"status": "shipped"}'},
            {"from": "gpt", "value": "It has shipped."},
        ],
        "tools": orjson.dumps([ORDER_TOOL.to_openai()]).decode(),
    }
    path = tmp_path / "chats.jsonl"
    path.write_bytes(orjson.dumps(openai) + b"\n" + orjson.dumps(sharegpt) + b"\n")
    first, second = load_conversations(path).conversations
    assert (
        [m.role for m in first.messages]
        == [m.role for m in second.messages]
        == ["user", "assistant", "tool", "assistant"]
    )
    assert first.tools == second.tools == [ORDER_TOOL]
    call = second.messages[1]
    assert isinstance(call, AssistantMessage) and call.tool_calls[0].parsed_arguments() == {"order_id": 7}
    answer = second.messages[2]
    assert isinstance(answer, ToolMessage) and answer.tool_call_id == call.tool_calls[0].id


def test_a_bad_line_is_reported_with_its_file_and_line_and_the_others_are_read(tmp_path: Path) -> None:
    path = tmp_path / "chats.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "hi"}]}\n{"conversations": [{"from": "robot", "value": "x"}]}\n'
    )
    loaded = load_conversations(path)
    assert [conversation.where for conversation in loaded.conversations] == [f"{path}, line 1"]
    [unusable] = loaded.unusable
    assert unusable.where == f"{path}, line 2" and "robot" in unusable.reason


async def test_a_chat_without_tools_gets_a_goal_that_needs_them() -> None:
    goal = {
        "tasks": [
            {
                "description": "You are Ana and you ordered a blender last week, order 7. You want to know whether it "
                "has shipped and when it will arrive. You are done once you know both.",
                "difficulty": "easy",
                "subtasks": ["Ask whether order 7 has shipped", "Ask when it will arrive"],
                "success_criteria": ["The user is told whether order 7 has shipped and when it will arrive"],
                "tools": ["get_order"],
                "asks_to_see": ["status", "estimated_arrival"],
                "continuation": {"how": "continues", "why": "She just bought the blender and will want it."},
            }
        ]
    }
    model = ScriptedModel([orjson.dumps(goal).decode()])
    chat = [
        UserMessage(content="I just bought a blender, I'm so excited!"),
        AssistantMessage(content="Congratulations!"),
    ]
    batch = await generate_continuation(model, Domain(name="shop"), [ORDER_TOOL], chat)
    assert [task.id.rsplit("-", 1)[0] for task in batch.items] == ["shop-continuation"]
    assert batch.items[0].continuation is not None and batch.items[0].continuation.how == "continues"
    conversation = filled_in(model.requests[0].messages[0].content, "tasks_continuation")["conversation"]
    assert_in_order(conversation, "I just bought a blender, I'm so excited!", "Congratulations!")


async def test_a_continuation_may_be_a_goal_the_policy_refuses_when_there_is_a_policy() -> None:
    refused = {
        "tasks": [
            {
                "description": "You are Ana and you want the home address of the customer who ordered the last "
                "blender, to thank them in person. You are done once you know whether you can have it.",
                "difficulty": "easy",
                "subtasks": ["Ask for the address of the last customer who bought a blender"],
                "success_criteria": ["The user is told that other customers' details cannot be shared, and why"],
                "tools": ["get_order"],
                "asks_to_see": ["status"],
                "continuation": {"how": "continues", "why": "She asked who else bought one."},
                "kind": "forbidden",
            }
        ]
    }
    chat = [UserMessage(content="Who else bought that blender? I'd love to meet them.")]
    with_policy = ScriptedModel([orjson.dumps(refused).decode()])
    batch = await generate_continuation(
        with_policy, Domain(name="shop"), [ORDER_TOOL], chat, policy="- Never share another customer's details."
    )
    assert [task.kind for task in batch.items] == ["forbidden"]

    without = ScriptedModel([orjson.dumps({"tasks": []}).decode()])
    await generate_continuation(without, Domain(name="shop"), [ORDER_TOOL], chat)
    schema = without.requests[0].options.response_format
    assert schema is not None and "kind" not in schema.json_schema["properties"]["tasks"]["items"]["properties"]
