"""A domain of Python tools from the config (the library example): its references and their errors, a whole
run offline, and a dialogue interrupted mid-way that resumes by running its calls again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from dialforge.actors.judge import rubric_items
from dialforge.cli.main import app
from dialforge.config import ConfigError, DialogueConfig, load_config
from dialforge.llm.completion import Completion, RequestOptions
from dialforge.llm.scripted import ScriptedModel
from dialforge.model.dialogue import DialogueState
from dialforge.model.messages import Message, UserMessage
from dialforge.pipeline.artifacts import ArtifactStore
from dialforge.pipeline.engine import DialogueEngine, DomainSetup
from dialforge.pipeline.preparation import Preparation, python_environments
from dialforge.pipeline.supplied import load_tasks
from prompt_checks import filled_in
from samples import verdict

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "library"
CONFIG = EXAMPLE / "library.yaml"
runner = CliRunner()


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (run_dir / "dialogues.jsonl").read_bytes().splitlines()]


def variant(tmp_path: Path, **python: Any) -> Path:
    """The example's config with its python: entry changed, written next to a copy of its files."""
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    for name in ("library.py", "library_checks.py", "library_state.json", "library_policy.md", "library_tasks.jsonl"):
        (tmp_path / name).write_bytes((EXAMPLE / name).read_bytes())
    data["domains"][0]["python"].update(python)
    path = tmp_path / "library.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_example_domain_gives_its_functions_as_tools_over_its_state() -> None:
    domain = load_config(CONFIG).domains[0]
    environments = python_environments(domain)
    names = [tool.name for tool in environments.tools()]
    assert names == [
        "find_members", "get_member", "search_books", "borrow_book", "renew_loan", "return_book", "place_hold",
        "cancel_hold", "pay_balance",
    ]  # fmt: skip
    assert all(tool.returns for tool in environments.tools()), "type hints give every return schema"
    assert "library" not in str([tool.parameters for tool in environments.tools()]), "the state stays hidden"


async def test_every_example_check_is_false_on_the_initial_records_unless_it_asserts_no_change() -> None:
    domain = load_config(CONFIG).domains[0]
    assert domain.tasks is not None
    tasks = load_tasks(domain.tasks)
    verification = python_environments(domain).new(seed=0, clock="").verify([c for t in tasks for c in t.checks])
    unchanged = {check.source for task in tasks if task.checks_unchanged for check in task.checks}
    for outcome in verification.checks:
        assert outcome.passed == (outcome.source in unchanged), outcome
    assert verification.diff.empty


@pytest.mark.parametrize(
    ("python", "message"),
    [
        ({"tools": "no_such_package.tools:Toolkit"}, "python.tools: no module named 'no_such_package'"),
        ({"tools": "library.py:LibraryTools"}, "has no attribute 'LibraryTools'"),
        ({"tools": "library.py:LOAN_DAYS"}, "is a int, not a toolkit class or object, a module, a function or a list"),
        ({"tools": "missing.py"}, "no such file"),
        ({"state": "no_state.json"}, "python.state: no such file"),
        ({"errors": [{"exception": "library.py:LOAN_LIMITS", "kind": "refused"}]}, "is not an exception class"),
    ],
    ids=["module", "attribute", "not-tools", "file", "state", "error-rule"],
)
def test_a_reference_that_cannot_be_followed_is_a_config_error_naming_the_key(
    tmp_path: Path, python: dict[str, Any], message: str
) -> None:
    domain = load_config(variant(tmp_path, **python)).domains[0]
    with pytest.raises(ConfigError, match="domain 'library': ") as error:
        python_environments(domain)
    assert message in str(error.value)


UNCOPYABLE = '''
class Records(dict):
    def __reduce_ex__(self, protocol):
        raise TypeError("records are not to be copied")

    def __deepcopy__(self, memo):
        raise TypeError("records are not to be copied")


def load():
    return Records(members={"ann": {"tier": "gold"}})


def peek(state: dict) -> str:
    """Look."""
    return "ok"
'''


def test_a_state_that_cannot_be_copied_per_dialogue_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "records.py").write_text(UNCOPYABLE, encoding="utf-8")
    domain = load_config(variant(tmp_path, tools="records.py:peek", state="records.py:load")).domains[0]
    with pytest.raises(ConfigError, match=r"python\.state: a Records cannot be copied for each dialogue .* fork\(\)"):
        python_environments(domain)


def test_python_tools_and_a_database_are_two_sources_of_tools(tmp_path: Path) -> None:
    path = variant(tmp_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["domains"][0]["tools"] = "library_tasks.jsonl"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="tools and python are different sources of tools"):
        load_config(path)


@pytest.mark.parametrize("mode", ["user+exec", "task"])
def test_a_dry_run_runs_the_python_tools_and_their_checks(tmp_path: Path, mode: str) -> None:
    config = variant(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["mode"] = mode
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(config), "--dry-run", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = records(out)
    assert len(rows) == 8 and {row["env"]["kind"] for row in rows} == {"python"}
    assert sum(row["env"]["calls"] for row in rows) > 0, "the agent's calls ran on the Python tools"
    judged = [row["judgment"] for row in rows if row["judgment"] is not None]
    assert judged and all(j["verification"]["checks"] for j in judged)
    assert {c["python"].split("(")[0] for j in judged for c in j["verification"]["checks"]} <= {
        f"library_checks.py:{name}" for name in ("open_loan", "no_open_loan", "returned", "due_on", "balance",
                                                 "owes_under", "hold")
    }  # fmt: skip


# --- a dialogue interrupted mid-way ----------------------------------------------------------------------------


def user(message: str, complete: bool = False) -> str:
    return orjson.dumps({"user_message": message, "is_task_complete": complete}).decode()


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": tool, "arguments": arguments}]}


def valid_on_first_goal() -> str:
    """The judge's verdict classing, as met, every rubric item of the example's first goal."""
    domain = load_config(CONFIG).domains[0]
    assert domain.tasks is not None
    return verdict(*(f"{label} {text}" for label, text in rubric_items(load_tasks(domain.tasks)[0], 1)))


USERS = [user("I'd like The Remains of the Day; ada.okafor@example.com."), user("Yes."), user("Thanks!", True)]
AGENTS = [
    call("find_members", email="ada.okafor@example.com"),
    call("search_books", query="remains of the day"),
    {"content": "Shall I lend you The Remains of the Day (B0004)?"},
    call("borrow_book", member_id="M0001", book_id="B0004"),
    {"content": "Done: it is due on 2025-04-04."},
]


def engine(users: int = 0, agents: int = 0) -> DialogueEngine:
    """A fresh engine, as a new process would build it: its own environments, no live dialogue; its models
    start after the replies an earlier process used."""
    domain = load_config(CONFIG).domains[0]
    models = {
        "user": ScriptedModel(USERS[users:], role="user"),
        "agent": ScriptedModel(AGENTS[agents:], role="agent"),
        "judge": ScriptedModel([valid_on_first_goal()], role="judge"),
        "tool": ScriptedModel([], role="tool"),
        "generator": ScriptedModel([], role="generator"),
    }
    built = DialogueEngine(models, mode="user+exec", settings=DialogueConfig(), personas=[])
    environments = python_environments(domain)
    built.add_domain(DomainSetup("library", environments.tools(), "", environments))
    return built


async def steps(engine: DialogueEngine, state: DialogueState, count: int | None = None) -> DialogueState:
    while state.next_actor != "done" and count != 0:
        state = await engine.step(state)
        count = None if count is None else count - 1
    return state


async def test_a_dialogue_resumed_mid_way_runs_its_calls_again_and_ends_as_an_uninterrupted_one() -> None:
    domain = load_config(CONFIG).domains[0]
    assert domain.tasks is not None
    task = load_tasks(domain.tasks)[0]
    uninterrupted = engine()
    whole = await steps(uninterrupted, uninterrupted.start("library", [task], dialogue_id="d", seed=3))

    first = engine()
    state = first.start("library", [task], dialogue_id="d", seed=3)
    state = await steps(first, state, 7)  # two calls ran; the person said yes; the agent is next
    assert state.env["calls"] == 2 and state.next_actor == "agent"
    resumed = engine(users=2, agents=3)
    stored = DialogueState.model_validate_json(state.model_dump_json())
    final = await steps(resumed, stored)

    assert final.status == whole.status == "completed"
    assert final.env == whole.env and final.env["calls"] == 3
    assert final.judgment is not None and final.judgment.checks == {"Ada has The Remains of the Day on loan": True}
    assert final.judgment.verification == whole.judgment.verification  # type: ignore[union-attr]

    tampered = stored.model_copy(update={"env": {**stored.env, "journal": "0" * 32}})
    failed = await steps(engine(users=2, agents=3), tampered)
    assert failed.status == "failed" and "did not give the results" in (failed.failure or "")


# --- goals written over a view of the state ----------------------------------------------------------------------


class StateReader(ScriptedModel):
    """A goal writer that names, in each goal, a member its view of the library's records shows (one not named
    before, as near-duplicate goals are dropped)."""

    def __init__(self) -> None:
        super().__init__((), role="generator")
        self.named: set[str] = set()

    async def _send(self, messages: Sequence[Message], options: RequestOptions) -> Completion:
        assert isinstance(messages[0], UserMessage)
        view = state_shown(messages[0].content)
        names = [orjson.loads(line.split(": ", 1)[1])["name"] for line in members_shown(view)]
        name = next(name for name in names if name not in self.named)
        self.named.add(name)
        goal = {
            "description": f"You are {name} and want to hear which books you have on loan and when they are due.",
            "difficulty": "easy",
            "subtasks": ["Ask which books you have on loan"],
            "success_criteria": [f"{name} is told the books on loan and their due dates"],
            "tools": ["find_members", "get_member"],
            "asks_to_see": [],
        }
        self._add(orjson.dumps({"tasks": [goal]}).decode(), "view")
        return await super()._send(messages, options)


def state_shown(prompt: str) -> str:
    return filled_in(filled_in(prompt, "tasks_descriptive")["data_section"], "tasks_parts", "state")["data_view"]


def members_shown(view: str) -> list[str]:
    block = view.split("members (", 1)[1].split("\n\n", 1)[0]
    return [line for line in block.splitlines()[1:] if line.startswith('"M')]


async def test_goals_for_python_tools_are_written_over_views_of_the_state(tmp_path: Path) -> None:
    config = load_config(variant(tmp_path))
    config.domains[0].tasks = None
    config.generation.tasks_per_domain, config.generation.tasks_per_batch = 3, 1
    config.generation.hard_goals, config.generation.followups_per_domain = 0, 0
    writer = StateReader()
    (plan,) = await Preparation(config, writer, ArtifactStore(tmp_path / "run")).run()

    views = [state_shown(request.messages[0].content) for request in writer.requests]
    assert len(views) == 3 and len(set(views)) == 3, "each batch is shown records of its own"
    records = orjson.loads((EXAMPLE / "library_state.json").read_bytes())
    for view in views:
        assert "members (12 records" in view and len(view) <= 4 * config.generation.data_view_tokens + 400
        for line in members_shown(view):
            member_id, record = line.split(": ", 1)
            assert records["members"][orjson.loads(member_id)] == orjson.loads(record)
    assert len(plan.tasks) == 3


DONE_AS_ASKED: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "library-01": [("borrow_book", {"member_id": "M0001", "book_id": "B0004"})],
    "library-02": [("return_book", {"loan_id": "L0002"})],
    "library-03": [("renew_loan", {"loan_id": "L0003"})],
    "library-04": [("renew_loan", {"loan_id": "L0005"})],
    "library-05": [
        ("place_hold", {"member_id": "M0005", "book_id": "B0012"}),
        ("pay_balance", {"member_id": "M0005", "amount": 3.0}),
        ("place_hold", {"member_id": "M0005", "book_id": "B0012"}),
    ],
    "library-06": [("borrow_book", {"member_id": "M0004", "book_id": "B0006"})],
    "library-07": [("borrow_book", {"member_id": "M0007", "book_id": "B0018"})],
    "library-08": [("borrow_book", {"member_id": "M0006", "book_id": "B0019"})],
    "library-09": [("renew_loan", {"loan_id": "L0001"})],
}
"""Each example goal's calls, as an agent doing it well makes them (the refused ones fail)."""


async def test_every_example_goal_done_as_asked_passes_its_checks() -> None:
    domain = load_config(CONFIG).domains[0]
    assert domain.tasks is not None
    environments = python_environments(domain)
    names = {tool.name for tool in environments.tools()}
    for task in load_tasks(domain.tasks):
        assert set(task.tools) <= names, task.id
        environment = environments.new(seed=0, clock="")
        results = [await environment.call(name, arguments) for name, arguments in DONE_AS_ASKED[task.id]]
        refused = [result.error.kind for result in results if result.error is not None]
        expected = {"library-04": ["constraint_violation"], "library-05": ["constraint_violation"],
                    "library-06": ["refused"], "library-08": ["constraint_violation"]}  # fmt: skip
        assert refused == expected.get(task.id, []), (task.id, results)
        verification = environment.verify(task.checks)
        assert verification.passed, (task.id, verification.checks)


COUNTER = '''
from dataclasses import dataclass, field


@dataclass
class Counter:
    counts: dict = field(default_factory=dict)

    def bump(self, name: str) -> int:
        """Add one to a counter.

        Args:
            name: the counter.
        """
        self.counts[name] = self.counts.get(name, 0) + 1
        return self.counts[name]


class Opaque:
    pass


COUNTER = Counter()
OPAQUE = Opaque()
CONSTANTS = 3


def peek(state: object) -> str:
    """Look at the state."""
    return "ok"
'''


async def test_a_toolkit_object_is_its_own_state_copied_per_dialogue(tmp_path: Path) -> None:
    (tmp_path / "counter.py").write_text(COUNTER, encoding="utf-8")
    config = variant(tmp_path, tools="counter.py:COUNTER", state=None, errors=[])
    environments = python_environments(load_config(config).domains[0])
    first, second = environments.new(seed=0, clock=""), environments.new(seed=1, clock="")
    assert (await first.call("bump", {"name": "a"})).content == 1
    assert (await first.call("bump", {"name": "a"})).content == 2
    assert (await second.call("bump", {"name": "a"})).content == 1
    assert environments.root.state.counts == {}
    assert first.verify([]).diff.tables["state"].updated == [{"key": "counts", "before": {}, "after": {"a": 2}}]


@pytest.mark.parametrize(
    ("python", "message"),
    [
        ({"tools": "counter.py:COUNTER"}, "python.tools: 'counter.py:COUNTER' is a toolkit object, which carries"),
        ({"tools": "counter.py:peek", "state": "counter.py:OPAQUE"}, "python.state: a Opaque has no JSON form"),
        ({"tools": "counter.py:CONSTANTS", "state": None}, "is a int, not a toolkit class or object"),
    ],
    ids=["object-and-state", "state-not-json", "not-tools"],
)
def test_what_cannot_be_tools_or_state_is_named(tmp_path: Path, python: dict[str, Any], message: str) -> None:
    (tmp_path / "counter.py").write_text(COUNTER, encoding="utf-8")
    domain = load_config(variant(tmp_path, errors=[], **python)).domains[0]
    with pytest.raises(ConfigError, match="domain 'library': ") as error:
        python_environments(domain)
    assert message in str(error.value)


def test_a_module_without_public_functions_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("from os import path\n", encoding="utf-8")
    domain = load_config(variant(tmp_path, tools="empty.py", errors=[])).domains[0]
    with pytest.raises(ConfigError, match=r"'empty\.py' defines no public functions to use as tools"):
        python_environments(domain)
