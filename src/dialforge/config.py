"""The run configuration: one YAML file, validated by pydantic, errors that name file and key.

Secrets never live in the file: a model entry names the environment variable holding its key
(``api_key_env: OPENAI_API_KEY``).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialforge.errors import ConfigError
from dialforge.llm.accounting import Price
from dialforge.llm.settings import ModelsConfig

__all__ = ["ConfigError", "DialforgeConfig", "load_config"]


class DialforgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: ModelsConfig = Field(default_factory=ModelsConfig)
    prices: dict[str, Price] = Field(default_factory=dict, description="model name -> USD per million tokens")
    seed: int = 0


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: the configuration is not valid:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        got = f" (got {item['input']!r})" if item["type"] != "missing" and "input" in item else ""
        if item["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key; check its spelling and where it is nested")
        else:
            lines.append(f"  {where}: {item['msg']}{got}")
    return "\n".join(lines)


def load_config(path: str | Path) -> DialforgeConfig:
    """Read and validate a YAML config; every problem raises ``ConfigError`` naming file and key path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (models:, seed:, ...)")
    try:
        return DialforgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
