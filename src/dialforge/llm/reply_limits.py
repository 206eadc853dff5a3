"""How long a model's structured reply may be: the ``maxLength`` and ``maxItems`` the response schemas share.

Under a server's grammar these bound what a model can write, so a small model that starts repeating itself
("I'll be right back. I'll be right back. ...") stops at the limit instead of at ``max_tokens``; an unconstrained
reply is checked against them and sent back naming the field (``llm/structured.py``). Each limit is generous:
a good answer never comes near it, and the item checks of a stage keep their own, tighter rules (a question
over 300 characters is rejected by itself, not by the reply's schema).
"""

from __future__ import annotations

NAME_CHARS = 100
"""A name: a tool, a table, a column, the id of an earlier goal."""
ITEM_CHARS = 1000
"""One entry of a list, a sentence or two: a question, a rubric item, a subtask, a value to look up."""
DESCRIPTION_CHARS = 3000
"""What a tool does or what a goal asks for: a paragraph."""
MESSAGE_CHARS = 4000
"""A chat message, or the message of a simulated tool's error: a person's longest reasonable turn."""
CODE_CHARS = 4000
"""A SQL statement: a tool's or a check's."""
REASONING_CHARS = 8000
"""The judge's reasoning over a whole dialogue (about 2000 tokens): a paragraph per goal."""
RESULT_TEXT_CHARS = 4000
"""A text inside a simulated tool's result (a note, a product description) where its return schema sets none."""
LIST_ITEMS = 30
"""A list inside one item: a goal's subtasks, criteria, tools, fields to see, entities or checks."""
RESULT_ITEMS = 100
"""A list inside a simulated tool's result (the rows a search returns) where its return schema sets none."""
JUDGED_ITEMS = 200
"""The judge's verdicts: every rubric item of every goal of one dialogue."""
BATCH_ITEMS = 500
"""A reply's list of generated items (questions, tools, goals, return schemas): the most any stage asks for in
one request (``generation.questions_per_domain`` is at most 500)."""
