"""The config of an MCP domain and command checks, without starting a server (those tests are slow: see
tests/test_mcp_environment.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dialforge.config import ConfigError, load_config
from dialforge.environments.base import CheckOutcome
from dialforge.environments.mcp import McpEnvironment, McpEnvironments, McpSettings
from dialforge.model.tasks import CommandCheck, SQLCheck, Task

EXAMPLE = Path(__file__).parents[1] / "examples" / "bakery_site" / "bakery_site.yaml"


def config_with(tmp_path: Path, mcp: dict[str, Any], **domain: Any) -> Path:
    (tmp_path / "repo").mkdir(exist_ok=True)
    path = tmp_path / "run.yaml"
    data = {"mode": "user+exec", "domains": [{"name": "repo", "mcp": mcp, **domain}]}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_example_config_resolves_its_paths_from_its_folder() -> None:
    domain = load_config(EXAMPLE).domains[0]
    assert domain.mcp is not None and domain.mcp.state is not None
    assert domain.mcp.state == EXAMPLE.parent / "site" and domain.mcp.state.is_dir()
    assert domain.mcp.setup == [["sh", f"{EXAMPLE.parent.resolve()}/setup.sh"]]
    assert domain.mcp.bind == {"repo_path": "{state}"}, "{state} is each dialogue's, filled in per call"
    lines = (EXAMPLE.parent / "bakery_tasks.jsonl").read_text(encoding="utf-8").splitlines()
    tasks = [Task.model_validate_json(line) for line in lines]
    assert all(isinstance(check, CommandCheck) for task in tasks for check in task.checks)


@pytest.mark.parametrize(
    ("mcp", "domain", "problem"),
    [
        ({"command": ["srv"], "state": "nowhere"}, {}, "no such folder"),
        ({"command": ["srv"], "url": "http://127.0.0.1:9/mcp", "isolation": "shared"}, {}, "either command"),
        ({"url": "http://127.0.0.1:9/mcp"}, {}, "isolation: shared"),
        ({"command": ["srv"]}, {"python": {"tools": "x.py"}}, "different sources of tools"),
        ({"command": ["srv"], "max_servers": 0}, {}, "max_servers"),
    ],
)
def test_a_wrong_mcp_config_is_refused_with_its_key(
    tmp_path: Path, mcp: dict[str, Any], domain: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(config_with(tmp_path, mcp, **domain))


def test_command_checks_run_on_the_final_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "notes.txt").write_text("tea 3.40\n", encoding="utf-8")
    factory = McpEnvironments(McpSettings(command=["srv"], state=state), tmp_path / "work")
    factory.initial.mkdir(parents=True)
    (factory.initial / "notes.txt").write_text("tea 3.40\n", encoding="utf-8")
    environment = McpEnvironment(factory)
    checks = [
        CommandCheck(description="tea costs 3.40", command=["grep", "-q", "tea 3.40", "{state}/notes.txt"]),
        CommandCheck(description="coffee is listed", command=["grep", "coffee", "notes.txt"]),
        SQLCheck(description="a SQL check", sql="SELECT 1"),
    ]
    outcomes = environment.verify(checks).checks
    assert [outcome.passed for outcome in outcomes] == [True, False, False]
    assert outcomes[0].command == "grep -q 'tea 3.40' '{state}/notes.txt'" and outcomes[0].sql == ""
    assert outcomes[1].detail == "the check exited with 1"
    assert outcomes[2].sql == "SELECT 1" and "cannot run" in outcomes[2].detail
    assert CheckOutcome.model_validate(outcomes[0].model_dump()).source == outcomes[0].command


def test_a_relative_work_directory_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers run in their state directory, so a relative --out would point them nowhere."""
    monkeypatch.chdir(tmp_path)
    factory = McpEnvironments(McpSettings(command=["srv"]), Path("out") / "mcp" / "repo")
    assert factory.workdir == tmp_path / "out" / "mcp" / "repo" and factory.initial.is_absolute()
