"""A domain: what the generation stages are asked to imagine tools, users and tasks for."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dialforge.model.tools import ToolSpec


class Domain(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    seed_tools: list[ToolSpec] = Field(default_factory=list, description="real tools that inspire the generated ones")
