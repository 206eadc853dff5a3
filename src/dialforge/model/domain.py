"""A domain: what the generation stages are asked to imagine tools, users and tasks for."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dialforge.model.tools import ToolSpec


def domain_slug(name: str) -> str:
    """A domain name as it appears in ids and file names: lower case, runs of other characters as one ``-``."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.casefold()).split()) or "domain"


class Domain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    seed_tools: list[ToolSpec] = Field(default_factory=list, description="real tools that inspire the generated ones")
