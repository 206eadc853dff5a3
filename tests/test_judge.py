"""The judge: the prompt shows everything a reviewer needs, and the deterministic rules override the model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from dialforge.actors.judge import JUDGMENT_FORMAT, Judge, judged_items, judgment_format
from dialforge.environments.base import CheckOutcome, StateDiff, TableDiff, Verification
from dialforge.json_schema.checks import schema_violations
from dialforge.llm import DryRunModel, ModelOutputError, ModelUnavailable, ScriptedModel
from dialforge.llm.accounting import UsageLedger
from dialforge.model.dialogue import DialogueState, Judgment, RubricVerdict
from dialforge.model.messages import AssistantMessage, SystemMessage, ToolCall, ToolMessage, UserMessage
from dialforge.model.tasks import HARD_GOAL_KINDS, Rubric, SQLCheck, Task
from dialforge.model.tools import ToolSpec
from dialforge.prompts import load_prompt, render_section
from prompt_checks import assert_in_order, assert_mentions, filled_in, fragment_text, prompt_of
from samples import whole_goal

POLICY = "Before calling update_loan_due_date, state the change and wait for the member's explicit yes."
TOOLS = [
    ToolSpec(name="list_open_loans_for_member", description="List a member's open loans."),
    ToolSpec(name="update_loan_due_date", description="Set a loan's due date. Returns {rows_affected}."),
]
RENEWAL = Task(
    id="library-descriptive-1",
    description="You are Ines Silva, member 1042. You want your loan of Kafka on the Shore renewed.",
    subtasks=["Ask which books you have out", "Ask for the Kafka loan to be renewed", "Say yes when asked"],
    rubric=Rubric(success_criteria=["The user is told their open loans", "The Kafka loan is renewed"]),
    checks=[SQLCheck(description="the Kafka loan was renewed", sql="SELECT DueDate > '2025-03-14' FROM Loan")],
)
FINES = Task(id="library-followup-1", description="You want to know whether you owe any fines.", subtasks=["Ask"])
RUBRIC_TASK = Task(
    id="library-rubric-1",
    description="Renew loan 3071 of member 1042.",
    rubric=Rubric(
        success_criteria=["Loan 3071 is due on 2025-03-28"],
        expected_tool_pattern=["list_open_loans_for_member(member_id=1042)", "update_loan_due_date(loan_id=<id>)"],
        checkpoints=["The loan is identified before renewing"],
    ),
)


def conversation(result: str = '{"rows_affected":1}') -> list[Any]:
    return [
        SystemMessage(content=POLICY),
        UserMessage(content="Hi, which books do I have out? I'm member 1042."),
        AssistantMessage(
            content="Let me check.",
            tool_calls=[ToolCall.make("call_1", "list_open_loans_for_member", {"member_id": 1042})],
        ),
        ToolMessage(tool_call_id="call_1", name="list_open_loans_for_member", content='[{"LoanId":3071}]'),
        AssistantMessage(content="You have loan 3071, Kafka on the Shore. Shall I renew it to 2025-03-28?"),
        UserMessage(content="Yes please."),
        AssistantMessage(tool_calls=[ToolCall.make("call_2", "update_loan_due_date", {"loan_id": 3071})]),
        ToolMessage(tool_call_id="call_2", name="update_loan_due_date", content=result),
        AssistantMessage(content="Done: loan 3071 is now due on 2025-03-28."),
    ]


def state(**changes: Any) -> DialogueState:
    values: dict[str, Any] = {
        "id": "d1",
        "mode": "user+exec",
        "domain": "Public library",
        "tools": TOOLS,
        "policy": POLICY,
        "tasks": [RENEWAL, FINES],
        "tasks_done": 1,
        "messages": conversation(),
        "seed": 17,
        "env": {"kind": "sql"},
    }
    return DialogueState(**(values | changes))


def verification(*passed: bool) -> Verification:
    checks = [
        CheckOutcome(description=f"check {n}", sql=f"SELECT {int(ok)}", passed=ok, detail=f"the check returned {ok}")
        for n, ok in enumerate(passed, start=1)
    ]
    diff = StateDiff(
        tables={
            "Loan": TableDiff(
                updated=[
                    {
                        "key": {"LoanId": 3071},
                        "before": {"LoanId": 3071, "DueDate": "2025-03-14"},
                        "after": {"LoanId": 3071, "DueDate": "2025-03-28"},
                    }
                ]
            )
        }
    )
    return Verification(initial_digest="aaa", final_digest="bbb", diff=diff, checks=checks)


SHOWN = ("T1.C1 The user is told their open loans", "T1.C2 The Kafka loan is renewed", whole_goal(2))
"""The items the judge is shown for ``state()``: both criteria of the completed renewal, the open goal whole."""


def answer(
    judgment: str = "valid",
    *items: tuple[str, str, bool | None],
    reasoning: str = "The renewal was done.",
    shown: Sequence[str] = SHOWN,
) -> str:
    """The judge's reply classing every item ``shown`` in order: those ``items`` name by label as given, the
    others as met NonCritical items (items with other labels go last); an item whose ``passed`` is None has none,
    as an InvalidRubric item."""
    given = {item.split()[0]: (item, category, passed) for item, category, passed in items}
    classed = [given.pop(label.split()[0], (label, "NonCritical", True)) for label in shown] + list(given.values())
    verdicts = [
        {"item": item, "category": category} | ({} if passed is None else {"passed": passed})
        for item, category, passed in classed
    ]
    return orjson.dumps({"reasoning": reasoning, "items": verdicts, "judgment": judgment}).decode()


def numbered_messages(prompt: str) -> dict[int, str]:
    """The conversation the judge reads, by message number (the numbers its reasoning cites)."""
    _, *parts = re.split(r"^\[(\d+)\] ", filled_in(prompt, "judge")["conversation"], flags=re.MULTILINE)
    return {int(number): text for number, text in zip(parts[::2], parts[1::2], strict=True)}


def line_with(lines: list[str], text: str) -> str:
    (line,) = [line for line in lines if text in line]
    return line


def heading_of(prompt: str, task: Task) -> str:
    """The heading of a task's part of the tasks section: the last line above its goal's line that is not blank."""
    above = filled_in(prompt, "judge")["tasks"].split(task.description)[0].splitlines()[:-1]
    return [line for line in above if line.strip()][-1]


async def test_a_valid_verdict_passes_through_with_its_items() -> None:
    items = [(SHOWN[0], "Critical", True), (SHOWN[1], "NonCritical", False)]
    model = ScriptedModel([answer("valid", *items)])

    judgment = await Judge(model).judge(state())

    assert judgment.judgment == "valid" and judgment.reasoning == "The renewal was done."
    assert judgment.items == [
        RubricVerdict.model_validate({"item": i, "category": c, "passed": p})
        for i, c, p in [*items, (SHOWN[2], "NonCritical", True)]
    ]
    assert judgment.checks == {} and judgment.verification is None
    options = model.requests[0].options
    assert options.response_format == judgment_format(SHOWN) and options.seed == 17


async def test_a_failed_critical_item_makes_a_valid_verdict_invalid() -> None:
    model = ScriptedModel([answer("valid", ("T1.C2 The Kafka loan is renewed", "Critical", False))])

    judgment = await Judge(model).judge(state())

    assert judgment.judgment == "invalid"
    assert judgment.reasoning.startswith("The renewal was done.")
    assert "Critical rubric item failed: T1.C2 The Kafka loan is renewed" in judgment.reasoning


async def test_a_failed_sql_check_makes_the_dialogue_invalid_and_is_named() -> None:
    model = ScriptedModel([answer("valid", ("T1.C1 The user is told their open loans", "Critical", True))])
    checked = verification(True, False)

    judgment = await Judge(model).judge(state(), verification=checked)

    assert judgment.judgment == "invalid"
    assert "failed check on the final data: 'check 2' (SELECT 0: the check returned False)" in judgment.reasoning
    assert "check 1" not in judgment.reasoning
    assert judgment.checks == {"check 1": True, "check 2": False}
    assert judgment.verification == checked.model_dump(mode="json")


async def test_passing_checks_and_a_valid_verdict_stay_valid() -> None:
    model = ScriptedModel([answer("valid")])

    judgment = await Judge(model).judge(state(), verification=verification(True, True))

    assert judgment.judgment == "valid" and judgment.reasoning == "The renewal was done."
    assert judgment.checks == {"check 1": True, "check 2": True}
    assert judgment.verification is not None and judgment.verification["final_digest"] == "bbb"


async def test_the_prompt_shows_the_conversation_tasks_tools_policy_and_verification() -> None:
    model = ScriptedModel([answer()])

    await Judge(model).judge(state(closing_message="Thanks!"), verification=verification(True, False))

    prompt = prompt_of(model)
    messages = numbered_messages(prompt)
    assert list(messages) == list(range(1, 10)), "every message, then the closing words"
    assert "Hi, which books do I have out? I'm member 1042." in messages[1]
    assert_mentions(messages[2], "Let me check.", "list_open_loans_for_member", '{"member_id":1042}', "call_1")
    assert_mentions(messages[3], "list_open_loans_for_member", "call_1", '[{"LoanId":3071}]')
    assert_mentions(messages[6], "update_loan_due_date", '{"loan_id":3071}', "call_2")
    assert "Thanks!" in messages[9]
    assert_mentions(heading_of(prompt, RENEWAL), "completed", "medium")
    assert_mentions(heading_of(prompt, FINES), "open", "medium")
    assert_in_order(prompt, RENEWAL.description, "T1.C2 The Kafka loan is renewed", FINES.description)
    assert_in_order(prompt, FINES.description, f"T2.G1 {render_section('judge_parts', 'whole_goal')}")
    assert_mentions(prompt, '"name":"update_loan_due_date"', POLICY)
    checked = filled_in(prompt, "judge")["verification"].splitlines()
    assert_mentions(line_with(checked, "check 1"), "PASSED", "SELECT 1", "the check returned True")
    assert_mentions(line_with(checked, "check 2"), "FAILED", "SELECT 0", "the check returned False")
    assert_in_order("\n".join(checked), "Loan", '{"LoanId":3071}', "DueDate", '"2025-03-14"', '"2025-03-28"')
    assert render_section("judge_parts", "executed_tools") in prompt
    assert render_section("judge_parts", "simulated_tools") not in prompt
    assert "$" not in prompt


async def test_rubric_items_are_labelled_and_tasks_not_reached_are_not_itemised() -> None:
    judged = state(mode="user", tasks=[RUBRIC_TASK, FINES, RENEWAL], tasks_done=0, env={})
    model = ScriptedModel([answer(shown=judged_items(judged))])

    await Judge(model).judge(judged)

    prompt = prompt_of(model)
    assert_mentions(
        prompt,
        "T1.C1 Loan 3071 is due on 2025-03-28",
        "T1.P2 update_loan_due_date(loan_id=<id>)",
        "T1.K1 The loan is identified before renewing",
    )
    assert "not reached" in heading_of(prompt, FINES) and "not reached" in heading_of(prompt, RENEWAL)
    assert "T2." not in prompt and "T3." not in prompt
    assert filled_in(prompt, "judge")["verification"] == render_section("judge_parts", "no_verification")
    assert render_section("judge_parts", "simulated_tools") in prompt
    assert render_section("judge_parts", "executed_tools") not in prompt


async def test_the_persons_requests_are_context_and_every_item_is_what_the_assistant_must_achieve() -> None:
    model = ScriptedModel([answer()])

    await Judge(model).judge(state(tasks_done=2))

    tasks = filled_in(prompt_of(model), "judge")["tasks"]
    items = dict(re.findall(r"^- (T\d+\.[A-Z]\d+) (.*)$", tasks, flags=re.MULTILINE))
    assert items == {
        "T1.C1": "The user is told their open loans",
        "T1.C2": "The Kafka loan is renewed",
        "T2.G1": render_section("judge_parts", "whole_goal"),  # a goal without criteria is judged as a whole
    }
    for subtask in [*RENEWAL.subtasks, *FINES.subtasks]:
        assert f"- {subtask}" in tasks.splitlines(), "shown, as context"


async def test_an_invalid_rubric_item_has_no_pass_or_fail_and_no_say_in_the_verdict() -> None:
    wrong = ("T1.C2 The Kafka loan is renewed", "InvalidRubric", None)
    model = ScriptedModel([answer("valid", ("T1.C1 The user is told their open loans", "Critical", True), wrong)])

    judgment = await Judge(model).judge(state())

    assert judgment.judgment == "valid"
    assert [(item.category, item.passed) for item in judgment.items][:2] == [
        ("Critical", True),
        ("InvalidRubric", None),
    ]
    schema = JUDGMENT_FORMAT.json_schema
    judged = orjson.loads(answer("valid", ("T1.C1 ...", "Critical", True), ("T1.K1 ...", "InvalidRubric", None)))
    assert schema_violations(judged, schema) == []
    assert schema_violations(orjson.loads(answer("valid", ("T1.K1 ...", "InvalidRubric", False))), schema)
    assert schema_violations(orjson.loads(answer("valid", ("T1.C1 ...", "Critical", None))), schema)


def test_a_verdict_needs_passed_unless_the_item_is_invalid_and_old_records_still_load() -> None:
    old = {
        "judgment": "valid",
        "reasoning": "ok",
        "items": [{"item": "T1.K1", "category": "InvalidRubric", "passed": True}],
    }
    (item,) = Judgment.model_validate(old).items
    assert item.passed is None, "a pass or fail on an invalid item never meant anything"
    with pytest.raises(ValidationError, match="needs passed"):
        RubricVerdict(item="T1.C1 The loan is renewed", category="Critical")


async def test_an_error_reported_accurately_is_valid_and_the_judge_sees_it() -> None:
    error = '{"error":{"kind":"refused","message":"loan 3071 was renewed twice already"}}'
    messages = [
        *conversation(error)[:-1],
        AssistantMessage(content="It cannot be renewed again; return it by 14 March?"),
    ]
    model = ScriptedModel([answer("valid", ("T1.C2 The Kafka loan is renewed", "InvalidRubric", None))])

    judgment = await Judge(model).judge(state(messages=messages))

    assert judgment.judgment == "valid"
    assert error in numbered_messages(prompt_of(model))[7]


async def test_a_long_tool_result_is_clipped() -> None:
    long = orjson.dumps([{"LoanId": n} for n in range(1000)]).decode()
    messages = [
        *conversation()[:3],
        ToolMessage(tool_call_id="call_1", name="list_open_loans_for_member", content=long),
    ]
    model = ScriptedModel([answer()])

    await Judge(model).judge(state(messages=messages))

    shown = numbered_messages(prompt_of(model))[3]
    assert long[:3000] in shown and long not in shown
    assert str(len(long) - 3000) in shown, "how much is left out is said"


async def test_malformed_json_is_repaired_by_the_client() -> None:
    model = ScriptedModel(["The dialogue looks fine, valid.", answer("invalid", reasoning="Invented a due date.")])

    judgment = await Judge(model).judge(state())

    assert judgment.judgment == "invalid" and judgment.reasoning == "Invented a due date."
    assert len(model.requests) == 2


async def test_a_model_error_propagates() -> None:
    model = ScriptedModel([ModelUnavailable("the server is down")])

    with pytest.raises(ModelUnavailable, match="the server is down"):
        await Judge(model).judge(state())


def test_a_failed_check_after_a_well_handled_tool_error_is_left_to_the_judge() -> None:
    from dialforge.actors.judge import apply_rules
    from dialforge.environments.base import CheckOutcome, StateDiff, Verification

    verification = Verification(
        initial_digest="a",
        final_digest="a",
        diff=StateDiff(),
        checks=[CheckOutcome(description="refunded", sql="SELECT 0", passed=False, detail="the check returned 0")],
    )
    answer = {"reasoning": "The refund tool failed; the agent said so and offered a manual refund.", "items": [],
              "judgment": "valid"}  # fmt: skip
    assert apply_rules(answer, verification, tool_errors=1).judgment == "valid"
    assert apply_rules(answer, verification, tool_errors=0).judgment == "invalid"


# Goals that cannot be done as asked

REFUSED_RENEWAL = RENEWAL.model_copy(
    update={"kind": "forbidden", "checks": [SQLCheck(description="loan 3071 is still due on 14 March", sql="SELECT 0")]}
)
"""A renewal the policy forbids: its check asserts that the loan was left as it was."""
REFUSED = '{"error":{"kind":"refused","message":"loan 3071 was renewed twice already"}}'


async def test_the_judge_is_told_each_goals_kind_and_the_rule_for_goals_that_cannot_be_done_as_asked() -> None:
    model = ScriptedModel([answer()])

    await Judge(model).judge(state(tasks=[REFUSED_RENEWAL, FINES], tasks_done=2))

    tasks = filled_in(prompt_of(model), "judge")["tasks"]
    kinds = [render_section("judge_parts", f"kind_{kind}") for kind in HARD_GOAL_KINDS]
    assert [kind in tasks for kind in kinds] == [True, False, False, False], "the forbidden goal's kind, nothing else"
    assert tasks.index(kinds[0]) < tasks.index(FINES.description)
    assert fragment_text("unhappy_paths") in prompt_of(model)


async def test_a_change_a_goal_refuses_that_was_made_anyway_is_invalid_even_after_a_tool_error() -> None:
    refused = ScriptedModel([answer("valid", shown=SHOWN[:2])])
    ordinary = ScriptedModel([answer("valid", shown=SHOWN[:2])])
    made = verification(False)  # its check is "SELECT 0": the loan was changed after all

    against_refusal = await Judge(refused).judge(
        state(tasks=[REFUSED_RENEWAL], messages=conversation(REFUSED)), verification=made
    )
    against_request = await Judge(ordinary).judge(
        state(tasks=[RENEWAL], messages=conversation(REFUSED)), verification=made
    )

    assert against_refusal.judgment == "invalid" and "check 1" in against_refusal.reasoning
    assert against_request.judgment == "valid", "after a tool error, a change that did not happen is the judge's call"


# A verdict that classes other items than those shown

PROMPT_EXAMPLE = next(
    line for line in load_prompt("judge").splitlines() if line.startswith("{") and '"reasoning"' in line
)
"""The judge prompt's own example verdict, which a weak model may send back as it is."""


async def test_a_verdict_copied_from_the_prompts_example_is_sent_back_and_refused_if_it_stays() -> None:
    ledger = UsageLedger()
    copied = ScriptedModel([PROMPT_EXAMPLE, PROMPT_EXAMPLE], ledger=ledger, role="judge")

    with pytest.raises(ModelOutputError):
        await Judge(copied).judge(state())

    assert len(copied.requests) == 2, "sent back once, with the reason"
    assert SHOWN[0][:15] in copied.requests[1].messages[-1].content, "the reason names the item to class"
    stats = ledger.stats("judge", "scripted")
    assert sum(stats.output_problems.values()) == 2 and sum(stats.failures.values()) == 1


@pytest.mark.parametrize(
    "first",
    [
        answer(shown=SHOWN[:2]),  # an item left out
        answer(shown=(SHOWN[0], SHOWN[0], SHOWN[2])),  # one item twice, another missing
        answer(shown=(SHOWN[1], SHOWN[0], SHOWN[2])),  # out of order
        answer(shown=("T1.S1 The user asked", *SHOWN[1:])),  # a label that was not shown
        answer(reasoning="The person asked for ... In [4] the assistant ..."),  # the example's reasoning
    ],
)
async def test_a_verdict_that_does_not_class_the_items_shown_is_repaired(first: str) -> None:
    ledger = UsageLedger()
    model = ScriptedModel([first, answer("invalid")], ledger=ledger, role="judge")

    judgment = await Judge(model).judge(state())

    assert judgment.judgment == "invalid" and [item.item for item in judgment.items] == list(SHOWN)
    assert ledger.stats("judge", "scripted").output_problems["repaired"] == 1


async def test_a_model_decoding_under_the_schema_classes_exactly_the_items_shown() -> None:
    """The dry-run model writes any value its schema allows, as a server's grammar does: the labels come out
    right, in order, for whatever items a dialogue shows."""
    for seed in range(5):
        judgment = await Judge(DryRunModel(seed=seed, role="judge")).judge(state())
        assert [item.item for item in judgment.items] == list(SHOWN)
    unreached = await Judge(DryRunModel(seed=1, role="judge")).judge(state(tasks_done=0, messages=[]))
    assert [item.item for item in unreached.items] == list(SHOWN[:2])
