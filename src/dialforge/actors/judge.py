"""The judge: whether a finished dialogue is kept (docs/method.md, "Validation").

A model reads everything a careful reviewer needs: the whole conversation with its tool calls and
results, every task (marking which the user completed) with its rubric items, the tools, the agent's
policy and, for executed dialogues (SQL or Python tools), the verification (check outcomes and the row
diff). It judges semantics first, classes each rubric item Critical / Structural / NonCritical / InvalidRubric (an item
wrong in itself, which is neither met nor failed), and gives a verdict. Then deterministic rules apply,
because some facts need no opinion:

1. a failed Critical item makes the dialogue invalid, whatever the model's verdict;
2. a failed check makes it invalid (execution-grounded evidence beats the model), and the
   reasoning is extended to name the check; after a tool error the model decides instead (the change may have
   failed for a reason the assistant reported well), except for a check asserting that a refused change did
   not happen (a goal that cannot be done as asked): the change was made, and nothing excuses that;
3. ``checks`` maps each check description to whether it passed, and ``verification`` keeps the
   whole verification record.

A ``ModelError`` propagates: the engine records the dialogue as failed to judge.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from typing import Any, ClassVar, get_args

import orjson

from dialforge.actors.reply_checks import copied_text
from dialforge.environments.base import CheckOutcome, TableDiff, Verification, is_error_text
from dialforge.environments.combined import played_tools
from dialforge.generation_checks.tools import describe_tools
from dialforge.llm.completion import RequestOptions, ResponseSchema
from dialforge.llm.protocol import ChatModel
from dialforge.llm.reply_limits import ITEM_CHARS, JUDGED_ITEMS, LONG_TEXT_CHARS
from dialforge.model.dialogue import DialogueState, Judgment, RubricCategory, RubricVerdict
from dialforge.model.messages import AssistantMessage, Message, SystemMessage, ToolMessage, UserMessage
from dialforge.model.tasks import Task
from dialforge.prompts import render_prompt, render_section

JUDGMENT_FORMAT = ResponseSchema(
    name="dialogue_judgment",
    json_schema={
        "type": "object",
        # Reasoning comes first so that a model decoding in property order thinks before it classes and decides.
        "properties": {
            "reasoning": {"type": "string", "maxLength": LONG_TEXT_CHARS},
            "items": {
                "type": "array",
                "maxItems": JUDGED_ITEMS,
                "items": {
                    "anyOf": [
                        {  # an item the conversation met or failed
                            "type": "object",
                            "properties": {
                                "item": {"type": "string", "maxLength": ITEM_CHARS},
                                "category": {"enum": [c for c in get_args(RubricCategory) if c != "InvalidRubric"]},
                                "passed": {"type": "boolean"},
                            },
                            "required": ["item", "category", "passed"],
                            "additionalProperties": False,
                        },
                        {  # an item wrong in itself: nothing to meet, so no passed
                            "type": "object",
                            "properties": {
                                "item": {"type": "string", "maxLength": ITEM_CHARS},
                                "category": {"const": "InvalidRubric"},
                            },
                            "required": ["item", "category"],
                            "additionalProperties": False,
                        },
                    ]
                },
            },
            "judgment": {"enum": ["valid", "invalid"]},
        },
        "required": ["reasoning", "items", "judgment"],
        "additionalProperties": False,
    },
)

TOOL_RESULT_CHARS = 3000
"""A tool result longer than this is cut in the prompt: enough to check facts, not a whole table dump."""
DIFF_ROWS_SHOWN = 10
"""Rows shown per table and kind of change; the counts are always complete (up to the diff's own cap)."""
SOURCE_CHARS = 300
"""A check as written is cut to this in the prompt (a Python check's arguments can hold a list of actions)."""


class Judge:
    """The validation actor; one model call per dialogue, then the deterministic rules."""

    prompts: ClassVar[tuple[str, ...]] = ("judge", "judge_parts")
    """The packaged prompts its request is made of."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model

    async def judge(self, state: DialogueState, *, verification: Verification | None = None) -> Judgment:
        prompt = render_prompt(
            "judge",
            domain=state.domain,
            setting=_setting(state),
            policy=_policy(state),
            tools=describe_tools(state.tools) or _part("no_tools"),
            tasks=render_tasks(state, verification),
            conversation=_conversation(state),
            verification=render_verification(verification) if verification is not None else _part("no_verification"),
        )
        options = RequestOptions(
            response_format=judgment_format(judged_items(state)),
            seed=state.seed,
            check=copied_text("reasoning"),
        )
        completion = await self.model.complete([UserMessage(content=prompt)], options)
        tool_errors = sum(is_error_text(m.content) for m in state.messages if isinstance(m, ToolMessage))
        unchanged = {check.source for task in state.tasks if task.checks_unchanged for check in task.checks}
        return apply_rules(completion.parsed, verification, tool_errors=tool_errors, unchanged_checks=unchanged)


def judged_items(state: DialogueState) -> list[str]:
    """The rubric items the judge is shown and must class, as listed: ``"T1.C2 The loan is renewed"``."""
    return [
        f"{label} {text}"
        for index, task in enumerate(state.tasks)
        if _status(state, index)[1]
        for label, text in rubric_items(task, index + 1)
    ]


def judgment_format(items: Sequence[str]) -> ResponseSchema:
    """``JUDGMENT_FORMAT`` for one dialogue: exactly one verdict per rubric item shown, in the order shown, its
    ``item`` that item as listed. A server decoding under the schema writes the items' words for the model, so
    it can neither class items that were not shown (the prompt example's ``T1.C1 ...``) nor leave one out nor
    repeat itself in them; an unconstrained reply that does is a schema mismatch, sent back once with the
    reason, and the dialogue fails to be judged if the repair does it again."""
    schema = copy.deepcopy(JUDGMENT_FORMAT.json_schema)
    general = schema["properties"]["items"]["items"]
    schema["properties"]["items"] = (
        {
            "type": "array",
            "prefixItems": [_verdict_on(general, item) for item in items],
            "minItems": len(items),  # with maxItems, no item beyond the listed ones: llama.cpp's grammar
            # builder refuses the equivalent "items": false ("schema must be an object")
            "maxItems": len(items),
        }
        if items
        else {"type": "array", "maxItems": 0}
    )
    return JUDGMENT_FORMAT.model_copy(update={"json_schema": schema})


def _verdict_on(general: dict[str, Any], item: str) -> dict[str, Any]:
    """The schema of the verdict on one item: any verdict ``general`` allows, naming exactly that item."""
    verdict = copy.deepcopy(general)
    for form in verdict["anyOf"]:
        form["properties"]["item"] = {"const": item}
    return verdict


def apply_rules(
    answer: dict[str, Any],
    verification: Verification | None,
    *,
    tool_errors: int = 0,
    unchanged_checks: Collection[str] = (),
) -> Judgment:
    """The model's answer (already schema-checked by the client) with the deterministic rules applied.

    ``unchanged_checks`` are the SQL of checks asserting that a refused change did not happen
    (``Task.checks_unchanged``): one failing means the assistant made a change its instructions or the data
    refuse, which no tool error excuses.
    """
    items = [RubricVerdict.model_validate(item) for item in answer["items"]]
    verdict = answer["judgment"]
    reasoning = answer["reasoning"].strip()
    failed_critical = [item.item for item in items if item.category == "Critical" and item.passed is False]
    if failed_critical and verdict == "valid":
        verdict = "invalid"
        reasoning += "\n\nInvalid by rule: a Critical rubric item failed: " + "; ".join(failed_critical) + "."
    checks: dict[str, bool] = {}
    if verification is not None:
        for outcome in verification.checks:
            checks[outcome.description] = checks.get(outcome.description, True) and outcome.passed
        failed_checks = [o for o in verification.checks if not o.passed]
        refused = [_outcome(o) for o in failed_checks if o.source in unchanged_checks]
        failed = [_outcome(o) for o in failed_checks if o.source not in unchanged_checks]
        if refused:
            verdict = "invalid"
            reasoning += "\n\nInvalid by execution: a change the goal's policy or data refuses was made: " + "; ".join(
                refused
            )
        if failed and not tool_errors:
            verdict = "invalid"
            reasoning += "\n\nInvalid by execution: failed check on the final data: " + "; ".join(failed)
        elif failed:
            # docs/method.md, "Validation": a tool that returned an error, reported accurately with a sensible
            # next step, is a valid dialogue; the check then fails because the change never happened. The judge decides.
            reasoning += "\n\nChecks failed after a tool error (judged on how the error was handled): " + "; ".join(
                failed
            )
    return Judgment(
        judgment=verdict,
        reasoning=reasoning,
        items=items,
        checks=checks,
        verification=verification.model_dump(mode="json") if verification is not None else None,
    )


def _outcome(outcome: CheckOutcome) -> str:
    return f"{outcome.description!r} ({_source(outcome)}: {outcome.detail})"


def _source(outcome: CheckOutcome) -> str:
    """The check as written, cut to ``SOURCE_CHARS``."""
    source = outcome.source
    return source if len(source) <= SOURCE_CHARS else source[: SOURCE_CHARS - 1] + "…"


def _part(section: str) -> str:
    """A piece of the request that depends on the dialogue."""
    return render_section("judge_parts", section)


def _setting(state: DialogueState) -> str:
    """How the conversation came about: how the person asked, whether the tools were simulated (the
    environment the dialogue ran in says so: the task-oriented baseline runs a domain's database too; a model
    played the tools a continued conversation brought), and which messages were an existing conversation it
    continues."""
    asked = "direct_request" if state.mode == "task" else "step_by_step"
    tools = "simulated_tools" if state.env.get("kind", "simulated") == "simulated" else "executed_tools"
    parts = [_part(asked), _part(tools)]
    if state.history_length:
        parts.append(render_section("judge_parts", "continued", count=state.history_length))
    played = played_tools(state.env)
    if tools == "executed_tools" and played:
        parts.append(render_section("judge_parts", "brought_tools", names=", ".join(played)))
    return "\n\n".join(parts)


def _policy(state: DialogueState) -> str:
    """What the agent was told: its system prompt when there is one (it holds the policy), else the policy."""
    system = "\n\n".join(m.content for m in state.messages if isinstance(m, SystemMessage)).strip()
    return system or state.policy.strip() or _part("no_instructions")


def render_tasks(state: DialogueState, verification: Verification | None = None) -> str:
    """Every task with its status and the rubric items to class; a task never reached is shown but not itemised.
    A task the person said was done whose checks failed on the final state is shown as such, not as completed."""
    if not state.tasks:
        return _part("no_tasks")
    failed = failed_tasks(state, verification)
    blocks = []
    for index, task in enumerate(state.tasks):
        status, reached = _status(state, index, checks_failed=index in failed)
        lines = [f"### Task {index + 1} ({task.difficulty}): {status}", "", f"Goal: {task.description}"]
        if task.kind != "ordinary":
            lines.append(_part(f"kind_{task.kind}"))
        if reached:
            lines += _task_items(task, index + 1)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def failed_tasks(state: DialogueState, verification: Verification | None) -> set[int]:
    """The indexes of the tasks with a check that failed: the outcomes come in the order of the tasks' checks."""
    if verification is None:
        return set()
    outcomes = iter(verification.checks)
    return {
        index
        for index, task in enumerate(state.tasks)
        if not all([outcome.passed for _, outcome in zip(task.checks, outcomes, strict=False)])
    }


def _status(state: DialogueState, index: int, *, checks_failed: bool = False) -> tuple[str, bool]:
    """How far the task got, and whether the person brought it up (only then are its items judged)."""
    if state.mode == "task":
        return "given to the assistant as a direct request", True
    if index < state.tasks_done and checks_failed:
        return "the person said it was done, but its checks failed on the final state", True
    if index < state.tasks_done:
        return "completed: the person said it was done", True
    if index == state.tasks_done:
        return "open: the conversation ended before the person said it was done", True
    return "not reached: the person never brought it up; not judged", False


def _rubric_groups(task: Task) -> list[tuple[str, str, list[str]]]:
    """The rubric's items by group (title, label letter, entries), or the whole goal as one item when there is
    no rubric."""
    rubric = task.rubric
    groups = [
        ("Success criteria", "C", rubric.success_criteria),
        ("Expected tool pattern", "P", rubric.expected_tool_pattern),
        ("Checkpoints", "K", rubric.checkpoints),
    ]
    if not any(entries for _, _, entries in groups):
        groups = [("The goal as a whole", "G", [_part("whole_goal")])]
    return [(title, kind, list(entries)) for title, kind, entries in groups if entries]


def rubric_items(task: Task, number: int) -> list[tuple[str, str]]:
    """Each rubric item of the ``number``-th task as (label, text): ``("T1.C2", "The loan is renewed")``."""
    return [
        (f"T{number}.{kind}{i}", entry)
        for _, kind, entries in _rubric_groups(task)
        for i, entry in enumerate(entries, start=1)
    ]


def _task_items(task: Task, number: int) -> list[str]:
    """The rubric's items under their group titles. An item is what the assistant must achieve; the subtasks
    are the person's own requests (some are their own acts, such as saying yes), so they are context, never
    items."""
    items = iter(rubric_items(task, number))
    lines = []
    if task.subtasks:
        lines += ["The person's requests, in order (context, not items):", *(f"- {s}" for s in task.subtasks)]
    for title, _, entries in _rubric_groups(task):
        lines.append(f"{title}:")
        lines += [f"- {label} {entry}" for label, entry in (next(items) for _ in entries)]
    return lines


def _conversation(state: DialogueState) -> str:
    """The transcript, with the person's closing words, which the engine keeps apart from the messages."""
    text = render_conversation(state.conversation) or _part("no_messages")
    if state.closing_message:
        closing = _indented(state.closing_message.strip())
        text += f"\n[{len(state.conversation) + 1}] USER (closing words, after the last task was done): {closing}"
    return text


def render_conversation(messages: Sequence[Message]) -> str:
    """The messages numbered, one block each; tool calls under their message, results clipped."""
    lines = []
    for number, message in enumerate(messages, start=1):
        if isinstance(message, AssistantMessage):
            text = (message.content or "").strip()
            lines.append(f"[{number}] ASSISTANT: {_indented(text) if text else '(no text)'}")
            lines += [
                f"    -> call {call.name} {call.function.arguments} (id {call.id})" for call in message.tool_calls or ()
            ]
        elif isinstance(message, ToolMessage):
            lines.append(
                f"[{number}] TOOL RESULT of {message.name} (id {message.tool_call_id}): {_clip(message.content)}"
            )
        else:
            lines.append(f"[{number}] {message.role.upper()}: {_indented(message.content.strip())}")
    return "\n".join(lines)


def render_verification(verification: Verification) -> str:
    """The checks' outcomes and a compact row diff: changed columns only for updates."""
    if verification.checks:
        lines = ["Checks, run on the data as the conversation left it:"]
        lines += [
            f"- {'PASSED' if o.passed else 'FAILED'}: {o.description} ({_source(o)}; {o.detail})"
            for o in verification.checks
        ]
    else:
        lines = ["Checks: none were defined for these tasks."]
    lines.append("")
    if verification.diff.empty:
        lines.append("Rows changed: none; the database ends as it began.")
        return "\n".join(lines)
    lines.append("Rows changed by the conversation:")
    for table, diff in verification.diff.tables.items():
        if not diff.empty:
            lines += _table_changes(table, diff)
    return "\n".join(lines)


def _table_changes(table: str, diff: TableDiff) -> list[str]:
    counts = [f"{len(rows)} {kind}" for kind, rows in _kinds(diff) if rows]
    lines = [f"{table}: {', '.join(counts)}"]
    for kind, rows in _kinds(diff):
        for row in rows[:DIFF_ROWS_SHOWN]:
            if kind == "updated":
                before, after = row["before"], row["after"]
                changed = ", ".join(
                    f"{column}: {_json(before.get(column))} -> {_json(value)}"
                    for column, value in after.items()
                    if before.get(column) != value
                )
                lines.append(f"  ~ updated {_json(row['key'])}: {changed}")
            else:
                lines.append(f"  {'+' if kind == 'inserted' else '-'} {kind} {_json(row)}")
        if len(rows) > DIFF_ROWS_SHOWN:
            lines.append(f"  ... and {len(rows) - DIFF_ROWS_SHOWN} more {kind}")
    return lines


def _kinds(diff: TableDiff) -> list[tuple[str, list[dict[str, Any]]]]:
    return [("inserted", diff.inserted), ("updated", diff.updated), ("deleted", diff.deleted)]


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _indented(text: str) -> str:
    return text.replace("\n", "\n    ")


def _clip(text: str) -> str:
    if len(text) <= TOOL_RESULT_CHARS:
        return _indented(text)
    return _indented(text[:TOOL_RESULT_CHARS]) + f" [... {len(text) - TOOL_RESULT_CHARS} more characters not shown]"
