"""Chat models: the protocol, the OpenAI-compatible HTTP client and the offline models."""

from dialforge.llm.accounting import Price, UsageLedger
from dialforge.llm.completion import ROLES, Completion, ResponseSchema, Role, ToolChoice
from dialforge.llm.errors import ModelError, ModelOutputError, ModelRequestRejected, ModelUnavailable
from dialforge.llm.protocol import ChatModel

__all__ = [
    "ROLES",
    "ChatModel",
    "Completion",
    "ModelError",
    "ModelOutputError",
    "ModelRequestRejected",
    "ModelUnavailable",
    "Price",
    "ResponseSchema",
    "Role",
    "ToolChoice",
    "UsageLedger",
]
