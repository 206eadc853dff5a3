"""The domain policy is checked (length, confirmation before writes, no meta words) and repaired once."""

from __future__ import annotations

import orjson
import pytest

from dialforge.actors.generators.policy import MAX_POLICY_CHARS, generate_policy
from dialforge.llm import DryRunModel, ModelUnavailable, ScriptedModel
from dialforge.model.domain import Domain
from dialforge.model.tools import ToolSpec
from prompt_checks import assert_mentions, filled_in, prompt_of

BOOKSHOP = Domain(name="Online bookshop", description="An online shop selling new and used books")
SEARCH = ToolSpec(name="search_orders", description="Find a customer's orders by email.")
CANCEL = ToolSpec(name="cancel_order", description="Cancel an order that has not shipped.")
GOOD = (
    "You help customers of the bookshop with their orders. Look orders up with search_orders; never guess. "
    "Before calling cancel_order, tell the customer which order you will cancel and wait for them to confirm. "
    "If a detail is missing, ask for it. Share order details only with the customer they belong to."
)


def reply(policy: str) -> str:
    return orjson.dumps({"policy": policy}).decode()


async def test_a_good_policy_is_kept_and_the_prompt_is_grounded_in_the_tools() -> None:
    model = ScriptedModel([reply(GOOD)])

    batch = await generate_policy(model, BOOKSHOP, [SEARCH, CANCEL], seed=4)

    assert batch.items == [GOOD]
    assert (batch.rejected, batch.repaired, batch.errors) == ([], 0, [])
    options = model.requests[0].options
    assert options.seed == 4 and options.response_format is not None
    assert options.response_format.name == "domain_policy"
    prompt = prompt_of(model)
    asked = filled_in(prompt, "policy")
    assert (asked["domain"], asked["description"]) == (BOOKSHOP.name, BOOKSHOP.description)
    assert_mentions(asked["tools"], '"name":"search_orders"', '"name":"cancel_order"')
    assert asked["writes"] == "cancel_order", "the tools a confirmation rule must name"
    assert "$" not in prompt


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        ("Be nice.", "the policy is 8 characters long; write at least 80"),
        (GOOD * 6, f"keep it within {MAX_POLICY_CHARS}"),  # over the check's limit, under the reply's bound
        (
            GOOD.replace("wait for them to confirm", "go ahead"),
            "must confirm a change with the user before making it, and these tools change data: cancel_order",
        ),
        (GOOD + " This simulation is part of a training dataset.", "(dataset, simulation, training)"),
    ],
)
async def test_a_bad_policy_is_sent_back_once_with_the_reason(policy: str, reason: str) -> None:
    model = ScriptedModel([reply(policy), reply(GOOD)])

    batch = await generate_policy(model, BOOKSHOP, [SEARCH, CANCEL])

    assert batch.items == [GOOD] and batch.repaired == 1
    assert_mentions(filled_in(prompt_of(model, 1), "policy_repair")["failures"], policy, reason)


async def test_a_policy_bad_twice_is_dropped_with_its_reasons() -> None:
    model = ScriptedModel([reply("Be nice."), reply("Be kind.")])

    batch = await generate_policy(model, BOOKSHOP, [SEARCH, CANCEL])

    assert batch.items == []
    (rejection,) = batch.rejected
    assert rejection.label == "policy" and rejection.submitted == "Be kind."
    assert len(rejection.reasons) == 2  # too short, and no confirmation rule


async def test_without_write_tools_no_confirmation_rule_is_needed() -> None:
    read_only = GOOD.replace("Before calling cancel_order, tell", "Tell").replace("to confirm", "to reply")
    model = ScriptedModel([reply(read_only)])

    batch = await generate_policy(model, BOOKSHOP, [SEARCH])

    assert batch.items == [read_only]


async def test_a_meta_word_the_domain_itself_uses_is_allowed() -> None:
    gym = Domain(name="Gym", description="A fitness club")
    book = ToolSpec(name="book_training_session", description="Book a personal training session.")
    policy = "You help members book personal training sessions. Confirm the time with the member first. " * 2
    model = ScriptedModel([reply(policy)])

    batch = await generate_policy(model, gym, [book])

    assert batch.items == [policy.strip()]


async def test_a_malformed_reply_is_asked_again_by_the_client() -> None:
    model = ScriptedModel(["Here is the policy: {policy:", reply(GOOD)])

    batch = await generate_policy(model, BOOKSHOP, [SEARCH, CANCEL])

    assert batch.items == [GOOD] and batch.repaired == 0


async def test_a_model_error_gives_no_policy_and_records_the_error() -> None:
    model = ScriptedModel([ModelUnavailable("the server is down")])

    batch = await generate_policy(model, BOOKSHOP, [SEARCH, CANCEL])

    assert batch.items == [] and batch.errors == ["the request failed: the server is down"]


async def test_the_dry_run_model_does_not_crash_the_stage() -> None:
    batch = await generate_policy(DryRunModel(seed=1), BOOKSHOP, [SEARCH, CANCEL])

    assert batch.errors == []
    assert len(batch.items) + len(batch.rejected) == 1
