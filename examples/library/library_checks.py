"""Checks on the library's records as a dialogue left them, named by the tasks in library_tasks.jsonl.

Each is called as ``check(state, diff, **arguments)``: ``state`` is the final records, ``diff`` the rows the
dialogue changed (a ``StateDiff``: ``diff.tables["loans"].inserted`` ...). A check passes when it returns a
truthy value.
"""

from __future__ import annotations

from typing import Any


def open_loan(state: dict[str, Any], diff: Any, member_id: str, book_id: str) -> bool:
    """The member has the book on loan."""
    return any(
        loan["member_id"] == member_id and loan["book_id"] == book_id and loan["returned_on"] is None
        for loan in state["loans"].values()
    )


def no_open_loan(state: dict[str, Any], diff: Any, member_id: str, book_id: str) -> bool:
    """The member does not have the book on loan (a refused loan was not made)."""
    return not open_loan(state, diff, member_id, book_id)


def returned(state: dict[str, Any], diff: Any, loan_id: str) -> bool:
    return state["loans"][loan_id]["returned_on"] is not None


def due_on(state: dict[str, Any], diff: Any, loan_id: str, date: str) -> bool:
    return bool(state["loans"][loan_id]["due_on"] == date)


def balance(state: dict[str, Any], diff: Any, member_id: str, amount: float) -> bool:
    """The member owes ``amount``, to the cent."""
    return abs(state["members"][member_id]["balance"] - amount) < 0.005


def owes_under(state: dict[str, Any], diff: Any, member_id: str, amount: float) -> bool:
    return bool(state["members"][member_id]["balance"] < amount)


def hold(state: dict[str, Any], diff: Any, member_id: str, book_id: str, status: str) -> bool:
    """The member has a hold on the book with this status."""
    return any(
        h["member_id"] == member_id and h["book_id"] == book_id and h["status"] == status
        for h in state["holds"].values()
    )


def untouched(state: dict[str, Any], diff: Any, table: str) -> bool:
    """No row of ``table`` changed."""
    return table not in diff.tables
