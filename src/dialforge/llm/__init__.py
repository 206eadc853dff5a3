"""Chat models: the protocol, the OpenAI-compatible HTTP client and the offline models."""

from dialforge.llm.accounting import Price, UsageLedger
from dialforge.llm.completion import ROLES, Completion, RequestOptions, ResponseSchema, Role, ToolChoice
from dialforge.llm.dry_run import DryRunModel
from dialforge.llm.errors import ModelError, ModelOutputError, ModelRequestRejected, ModelUnavailable
from dialforge.llm.openai_compatible import OpenAICompatible
from dialforge.llm.protocol import ChatModel
from dialforge.llm.role_models import RoleModels
from dialforge.llm.scripted import ScriptedModel, scripted_roles

__all__ = [
    "ROLES",
    "ChatModel",
    "Completion",
    "DryRunModel",
    "ModelError",
    "ModelOutputError",
    "ModelRequestRejected",
    "ModelUnavailable",
    "OpenAICompatible",
    "Price",
    "RequestOptions",
    "ResponseSchema",
    "Role",
    "RoleModels",
    "ScriptedModel",
    "ToolChoice",
    "UsageLedger",
    "scripted_roles",
]
