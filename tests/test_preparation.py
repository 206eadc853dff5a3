"""Preparing domains: every stage runs or is skipped for a supplied file, writes artifacts, and resumes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from dialforge.config import DialforgeConfig
from dialforge.llm import Completion, DryRunModel
from dialforge.model import Message, Task, ToolSpec
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.preparation import Preparation

SMALL = {
    "questions_per_domain": 4,
    "expansion_tools": 2,
    "sql_tools_per_domain": 3,
    "tasks_per_domain": 3,
    "followups_per_domain": 2,
}


class CountingModel(DryRunModel):
    """The dry-run model, counting the requests it is sent."""

    def __init__(self) -> None:
        super().__init__(seed=1, role="generator")
        self.sent = 0

    async def _send(self, messages: Sequence[Message], options: Any) -> Completion:
        self.sent += 1
        return await super()._send(messages, options)


def config(**overrides: Any) -> DialforgeConfig:
    return DialforgeConfig.model_validate({"generation": SMALL, **overrides})


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_a_dry_run_over_two_domains_writes_every_artifact(tmp_path: Path, chinook_path: Path) -> None:
    settings = config(
        domains=[
            {"name": "bookstore", "description": "An online bookstore: orders, books, customers."},
            {"name": "music store", "database": str(chinook_path)},
        ]
    )
    store = ArtifactStore(tmp_path)
    plans = await Preparation(settings, CountingModel(), store).run()

    assert [plan.domain.name for plan in plans] == ["bookstore", "music store"]
    for name in ("questions", "tools", "policies", "tasks", "stage_reports"):
        assert (tmp_path / "artifacts" / f"{name}.jsonl").exists(), name
    assert "Invoice" in (tmp_path / "artifacts" / "schemas" / "music-store.txt").read_text()
    music = plans[1]
    assert music.database is not None and music.sql_tools, "SQL domains always end up with executable tools"
    reports = read_jsonl(tmp_path / "artifacts" / "stage_reports.jsonl")
    stages = {(r["domain"], r["stage"]) for r in reports}
    assert {("bookstore", "questions"), ("bookstore", "tool_specs"), ("bookstore", "policy")} <= stages
    assert ("music store", "sql_tools") in stages
    for report in reports:
        assert all(rejection["reasons"] for rejection in report["rejected"]), report["stage"]
    tools = read_jsonl(tmp_path / "artifacts" / "tools.jsonl")
    assert {row["domain"] for row in tools} >= {"music store"}
    store.close()


async def test_a_resumed_run_asks_the_model_nothing_it_already_answered(tmp_path: Path) -> None:
    settings = config(domains=[{"name": "bookstore"}])
    first = CountingModel()
    store = ArtifactStore(tmp_path)
    before = await Preparation(settings, first, store).run()
    store.close()
    assert first.sent > 0

    again = CountingModel()
    store = ArtifactStore(tmp_path)
    after = await Preparation(settings, again, store).run()
    store.close()
    assert again.sent == 0
    assert after[0].tools == before[0].tools and after[0].tasks == before[0].tasks


async def test_supplied_files_replace_their_stages(tmp_path: Path) -> None:
    tool = ToolSpec(
        name="get_order",
        description="Look up one order by id; returns the order.",
        parameters={"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]},
        returns={"type": "object", "properties": {"order_id": {"type": "integer"}}},
    )
    tools_file = tmp_path / "tools.jsonl"
    tools_file.write_bytes(orjson.dumps({**tool.to_openai(), "returns": tool.returns}) + b"\n")
    task = Task(id="t1", description="Find out where order 12 is and whether it ships this week.", tools=["get_order"])
    independent = Task(id="t2", description="Ask how long shipping takes.", tools=["get_order"], asked_by=["t1"])
    tasks_file = tmp_path / "tasks.jsonl"
    tasks_file.write_text(task.model_dump_json() + "\n" + independent.model_dump_json() + "\n")
    settings = config(
        domains=[
            {"name": "shop", "tools": str(tools_file), "tasks": str(tasks_file), "policy": "Confirm before changes."}
        ]
    )
    model = CountingModel()
    store = ArtifactStore(tmp_path / "run")
    (plan,) = await Preparation(settings, model, store).run()
    assert model.sent == 0
    assert (plan.tools, plan.tasks, plan.policy) == ([tool], [task], "Confirm before changes.")
    assert plan.followups == [independent], "a goal that names who asks it comes after their goal, never first"


def test_a_broken_supplied_file_names_the_file_and_line(tmp_path: Path) -> None:
    from dialforge.pipeline.supplied import load_tasks

    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"id": "t1", "description": "ok"}\n{"id": "t2"}\n')
    with pytest.raises(ValueError, match=r"tasks.jsonl, line 2: not a valid task: description: Field required"):
        load_tasks(bad)


async def test_a_changed_config_is_not_answered_from_stale_items(tmp_path: Path) -> None:
    first = CountingModel()
    store = ArtifactStore(tmp_path)
    await Preparation(config(domains=[{"name": "bookstore"}]), first, store).run()
    more = config(domains=[{"name": "bookstore"}], generation={**SMALL, "questions_per_domain": 6})
    again = CountingModel()
    await Preparation(more, again, store).run()
    store.close()
    assert again.sent > 0, "six questions were asked for, not the four of the first run"


async def test_a_replaced_tools_file_replaces_the_tools(tmp_path: Path) -> None:
    def tools_file(name: str) -> Path:
        spec = ToolSpec(name=name, description="Look up one record by id; returns it.", returns={"type": "object"})
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(orjson.dumps({**spec.to_openai(), "returns": spec.returns}) + b"\n")
        return path

    store = ArtifactStore(tmp_path / "run")
    for name in ("get_order", "get_book"):
        settings = config(domains=[{"name": "shop", "tools": str(tools_file(name)), "policy": "Be kind."}])
        (plan,) = await Preparation(settings, CountingModel(), store).run()
        assert [tool.name for tool in plan.tools] == [name]
    store.close()


async def test_a_runs_own_artifacts_can_be_supplied_back(tmp_path: Path) -> None:
    from dialforge.pipeline.supplied import load_tasks, load_tool_specs

    tool = ToolSpec(name="get_order", description="Look up one order by id; returns the order.")
    task = Task(id="shop-1", description="Find out where order 12 is and whether it ships this week.")
    rows = [
        {"domain": "shop", **tool.model_dump(mode="json", exclude_none=True)},
        {"domain": "other", **tool.model_copy(update={"name": "get_book"}).model_dump(mode="json", exclude_none=True)},
    ]
    (tmp_path / "tools.jsonl").write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    (tmp_path / "tasks.jsonl").write_bytes(
        orjson.dumps({"domain": "shop", "role": "primary", **task.model_dump(mode="json")}) + b"\n"
    )
    assert [t.name for t in load_tool_specs(tmp_path / "tools.jsonl", "shop")] == ["get_order"]
    assert load_tasks(tmp_path / "tasks.jsonl", "shop") == [task]
