"""The run configuration: one YAML file, validated by pydantic, errors that name file and key.

Secrets never live in the file: a model entry names the environment variable holding its key
(``api_key_env: OPENAI_API_KEY``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dialforge.environments.base import ToolErrorKind
from dialforge.environments.mcp import McpSettings
from dialforge.errors import ConfigError
from dialforge.llm.accounting import Price
from dialforge.llm.settings import ModelsConfig
from dialforge.model.dialogue import Mode, ToolFaultKind
from dialforge.model.domain import domain_slug
from dialforge.model.tasks import Difficulty

__all__ = [
    "ConfigError",
    "DialforgeConfig",
    "DialogueConfig",
    "DomainConfig",
    "GenerationConfig",
    "PersonaConfig",
    "load_config",
]


class ToolErrorRuleConfig(BaseModel):
    """Which exceptions a Python tool raises become which error kind for the agent; tried in order, before the
    defaults (a lookup or 'not found' error: not_found; PermissionError: refused; ValueError: constraint_violation;
    anything else: execution_error)."""

    model_config = ConfigDict(extra="forbid")

    kind: ToolErrorKind
    exception: str | None = Field(
        default=None, description="an exception class: a builtin name (ValueError) or package.module:Class"
    )
    message: str | None = Field(default=None, description="a regular expression searched in the message (any case)")

    @model_validator(mode="after")
    def _says_what_it_matches(self) -> ToolErrorRuleConfig:
        if self.exception is None and self.message is None:
            raise ValueError("a rule needs an exception, a message pattern, or both")
        return self


class PythonToolsConfig(BaseModel):
    """Python functions as the domain's tools, run for real on a state each dialogue has its own copy of.

    References are ``package.module:name`` or ``path/to/file.py:name`` (from the config file's folder).
    """

    model_config = ConfigDict(extra="forbid")

    tools: str = Field(
        min_length=1,
        description="a toolkit class (built per dialogue as Toolkit(state); its own public methods are the tools), "
        "a toolkit object (copied per dialogue; it is the state), a module (its public functions), a function, "
        "or a list of functions",
    )
    state: str | None = Field(
        default=None,
        description="a .json file, or package.module:load_state (called without arguments) giving the initial state",
    )
    state_parameter: str | None = Field(
        default="state",
        description="the parameter of a plain function that receives the state (hidden from the agent); "
        "null when no function takes it",
    )
    errors: list[ToolErrorRuleConfig] = Field(default_factory=list)
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path | None:
        """The config file's folder, where file references start."""
        return self._base_dir

    @model_validator(mode="after")
    def _remember_base_dir(self, info: ValidationInfo) -> PythonToolsConfig:
        self._base_dir = (info.context or {}).get("base_dir")
        return self


class DomainConfig(BaseModel):
    """One domain to generate for. Any file given here replaces the stage that would generate it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    seed_tools: Path | None = Field(default=None, description="JSON or JSONL of OpenAI tool specs to draw on")
    database: Path | None = Field(default=None, description="a .sqlite file or a .sql script: the SQL pipeline")
    sql_tools: Literal["synthesize", "scaffold"] = Field(
        default="synthesize", description="model-written SQL tools (scaffolded ones if none pass), or scaffold only"
    )
    policy: str | None = Field(default=None, description="the agent's operating policy, instead of generating one")
    questions: Path | None = Field(default=None, description="user questions (JSONL or text, one per line)")
    tools: Path | None = Field(default=None, description="tool specs (JSON list or JSONL; SQL tools carry 'sql')")
    tasks: Path | None = Field(default=None, description="tasks (JSONL of Task objects)")
    python: PythonToolsConfig | None = Field(default=None, description="Python functions as real tools")
    mcp: McpSettings | None = Field(default=None, description="a Model Context Protocol server's tools, run for real")
    policy_file: Path | None = Field(default=None, description="the agent's operating policy, from a file")

    @field_validator("seed_tools", "database", "questions", "tools", "tasks", "policy_file")
    @classmethod
    def _file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return None
        base = (info.context or {}).get("base_dir")
        resolved = path if path.is_absolute() or base is None else base / path
        if not resolved.is_file():
            raise ValueError(f"no such file: {resolved} (relative paths start at the config file's folder)")
        return resolved

    @field_validator("mcp")
    @classmethod
    def _mcp_paths_from_config_folder(cls, mcp: McpSettings | None, info: ValidationInfo) -> McpSettings | None:
        """``state`` found from the config file's folder, and ``{config}`` in commands replaced by that folder."""
        base = (info.context or {}).get("base_dir")
        if mcp is None or base is None:
            return mcp
        folder = str(Path(base).resolve())
        update: dict[str, object] = {
            "setup": [[part.replace("{config}", folder) for part in command] for command in mcp.setup],
            "env": {key: value.replace("{config}", folder) for key, value in mcp.env.items()},
        }
        if mcp.command is not None:
            update["command"] = [part.replace("{config}", folder) for part in mcp.command]
        if mcp.state is not None:
            state = mcp.state if mcp.state.is_absolute() else base / mcp.state
            if not state.is_dir():
                raise ValueError(f"mcp.state: no such folder: {state} (relative paths start at the config's folder)")
            update["state"] = state
        return mcp.model_copy(update=update)

    @model_validator(mode="after")
    def _one_tool_source(self) -> DomainConfig:
        sources = [key for key in ("database", "tools", "python", "mcp") if getattr(self, key) is not None]
        if len(sources) > 1 and sources != ["database", "tools"]:
            raise ValueError(f"{' and '.join(sources)} are different sources of tools; give one of them")
        if self.policy is not None and self.policy_file is not None:
            raise ValueError("policy and policy_file both give the policy; keep one")
        return self

    @property
    def policy_text(self) -> str | None:
        """The supplied policy, written inline or in its file."""
        if self.policy_file is not None:
            return self.policy_file.read_text(encoding="utf-8")
        return self.policy


_DEFAULT_DIFFICULTY_MIX: dict[Difficulty, float] = {"easy": 0.3, "medium": 0.4, "hard": 0.3}


class GenerationConfig(BaseModel):
    """How much to generate per domain, and in which mix."""

    model_config = ConfigDict(extra="forbid")

    questions_per_domain: int = Field(default=24, ge=1, le=500, description="the paper uses 20-30")
    max_tools_per_domain: int = Field(default=30, ge=1, le=200)
    expansion_tools: int = Field(default=10, ge=0, le=10, description="complementary tools, at most")
    sql_tools_per_domain: int = Field(default=12, ge=1, le=100)
    tasks_per_domain: int = Field(default=20, ge=1, le=10_000)
    tasks_per_batch: int = Field(
        default=5, ge=1, le=50, description="goals asked for in one request; each request sees a sample of its own"
    )
    data_view_tokens: int = Field(
        default=2500,
        ge=100,
        le=50_000,
        description="size of the sample of the database a goal writer sees (estimated as characters / 4)",
    )
    followups_per_domain: int = Field(default=10, ge=0, le=10_000, description="extra tasks for multi-task dialogues")
    followup_extension_share: float = Field(
        default=0.5, ge=0, le=1, description="share of follow-ups that extend earlier results (rest: independent)"
    )
    difficulty_mix: dict[Difficulty, float] = Field(default_factory=_DEFAULT_DIFFICULTY_MIX.copy)
    tasks_per_dialogue: tuple[int, int] = Field(default=(1, 3), description="fewest and most tasks in one dialogue")
    hard_goals: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="share of generated goals that cannot be done as asked (forbidden by the policy, refused by "
        "the data, naming a record that is missing or ambiguous), spread over the kinds the domain supports",
    )

    @field_validator("difficulty_mix")
    @classmethod
    def _mix_is_a_distribution(cls, mix: dict[Difficulty, float]) -> dict[Difficulty, float]:
        if any(share < 0 for share in mix.values()) or abs(sum(mix.values()) - 1) > 0.01:
            raise ValueError(f"the shares must be >= 0 and add up to 1 (they add up to {sum(mix.values()):g})")
        return mix

    @model_validator(mode="after")
    def _task_range_is_ordered(self) -> GenerationConfig:
        low, high = self.tasks_per_dialogue
        if not 1 <= low <= high:
            raise ValueError(f"tasks_per_dialogue must be [fewest, most] with 1 <= fewest <= most, not {[low, high]}")
        return self


class PersonaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)


class DialogueConfig(BaseModel):
    """Limits and variety of each dialogue; every guard that fires is counted in the dialogue record."""

    model_config = ConfigDict(extra="forbid")

    per_domain: int = Field(default=20, ge=1, description="dialogues planned per domain")
    today: datetime | None = Field(
        default=None, description="the agent's current date and time (default: a random one per dialogue)"
    )
    limit: int | None = Field(default=None, ge=1, description="stop after this many finished dialogues (--limit)")
    max_turns_per_task: int = Field(
        default=40, ge=2, description="turns each goal of a dialogue adds to its budget (a turn: see turn_budget)"
    )
    max_turns: int | None = Field(
        default=None, ge=2, description="an overall cap on a dialogue's turns, whatever its number of goals"
    )
    max_steps_per_turn: int = Field(default=8, ge=1, description="agent tool-use iterations per user request")
    max_repeated_calls: int = Field(default=3, ge=1, description="identical tool calls (same arguments) allowed")
    max_repeated_messages: int = Field(
        default=2,
        ge=1,
        description="identical messages in a row allowed from one party (the user, or the agent's text replies)",
    )
    tool_faults: float = Field(
        default=0,
        ge=0,
        le=1,
        description="share of tool calls that meet a transient fault instead of running (seeded, recorded)",
    )
    tool_fault_kinds: list[ToolFaultKind] = Field(
        default_factory=lambda: list(get_args(ToolFaultKind)),
        min_length=1,
        description="the faults injected, chosen evenly: timeout, unavailable, rate_limited",
    )
    personas: list[PersonaConfig] | None = Field(
        default=None, description="user personas to sample from (default: the built-in library; [] for none)"
    )

    @field_validator("tool_fault_kinds")
    @classmethod
    def _fault_kinds_differ(cls, kinds: list[ToolFaultKind]) -> list[ToolFaultKind]:
        if len(set(kinds)) < len(kinds):
            raise ValueError(f"each fault kind is listed once (they are chosen evenly), not {kinds}")
        return kinds

    def turn_budget(self, tasks: int) -> int:
        """The turns a dialogue pursuing ``tasks`` goals may add: ``max_turns_per_task`` per goal, at most
        ``max_turns``. A turn is what Table 1 counts (``pipeline/dialogue_stats.py``): a user message, an
        assistant's text, each tool call, each tool output. A dialogue that runs out after completing a goal
        is cut back to the end of its last completed goal and kept; one that completed none fails."""
        budget = self.max_turns_per_task * max(tasks, 1)
        return budget if self.max_turns is None else min(budget, self.max_turns)


class RayConfig(BaseModel):
    """Where ``--executor ray`` runs: a cluster address (none: a local Ray instance) and how many shards."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(default=None, description="e.g. ray://head:10001 or auto; none starts a local Ray")
    workers: int = Field(default=2, ge=1, le=10_000, description="shards, one Ray task each")


class DialforgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(default="user", description="task | user | user+exec (the three pipelines of docs/method.md)")
    domains: list[DomainConfig] = Field(default_factory=list)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    dialogue: DialogueConfig = Field(default_factory=DialogueConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    prices: dict[str, Price] = Field(default_factory=dict, description="model name -> USD per million tokens")
    ray: RayConfig = Field(default_factory=RayConfig)
    seed: int = 0

    @field_validator("domains")
    @classmethod
    def _domain_names_are_unique(cls, domains: list[DomainConfig]) -> list[DomainConfig]:
        slugs = [domain_slug(domain.name) for domain in domains]
        repeated = sorted({d.name for d, slug in zip(domains, slugs, strict=True) if slugs.count(slug) > 1})
        if repeated:
            raise ValueError(f"domain names must differ in more than case and punctuation: {repeated}")
        return domains


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
        return DialforgeConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
