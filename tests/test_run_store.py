"""The checkpoint store reads the dialogues in flight back as they were, validating each tool set once."""

from __future__ import annotations

from pathlib import Path

import pytest

import dialforge.model.tools as tool_specs
from dialforge.environments.sql.environment import SQLDatabase
from dialforge.environments.sql.scaffold import scaffold_tools
from dialforge.model.dialogue import DialogueState
from dialforge.model.messages import AssistantMessage, FunctionCall, ToolCall, ToolMessage, UserMessage
from dialforge.model.tools import ToolSpec
from dialforge.runner.store import RunStore


def in_flight(index: int, domain: str, tools: list[ToolSpec]) -> DialogueState:
    """A dialogue a few steps in: the user asked, the agent called a tool, the result came back."""
    call = ToolCall(id=f"call-{index}", function=FunctionCall(name=tools[0].name, arguments='{"AlbumId": 1}'))
    return DialogueState(
        id=f"{domain}-{index}",
        mode="user+exec",
        domain=domain,
        tools=tools,
        messages=[
            UserMessage(content=f"Which album has the id {index}?"),
            AssistantMessage(tool_calls=[call]),
            ToolMessage(tool_call_id=call.id, name=call.name, content='{"rows": [{"Title": "For Those About"}]}'),
        ],
        next_actor="agent",
        seed=index,
        env={"pages": index},
    )


def test_states_in_flight_come_back_equal_with_each_tool_set_validated_once(
    tmp_path: Path, chinook_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = [tool.to_spec() for tool in scaffold_tools(SQLDatabase.open(chinook_path).schema)]
    toolsets = {"albums": specs[:12], "people": specs[12:]}
    saved = [in_flight(index, domain, tools) for domain, tools in toolsets.items() for index in range(20)]
    store = RunStore(tmp_path / "run")
    for state in saved:
        store.save(state)
    store.close()
    checks: list[str] = []
    check = tool_specs.json_schema_problem

    def counted(schema: object, what: str) -> str | None:
        checks.append(what)
        return check(schema, what)  # type: ignore[arg-type]

    monkeypatch.setattr(tool_specs, "json_schema_problem", counted)

    resumed = RunStore(tmp_path / "run")
    states = resumed.unfinished_states()

    assert states == {state.id: state for state in saved}
    schemas = sum(1 + (tool.returns is not None) for tools in toolsets.values() for tool in tools)
    assert len(checks) == schemas, "each tool set's schemas are checked once, not once per dialogue"
    for domain in toolsets:
        shared = {id(state.tools) for state in states.values() if state.domain == domain}
        assert len(shared) == 1, "the states of a tool set share one list"
    step = states["albums-3"].model_copy(update={"messages": [*states["albums-3"].messages, UserMessage(content="ok")]})
    resumed.save(step)
    resumed.close()
    assert RunStore(tmp_path / "run").unfinished_states()["albums-3"] == step
