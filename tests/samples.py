"""Test data used across test modules."""

from dialforge.llm import ResponseSchema

USER_TURN = ResponseSchema(
    name="user_turn",
    json_schema={
        "type": "object",
        "properties": {"user_message": {"type": "string"}, "is_task_complete": {"type": "boolean"}},
        "required": ["user_message", "is_task_complete"],
        "additionalProperties": False,
    },
)
"""The user simulator's reply (PAPER.md): a message and whether the whole task is done."""
