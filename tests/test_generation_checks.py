"""The checks every generation stage shares: meta words, tools that change data, near-duplicate texts."""

from __future__ import annotations

import orjson
import pytest

from dialforge.generation_checks.meta_words import domain_vocabulary, meta_words
from dialforge.generation_checks.near_duplicates import near_duplicate_of, shingles, similarity
from dialforge.generation_checks.tools import changes_data, describe_tools
from dialforge.model.tools import ToolSpec

# Meta words


def test_words_about_how_data_is_made_are_meta_in_any_text() -> None:
    text = "This synthetic Dataset comes from a simulation for training a language model."
    assert meta_words(text, vocabulary="") == ["dataset", "language model", "simulation", "synthetic", "training"]


def test_words_about_the_conversation_are_meta_only_in_what_a_user_writes() -> None:
    text = "The assistant confirms every tool call with the customer."
    assert meta_words(text, vocabulary="") == []
    assert meta_words(text, vocabulary="", from_user=True) == ["assistant", "tool call"]


def test_a_word_the_domain_uses_itself_is_not_meta() -> None:
    book = ToolSpec(name="book_training_session", description="Book a personal training session.")
    vocabulary = domain_vocabulary("Gym", "A fitness club", tools=[book])
    assert meta_words("Can I book a training session on Friday?", vocabulary, from_user=True) == []
    assert meta_words("Is this a simulation?", vocabulary, from_user=True) == ["simulation"]


def test_the_vocabulary_is_case_folded() -> None:
    assert meta_words("Find a Teaching Assistant", domain_vocabulary("ASSISTANT staffing"), from_user=True) == []


# Tools


@pytest.mark.parametrize(
    ("tool", "writes"),
    [
        (ToolSpec(name="get_order", description=""), False),
        (ToolSpec(name="cancel_order", description=""), True),
        (ToolSpec(name="addItemToCart", description=""), True),
        (ToolSpec(name="list_invoices", description="", sql='SELECT * FROM "Invoice" LIMIT 5'), False),
        (ToolSpec(name="get_or_make", description="", sql="INSERT INTO t (a) VALUES (:a)"), True),
        (ToolSpec(name="cancel_order", description="", sql="SELECT FROM WHERE ("), True),
        (ToolSpec(name="get_order", description="", sql="DELETE FROM t; DELETE FROM u"), False),
    ],
    ids=["read-verb", "write-verb", "camel-case-verb", "select", "insert", "unparsable-sql", "two-statements"],
)
def test_which_tools_change_data(tool: ToolSpec, writes: bool) -> None:
    assert changes_data(tool) is writes


def test_tools_are_described_one_json_object_per_line() -> None:
    returns = {"type": "object", "properties": {"id": {"type": "integer"}}}
    tools = [
        ToolSpec(name="get_order", description="One order.", returns=returns),
        ToolSpec(name="ping", description=""),
    ]

    lines = describe_tools(tools, with_returns=True).splitlines()

    assert [orjson.loads(line)["name"] for line in lines] == ["get_order", "ping"]
    assert orjson.loads(lines[0])["returns"] == returns and "returns" not in orjson.loads(describe_tools(tools[:1]))
    assert describe_tools([]) == ""


# Near-duplicate detection


def test_near_duplicates_ignore_case_punctuation_and_numbers() -> None:
    assert near_duplicate_of("Where is order #1234?", ["where is ORDER 98"]) == "where is ORDER 98"
    assert near_duplicate_of("Where is order 1234?", ["Cancel order 1234"]) is None


def test_the_most_similar_text_is_named() -> None:
    others = ["Show my bookings for next week", "Show me my bookings for next week please"]
    assert near_duplicate_of("Show me my bookings for next week", others) == others[1]


def test_the_threshold_and_shingle_size_are_tunable() -> None:
    a, b = "show me my upcoming flight bookings", "show my upcoming flight bookings"
    assert similarity(a, b) == pytest.approx(5 / 6)
    assert near_duplicate_of(a, [b], threshold=0.9) is None
    assert similarity(a, b, size=2) == pytest.approx(3 / 6)
    assert shingles("one", size=2) == frozenset({("one",)})
    assert similarity("", "...") == 1.0 and similarity("", "word") == 0.0
