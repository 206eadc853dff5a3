"""How long a model's structured reply may be: the ``maxLength`` and ``maxItems`` the response schemas share.

Under a server's grammar these bound what a model can write, so a small model that starts repeating itself
("I'll be right back. I'll be right back. ...") stops at the limit instead of at ``max_tokens``; an unconstrained
reply is checked against them and sent back naming the field (``llm/structured.py``). Each limit is generous for
what the field holds, and the item checks of a stage keep their own, tighter rules (a question over 300
characters is rejected by itself, not by the reply's schema).

Every limit stays below ``GRAMMAR_REPETITIONS``: llama.cpp turns ``maxLength: n`` into a repetition of ``n``
characters in its grammar, and refuses a repetition of 2000 or more (HTTP 400 "failed to parse grammar") or, in
newer builds, leaves it unbounded; either way a larger limit would bound nothing where it matters.
"""

from __future__ import annotations

GRAMMAR_REPETITIONS = 2000
"""llama.cpp's ``MAX_REPETITION_THRESHOLD``: every ``maxLength`` and ``maxItems`` is below it."""
NAME_CHARS = 100
"""A name: a tool, a table, a column, the id of an earlier goal."""
ITEM_CHARS = 1000
"""One entry of a list, a sentence or two: a question, a rubric item, a subtask, a value to look up."""
DESCRIPTION_CHARS = 1500
"""What a tool does or what a goal asks for: a paragraph."""
LONG_TEXT_CHARS = 1900
"""The longest text a reply holds: a chat message, the judge's reasoning ("a few sentences"), a SQL statement,
a policy, a simulated tool's error message or a text in its result."""
LIST_ITEMS = 30
"""A list inside one item: a goal's subtasks, criteria, tools, fields to see, entities or checks."""
RESULT_ITEMS = 100
"""A list inside a simulated tool's result (the rows a search returns) where its return schema sets none."""
JUDGED_ITEMS = 200
"""The judge's verdicts: every rubric item of every goal of one dialogue."""
BATCH_ITEMS = 500
"""A reply's list of generated items (questions, tools, goals, return schemas): the most any stage asks for in
one request (``generation.questions_per_domain`` is at most 500)."""
