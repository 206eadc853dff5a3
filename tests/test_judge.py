"""The judge: the prompt shows everything a reviewer needs, and the deterministic rules override the model."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dialforge.actors.judge import JUDGMENT_FORMAT, Judge
from dialforge.environments.base import StateDiff, TableDiff
from dialforge.environments.sql.verification import CheckOutcome, Verification
from dialforge.llm import ModelUnavailable, ScriptedModel
from dialforge.model.dialogue import DialogueState, RubricVerdict
from dialforge.model.messages import AssistantMessage, SystemMessage, ToolCall, ToolMessage, UserMessage
from dialforge.model.tasks import Rubric, SQLCheck, Task
from dialforge.model.tools import ToolSpec

POLICY = "Before calling update_loan_due_date, state the change and wait for the member's explicit yes."
TOOLS = [
    ToolSpec(name="list_open_loans_for_member", description="List a member's open loans."),
    ToolSpec(name="update_loan_due_date", description="Set a loan's due date. Returns {rows_affected}."),
]
RENEWAL = Task(
    id="library-descriptive-1",
    description="You are Ines Silva, member 1042. You want your loan of Kafka on the Shore renewed.",
    subtasks=["Ask which books you have out", "Ask for the Kafka loan to be renewed"],
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


def answer(judgment: str = "valid", *items: tuple[str, str, bool], reasoning: str = "The renewal was done.") -> str:
    shown = [{"item": item, "category": category, "passed": passed} for item, category, passed in items]
    return orjson.dumps({"reasoning": reasoning, "items": shown, "judgment": judgment}).decode()


def prompt_of(model: ScriptedModel) -> str:
    message = model.requests[0].messages[-1]
    assert isinstance(message, UserMessage)
    return message.content


async def test_a_valid_verdict_passes_through_with_its_items() -> None:
    items = [("T1.S1 Ask which books you have out", "Critical", True), ("T1.S2 Ask ...", "NonCritical", False)]
    model = ScriptedModel([answer("valid", *items)])

    judgment = await Judge(model).judge(state())

    assert judgment.judgment == "valid" and judgment.reasoning == "The renewal was done."
    assert judgment.items == [
        RubricVerdict.model_validate({"item": i, "category": c, "passed": p}) for i, c, p in items
    ]
    assert judgment.checks == {} and judgment.verification is None
    options = model.requests[0].options
    assert options.response_format == JUDGMENT_FORMAT and options.seed == 17


async def test_a_failed_critical_item_makes_a_valid_verdict_invalid() -> None:
    model = ScriptedModel([answer("valid", ("T1.S2 Ask for the Kafka loan to be renewed", "Critical", False))])

    judgment = await Judge(model).judge(state())

    assert judgment.judgment == "invalid"
    assert judgment.reasoning.startswith("The renewal was done.")
    assert "Critical rubric item failed: T1.S2 Ask for the Kafka loan to be renewed" in judgment.reasoning


async def test_a_failed_sql_check_makes_the_dialogue_invalid_and_is_named() -> None:
    model = ScriptedModel([answer("valid", ("T1.S1 Ask which books you have out", "Critical", True))])
    checked = verification(True, False)

    judgment = await Judge(model).judge(state(), verification=checked)

    assert judgment.judgment == "invalid"
    assert (
        "failed SQL check on the final database: 'check 2' (SELECT 0: the check returned False)" in judgment.reasoning
    )
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
    assert "[1] USER: Hi, which books do I have out? I'm member 1042." in prompt
    assert (
        '[2] ASSISTANT: Let me check.\n    -> call list_open_loans_for_member {"member_id":1042} (id call_1)' in prompt
    )
    assert '[3] TOOL RESULT of list_open_loans_for_member (id call_1): [{"LoanId":3071}]' in prompt
    assert "[6] ASSISTANT: (no text)\n    -> call update_loan_due_date" in prompt
    assert "[9] USER (closing words, after the last task was done): Thanks!" in prompt
    assert "### Task 1 (medium): completed: the person said it was done" in prompt
    assert "- T1.S2 Ask for the Kafka loan to be renewed" in prompt
    assert "### Task 2 (medium): open: the conversation ended before the person said it was done" in prompt
    assert "- T2.S1 Ask" in prompt
    assert '"name":"update_loan_due_date"' in prompt and POLICY in prompt
    assert "- PASSED: check 1 (SELECT 1; the check returned True)" in prompt
    assert "- FAILED: check 2 (SELECT 0; the check returned False)" in prompt
    assert 'Loan: 1 updated\n  ~ updated {"LoanId":3071}: DueDate: "2025-03-14" -> "2025-03-28"' in prompt
    assert "The tools ran against a real database" in prompt
    assert "$" not in prompt


async def test_rubric_items_are_labelled_and_tasks_not_reached_are_not_itemised() -> None:
    model = ScriptedModel([answer()])

    await Judge(model).judge(state(mode="user", tasks=[RUBRIC_TASK, FINES, RENEWAL], tasks_done=0))

    prompt = prompt_of(model)
    assert "- T1.C1 Loan 3071 is due on 2025-03-28" in prompt
    assert "- T1.P2 update_loan_due_date(loan_id=<id>)" in prompt
    assert "- T1.K1 The loan is identified before renewing" in prompt
    assert "### Task 2 (medium): not reached: the person never brought it up; not judged" in prompt
    assert "T2.S1" not in prompt and "T3." not in prompt
    assert "(none for this conversation: no database state was checked)" in prompt
    assert "A model simulated the tool results" in prompt


async def test_an_error_reported_accurately_is_valid_and_the_rule_is_in_the_prompt() -> None:
    error = '{"error":{"kind":"refused","message":"loan 3071 was renewed twice already"}}'
    messages = [
        *conversation(error)[:-1],
        AssistantMessage(content="It cannot be renewed again; return it by 14 March?"),
    ]
    model = ScriptedModel([answer("valid", ("T1.S2 Ask for the Kafka loan to be renewed", "InvalidRubric", False))])

    judgment = await Judge(model).judge(state(messages=messages))

    assert judgment.judgment == "valid"
    prompt = prompt_of(model)
    assert error in prompt
    assert "returned an error" in prompt and "proposed a sensible next step, the conversation is valid" in prompt


async def test_a_long_tool_result_is_clipped() -> None:
    long = orjson.dumps([{"LoanId": n} for n in range(1000)]).decode()
    messages = [
        *conversation()[:3],
        ToolMessage(tool_call_id="call_1", name="list_open_loans_for_member", content=long),
    ]
    model = ScriptedModel([answer()])

    await Judge(model).judge(state(messages=messages))

    assert f"[... {len(long) - 3000} more characters not shown]" in prompt_of(model)


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
    from dialforge.environments.base import StateDiff
    from dialforge.environments.sql.verification import CheckOutcome, Verification

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
