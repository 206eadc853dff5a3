"""How each role reaches its model: per-role settings inherited from ``default``.

Generator, user simulator, agent, tool simulator and judge may each use a different model,
endpoint pool and sampling options; anything a role leaves out comes from ``default``,
and the environment may override base URLs and model names (``DIALFORGE_BASE_URL``,
``DIALFORGE_MODEL``, or per role ``DIALFORGE_AGENT_BASE_URL``...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dialforge.errors import ConfigError
from dialforge.llm.completion import ROLES, Role, SamplingOptions

StructuredOutput = Literal["auto", "native", "prompt"]
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


class ModelSettings(SamplingOptions):
    """How one role reaches its model, and its sampling defaults. Every field may be left out and
    inherited from ``default``."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    model: str | None = None
    base_urls: list[str] | None = Field(default=None, description="one model served by several replicas")
    api_key_env: str | None = Field(default=None, description="name of the environment variable with the key")
    max_concurrency: int | None = Field(default=None, gt=0, description="in-flight requests per base URL")
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    structured_output: StructuredOutput | None = None
    max_tokens_field: MaxTokensField | None = Field(
        default=None, description="OpenAI's reasoning models want max_completion_tokens"
    )
    extra_body: dict[str, Any] | None = Field(default=None, description="merged into every request body")

    @field_validator("max_tokens")
    @classmethod
    def _budget_is_positive(cls, max_tokens: int | None) -> int | None:
        """A call may ask for 0 tokens (an empty reply, to test truncation); a role's budget may not."""
        if max_tokens == 0:
            raise ValueError("max_tokens must be at least 1: a budget of 0 leaves every reply empty")
        return max_tokens

    @field_validator("base_urls", mode="before")
    @classmethod
    def _one_url_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("base_urls")
    @classmethod
    def _urls_are_http(cls, urls: list[str] | None) -> list[str] | None:
        for url in urls or []:
            if not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"base URL {url!r} must start with http:// or https:// (e.g. http://localhost:8000/v1)"
                )
        return [url.rstrip("/") for url in urls] if urls else urls


class ResolvedModelSettings(SamplingOptions):
    """A role's settings after inheritance and environment overrides; nothing left unknown.

    The one place the model defaults are written; its sampling options are the defaults of every request.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    model: str
    base_urls: tuple[str, ...]
    api_key_env: str | None = None
    max_concurrency: int = 64
    timeout_s: float = 300.0
    max_retries: int = 6
    structured_output: StructuredOutput = "auto"
    max_tokens_field: MaxTokensField = "max_tokens"
    extra_body: dict[str, Any] = Field(default_factory=dict)

    def api_key(self) -> str | None:
        """The key from the environment; a named but unset variable is an error, not a silent None."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"models.{self.role}.api_key_env names {self.api_key_env!r}, but that environment variable "
                f"is not set; export {self.api_key_env}=... or remove api_key_env for servers without auth"
            )
        return key


class ModelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: ModelSettings = Field(default_factory=ModelSettings)
    generator: ModelSettings = Field(default_factory=ModelSettings)
    user: ModelSettings = Field(default_factory=ModelSettings)
    agent: ModelSettings = Field(default_factory=ModelSettings)
    tool: ModelSettings = Field(default_factory=ModelSettings)
    judge: ModelSettings = Field(default_factory=ModelSettings)

    def is_configured(self) -> bool:
        """Whether every role has a model and an endpoint (after environment overrides)."""
        try:
            for role in ROLES:
                self.resolve(role)
        except ConfigError:
            return False
        return True

    def resolve(self, role: Role, environ: Mapping[str, str] | None = None) -> ResolvedModelSettings:
        """``default``, then the global environment overrides, then the role's own settings, then the
        role's environment overrides: what a role states in the file beats a global override."""
        env = os.environ if environ is None else environ
        merged: dict[str, Any] = {}
        for layer, prefix in ((self.default, "DIALFORGE_"), (getattr(self, role), f"DIALFORGE_{role.upper()}_")):
            merged.update(layer.model_dump(exclude_none=True))
            merged.update(_environment_overrides(env, prefix))
        missing = [key for key in ("model", "base_urls") if not merged.get(key)]
        if missing:
            raise ConfigError(
                f"models.{role}: no {' and no '.join(missing)} configured; set them under models.default "
                f"or models.{role} (or DIALFORGE_BASE_URL / DIALFORGE_MODEL), or use --dry-run"
            )
        merged["base_urls"] = tuple(merged["base_urls"])
        return ResolvedModelSettings(role=role, **merged)


def _environment_overrides(env: Mapping[str, str], prefix: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if url := env.get(f"{prefix}BASE_URL"):
        try:
            urls = ModelSettings(base_urls=[part.strip() for part in url.split(",") if part.strip()]).base_urls
        except ValidationError as exc:
            raise ConfigError(f"{prefix}BASE_URL={url!r}: {exc.errors()[0]['msg']}") from None
        overrides["base_urls"] = urls
    if model := env.get(f"{prefix}MODEL"):
        overrides["model"] = model
    return overrides
