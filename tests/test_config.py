"""Configuration errors name the file, the key path and the fix; secrets stay in the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dialforge.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_roles_inherit_from_default_and_override_per_role(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
models:
  default: {model: qwen3-8b, base_urls: "http://localhost:8000/v1/", temperature: 0.7, max_concurrency: 128}
  judge: {model: gpt-4.1, base_urls: [https://api.openai.com/v1], api_key_env: OPENAI_API_KEY, temperature: 0}
prices:
  gpt-4.1: {prompt_per_million: 2.0, completion_per_million: 8.0}
""",
        )
    )
    agent = config.models.resolve("agent", environ={})
    judge = config.models.resolve("judge", environ={})
    assert (agent.model, agent.base_urls, agent.temperature, agent.max_concurrency) == (
        "qwen3-8b",
        ("http://localhost:8000/v1",),
        0.7,
        128,
    )
    assert (judge.model, judge.temperature, judge.api_key_env) == ("gpt-4.1", 0, "OPENAI_API_KEY")
    assert config.prices["gpt-4.1"].completion_per_million == 8.0


def test_environment_overrides_base_url_and_model_globally_and_per_role(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "models:\n  default: {model: a, base_urls: http://x/v1}\n"))
    env = {"DIALFORGE_BASE_URL": "http://r1/v1,http://r2/v1", "DIALFORGE_USER_MODEL": "small"}
    assert config.models.resolve("agent", env).base_urls == ("http://r1/v1", "http://r2/v1")
    assert config.models.resolve("user", env).model == "small"
    assert config.models.resolve("agent", env).model == "a"


def test_every_invalid_key_is_reported_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  agent: {temperature: hot, max_concurrencyy: 3}\nsed: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    text = str(error.value)
    assert str(path) in text
    assert "models.agent.temperature: Input should be a valid number" in text and "'hot'" in text
    assert "models.agent.max_concurrencyy: unknown key" in text
    assert "sed: unknown key" in text


@pytest.mark.parametrize("setting", ["top_p: 1.5", "top_p: 0", "temperature: 2.5", "max_tokens: 0"])
def test_sampling_options_out_of_range_are_config_errors(tmp_path: Path, setting: str) -> None:
    key = setting.split(":")[0]
    with pytest.raises(ConfigError, match=rf"models\.agent\.{key}: "):
        load_config(write(tmp_path, f"models:\n  agent: {{{setting}}}\n"))


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+: expected"):
        load_config(write(tmp_path, "models:\n  default: {model: [unclosed\n"))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_base_url_without_scheme_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        load_config(write(tmp_path, "models:\n  default: {base_urls: localhost:8000}\n"))


def test_role_without_endpoint_says_how_to_fix(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "models:\n  default: {model: a}\n"))
    assert not config.models.is_configured()
    with pytest.raises(ConfigError, match=r"models.agent: no base_urls configured.*--dry-run"):
        config.models.resolve("agent", environ={})


def test_api_key_is_read_from_the_named_variable_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, "models:\n  default: {model: a, base_urls: http://x/v1, api_key_env: K}\n"))
    settings = config.models.resolve("agent", environ={})
    monkeypatch.delenv("K", raising=False)
    with pytest.raises(ConfigError, match="'K', but that environment variable is not set"):
        settings.api_key()
    monkeypatch.setenv("K", "sk-test")
    assert settings.api_key() == "sk-test"


def test_a_role_set_in_the_file_beats_a_global_environment_override(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "models:\n  default: {model: a, base_urls: http://x/v1}\n"
            "  judge: {model: gpt-4.1, base_urls: https://api.openai.com/v1}\n",
        )
    )
    env = {"DIALFORGE_BASE_URL": "http://gpu/v1", "DIALFORGE_MODEL": "local"}
    assert (config.models.resolve("agent", env).model, config.models.resolve("agent", env).base_urls) == (
        "local",
        ("http://gpu/v1",),
    )
    judge = config.models.resolve("judge", env)
    assert (judge.model, judge.base_urls) == ("gpt-4.1", ("https://api.openai.com/v1",))
    assert config.models.resolve("judge", {"DIALFORGE_JUDGE_MODEL": "gpt-5"}).model == "gpt-5"


def test_a_bad_url_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "models:\n  default: {model: a}\n"))
    assert config.models.resolve("agent", {"DIALFORGE_BASE_URL": "http://a/v1, http://b/v1"}).base_urls == (
        "http://a/v1",
        "http://b/v1",
    )
    with pytest.raises(ConfigError, match=r"DIALFORGE_BASE_URL=.localhost:8000/v1.: .*must start with http"):
        config.models.resolve("agent", {"DIALFORGE_BASE_URL": "localhost:8000/v1"})


def test_domains_and_generation_settings_with_paths_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "shop.sql").write_text("CREATE TABLE t (id INTEGER PRIMARY KEY);")
    config = load_config(
        write(
            tmp_path,
            """
mode: user+exec
domains:
  - {name: bookstore, description: An online bookstore., database: data/shop.sql}
  - {name: travel}
generation: {questions_per_domain: 25, difficulty_mix: {easy: 0.5, hard: 0.5}, tasks_per_dialogue: [1, 2]}
""",
        )
    )
    assert config.mode == "user+exec"
    assert config.domains[0].database == tmp_path / "data" / "shop.sql"
    assert config.generation.tasks_per_dialogue == (1, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("domains: [{name: a, database: missing.sqlite}]", "domains.0.database: Value error, no such file"),
        (
            "domains: [{name: a}, {name: a}]",
            "domain names must differ in more than case and punctuation: ['a']",
        ),
        ("generation: {difficulty_mix: {easy: 0.5}}", "add up to 1"),
        ("generation: {tasks_per_dialogue: [3, 1]}", "1 <= fewest <= most"),
        ("mode: dialogue", "mode: Input should be 'task', 'user' or 'user+exec'"),
    ],
)
def test_generation_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text))
