"""The data model: messages, tool specs, tasks, dialogues and usage (pydantic v2)."""

from dialforge.model.conversation import conversation_problems
from dialforge.model.dialogue import (
    Actor,
    Dialogue,
    DialogueState,
    DialogueStats,
    Judgment,
    Mode,
    RubricVerdict,
    Status,
)
from dialforge.model.domain import Domain
from dialforge.model.messages import (
    AssistantMessage,
    FunctionCall,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
    parse_messages,
    to_openai,
)
from dialforge.model.tasks import Difficulty, Rubric, SQLCheck, Task
from dialforge.model.tools import ToolSpec
from dialforge.model.usage import Usage, UsageByRole

__all__ = [
    "Actor",
    "AssistantMessage",
    "Dialogue",
    "DialogueState",
    "DialogueStats",
    "Difficulty",
    "Domain",
    "FunctionCall",
    "Judgment",
    "Message",
    "Mode",
    "Rubric",
    "RubricVerdict",
    "SQLCheck",
    "Status",
    "SystemMessage",
    "Task",
    "ToolCall",
    "ToolMessage",
    "ToolSpec",
    "Usage",
    "UsageByRole",
    "UserMessage",
    "conversation_problems",
    "parse_messages",
    "to_openai",
]
