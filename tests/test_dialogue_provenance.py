"""Each dialogue record says how it was made: the dialforge version, the model per role, and a digest of every
prompt its roles were given, so two datasets can be compared and a dialogue traced to the code that made it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dialforge
import dialforge.prompts as prompts
from dialforge.cli.main import app
from dialforge.config import DialogueConfig
from dialforge.environments.sql.environment import SQLDatabase, SQLEnvironments
from dialforge.environments.sql.tool import SQLTool
from dialforge.llm import DryRunModel
from dialforge.model import Task
from dialforge.model.dialogue import Mode
from dialforge.pipeline.engine import DialogueEngine, DomainSetup
from dialforge.prompts import prompt_digest

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("user", "agent", "judge", "tool", "generator")
TOOLS = [
    SQLTool(
        name="find_genres",
        description="Genres whose name contains the text; returns GenreId and Name.",
        parameters={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        sql='SELECT "GenreId", "Name" FROM "Genre" WHERE "Name" LIKE \'%\' || :name || \'%\' ORDER BY "GenreId"',
    ),
]
GOAL = Task(id="g", description="You want to know whether the store has any jazz.", subtasks=["Ask about jazz"])
AGENT = {"agent_system", "agent_system_parts", "service_section"}
JUDGE = {"judge", "judge_parts"}
USER = {"user_simulator", "user_simulator_parts", "user_simulator_feedback", "user_simulator_violations", "personas"}
TOOL = {"tool_simulator", "tool_simulator_parts", "service_section"}
PROMPTS: dict[tuple[Mode, bool], set[str]] = {
    ("task", False): AGENT | JUDGE | TOOL,
    ("task", True): AGENT | JUDGE,
    ("user", False): AGENT | JUDGE | USER | TOOL,
    ("user+exec", True): AGENT | JUDGE | USER,
}
"""The prompts a dialogue's roles use, by mode and whether its tools run on a database (else a model plays them)."""


def engine_for(mode: Mode, chinook: SQLDatabase, *, database: bool | None = None) -> DialogueEngine:
    models = {role: DryRunModel(seed=3, role=role) for role in ROLES}
    engine = DialogueEngine(models, mode=mode, settings=DialogueConfig(max_turns_per_task=60))
    on_database = mode == "user+exec" if database is None else database
    environments = SQLEnvironments(chinook, TOOLS) if on_database else None
    tools = [tool.to_spec() for tool in TOOLS]
    engine.add_domain(DomainSetup(name="music store", tools=tools, environments=environments, description="Records."))
    return engine


@pytest.fixture
def prompts_loaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """The name of every packaged prompt loaded from here on (the caches are emptied so that each load shows)."""
    loaded: set[str] = set()
    original = prompts.load_prompt

    def load(name: str) -> str:
        loaded.add(name)
        return original(name)

    monkeypatch.setattr(prompts, "load_prompt", load)
    prompts.prompt_sections.cache_clear()
    yield loaded
    prompts.prompt_sections.cache_clear()


@pytest.mark.parametrize(("mode", "database"), list(PROMPTS))
async def test_a_record_names_the_version_the_models_and_a_digest_of_each_prompt_its_roles_use(
    mode: Mode, database: bool, chinook: SQLDatabase, prompts_loaded: set[str]
) -> None:
    engine = engine_for(mode, chinook, database=database)
    prompts_loaded.clear()  # what the dialogue renders, not what the engine digests
    state = await engine.run(engine.start("music store", [GOAL], dialogue_id="d", seed=5))

    assert state.status == "completed", "every role, the judge included, had its turn"
    generator = engine.record(state).generator
    assert generator["dialforge_version"] == dialforge.__version__
    assert generator["models"] == {role: "dry-run" for role in ROLES}
    assert generator["prompts"] == {name: prompt_digest(name) for name in sorted(PROMPTS[mode, database])}
    assert prompts_loaded and prompts_loaded <= set(generator["prompts"]), "a prompt the dialogue used has no digest"


def test_the_same_code_gives_the_same_record_and_a_changed_prompt_a_changed_digest(
    chinook: SQLDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    def generator() -> dict[str, object]:
        engine = engine_for("user", chinook)
        return engine.generator(engine.start("music store", [GOAL], dialogue_id="d", seed=5))

    before = generator()
    assert generator() == before

    original = prompts.load_prompt
    monkeypatch.setattr(
        prompts, "load_prompt", lambda name: original(name) + ("\nBe brief." if name == "judge" else "")
    )
    after = generator()

    changed = {name for name, digest in after["prompts"].items() if before["prompts"][name] != digest}
    assert changed == {"judge"}


def test_personas_of_the_config_replace_the_packaged_ones_in_the_digests(chinook: SQLDatabase) -> None:
    models = {role: DryRunModel(seed=3, role=role) for role in ROLES}
    engine = DialogueEngine(models, mode="user", personas=[])
    engine.add_domain(DomainSetup(name="music store", tools=[tool.to_spec() for tool in TOOLS]))

    state = engine.start("music store", [GOAL], dialogue_id="d", seed=5)
    assert "personas" not in engine.generator(state)["prompts"]


def test_a_dry_run_writes_the_generator_into_dialogues_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", str(ROOT / "examples" / "quickstart.yaml"), "--dry-run", "--limit", "1", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in (out / "dialogues.jsonl").read_text().splitlines()]
    generator = record["generator"]
    assert generator["dialforge_version"] == dialforge.__version__
    assert set(generator["prompts"]) == PROMPTS["user+exec", True]
    assert generator["prompts"]["agent_system"] == prompt_digest("agent_system")
