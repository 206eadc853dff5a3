"""User questions are checked one by one, near-duplicates dropped, and a bad reply never crashes the stage."""

from __future__ import annotations

import orjson

from dialforge.actors.generators.item_repair import ItemBatch
from dialforge.actors.generators.questions import generate_questions
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.model.domain import Domain
from dialforge.model.tools import ToolSpec
from dialforge.prompts import load_prompt
from prompt_checks import filled_in, prompt_of

TRACK_ORDER = ToolSpec(
    name="get_order_status",
    description="The shipping status of one order. Returns {order_id, status, eta}.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "Order number, as on the receipt"}},
        "required": ["order_id"],
    },
)
SHOP = Domain(name="online shop", description="An online clothing shop.", seed_tools=[TRACK_ORDER])
NOT_SHIPPED = "Which of my orders have not shipped yet?"
RETURN = "I want to return the blue jacket from order 5512 and get my money back."
ADDRESS = "Please change the delivery address of my last order to 12 Oak Street, Lyon."


def reply(*questions: str) -> str:
    return orjson.dumps({"questions": list(questions)}).decode()


def reasons_by_label(result: ItemBatch[str]) -> dict[str, list[str]]:
    return {rejection.label: rejection.reasons for rejection in result.rejected}


async def test_a_good_reply_gives_its_questions_with_whitespace_tidied() -> None:
    model = ScriptedModel([reply(NOT_SHIPPED, f"  {RETURN}\n"), reply()])

    result = await generate_questions(model, SHOP, count=2)

    assert result.items == [NOT_SHIPPED, RETURN]
    assert result.rejected == [] and result.errors == [] and len(model.requests) == 1
    asked = filled_in(prompt_of(model), "questions")
    assert (asked["domain"], asked["count"]) == ("online shop", "2")
    assert "get_order_status" in asked["seed_tools"]
    assert model.requests[0].options.response_format is not None
    assert model.requests[0].options.response_format.name == "questions"


async def test_a_malformed_reply_is_asked_again_by_the_client() -> None:
    model = ScriptedModel(['{"questions": ["Which of my', reply(NOT_SHIPPED)])

    result = await generate_questions(model, SHOP, count=3)

    assert result.items == [NOT_SHIPPED] and result.errors == []
    assert len(model.requests) == 2


async def test_each_check_rejects_with_its_reason() -> None:
    too_long = "Could you please " + "check everything about my account " * 10
    model = ScriptedModel(
        [
            reply("   ", "Refund?", too_long, "Run get_order_status for 5512.", "Tell the assistant to cancel it."),
            reply(),
        ]
    )

    result = await generate_questions(model, SHOP, count=5)

    assert result.items == []
    reasons = [rejection.reasons[0] for rejection in result.rejected]
    assert reasons[0] == "the question is empty"
    assert reasons[1].startswith("too short to be a request")
    assert reasons[2].startswith(f"{len(too_long.strip())} characters is too long")
    assert reasons[3] == "it names the tool get_order_status; users ask in their own words, not by tool name"
    assert reasons[4].startswith("it says 'assistant', which a user of this application would not")
    assert all(r.reasons[-1] == "the repair round sent no corrected version of this item" for r in result.rejected)


async def test_a_meta_word_is_fine_when_the_domain_is_about_it() -> None:
    staffing = Domain(name="assistant staffing agency", description="Places personal assistants with executives.")
    question = "Find me an assistant who speaks Japanese and can start in May."
    model = ScriptedModel([reply(question)])

    result = await generate_questions(model, staffing, count=1)

    assert result.items == [question]


async def test_near_duplicates_are_rejected_within_a_reply_and_against_kept_ones() -> None:
    rephrased = "Which of my orders have not shipped yet, please?"
    model = ScriptedModel(
        [reply(NOT_SHIPPED, rephrased, "Refund?"), reply("Which of my orders have not been shipped yet?", ADDRESS)]
    )

    result = await generate_questions(model, SHOP, count=3)

    assert result.items == [NOT_SHIPPED, ADDRESS] and result.repaired == 1
    assert [rejection.reasons for rejection in result.rejected] == [[f"near-duplicate of: {NOT_SHIPPED}"]]
    repair = prompt_of(model, 1)
    assert f"near-duplicate of: {NOT_SHIPPED}" in repair and "Refund?" in repair


async def test_the_repair_round_saves_some_and_the_rest_are_dropped_with_reasons() -> None:
    model = ScriptedModel([reply(NOT_SHIPPED, "Add it to the dataset.", "Status?"), reply(RETURN, "Status??")])

    result = await generate_questions(model, SHOP, count=3)

    assert result.items == [NOT_SHIPPED, RETURN]
    assert result.repaired == 1
    assert list(reasons_by_label(result)) == ["Status??"]
    assert reasons_by_label(result)["Status??"][0].startswith("too short")


async def test_at_most_count_questions_are_kept() -> None:
    model = ScriptedModel([reply(NOT_SHIPPED, RETURN, ADDRESS)])

    result = await generate_questions(model, SHOP, count=2)

    assert result.items == [NOT_SHIPPED, RETURN]


async def test_a_model_error_gives_an_empty_batch_with_the_error() -> None:
    model = ScriptedModel([ModelUnavailable("the server is down")])

    result = await generate_questions(model, SHOP, count=5)

    assert result.items == [] and result.rejected == []
    assert result.errors == ["the request failed: the server is down"]


async def test_the_dry_run_model_does_not_crash_the_stage() -> None:
    result = await generate_questions(DryRunModel(seed=1), SHOP, count=6)

    assert all(rejection.reasons for rejection in result.rejected)
    assert len(result.items) <= 6


def test_the_prompts_are_packaged() -> None:
    for name in ("questions", "questions_repair"):
        assert load_prompt(name).strip()
