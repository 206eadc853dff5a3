"""The tools of Alder Street Library's assistant: plain functions over the library's records.

dialforge reads each public function here as a tool: its name, its docstring (the summary and the ``Args:``
section) and its type hints make the spec the agent sees. The parameter ``library`` receives the dialogue's
own copy of the records (``state_parameter: library`` in library.yaml) and is hidden from the agent.

The rules are the library's: a member may borrow while their account is active, owes less than the fine limit
and has fewer loans than their membership allows; a loan can be renewed twice, never when it is overdue or
another member holds the title; a hold is only for a title with no copy on the shelf, and like a loan needs an
active account and a balance under the limit; a returned late book costs a fee per day, added to the member's
balance.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, Field

LOAN_DAYS = 21
RENEWAL_DAYS = 14
MAX_RENEWALS = 2
LATE_FEE_PER_DAY = 0.25
FINE_LIMIT = 10.00
LOAN_LIMITS = {"standard": 3, "family": 6, "student": 4}


class NotFound(LookupError):
    """No record with that id."""


class AccountSuspended(Exception):
    """The member's account is suspended: the library refuses any loan, renewal or hold."""


class RuleViolation(ValueError):
    """The records forbid the request (no copy left, too many loans, a renewal too many)."""


class Loan(BaseModel):
    loan_id: str
    member_id: str
    book_id: str
    title: str
    borrowed_on: str
    due_on: str
    renewals: int
    returned_on: str | None = None


class Hold(BaseModel):
    hold_id: str
    member_id: str
    book_id: str
    title: str
    placed_on: str
    status: Literal["waiting", "ready", "cancelled", "collected"]
    position: int | None = Field(default=None, description="place in the queue while waiting")


class Book(BaseModel):
    book_id: str
    title: str
    author: str
    year: int
    copies: int
    on_shelf: int
    holds_waiting: int


class MemberSummary(BaseModel):
    member_id: str
    name: str
    email: str


class Member(BaseModel):
    member_id: str
    name: str
    email: str
    membership: Literal["standard", "family", "student"]
    status: Literal["active", "suspended"]
    balance: float = Field(description="fees owed, in US dollars")
    loan_limit: int
    loans: list[Loan] = Field(description="loans not yet returned")
    holds: list[Hold] = Field(description="holds waiting or ready to collect")


class Return(BaseModel):
    loan: Loan
    days_late: int
    late_fee: float
    balance: float = Field(description="the member's balance after the fee")
    hold_ready_for: str | None = Field(default=None, description="member whose hold the returned copy now fills")


# --- records ------------------------------------------------------------------------------------------------


def _today(library: dict) -> date:
    return date.fromisoformat(library["today"])


def _record(library: dict, table: str, key: str, what: str) -> dict:
    record = library[table].get(key)
    if record is None:
        raise NotFound(f"no {what} with id {key}")
    return record


def _next_id(library: dict, table: str, prefix: str) -> str:
    numbers = [int(key.removeprefix(prefix)) for key in library[table]]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


def _loan(library: dict, loan_id: str, loan: dict) -> Loan:
    return Loan(loan_id=loan_id, title=library["books"][loan["book_id"]]["title"], **loan)


def _hold(library: dict, hold_id: str, hold: dict) -> Hold:
    position = None
    if hold["status"] == "waiting":
        queue = _queue(library, hold["book_id"])
        position = [key for key, _ in queue].index(hold_id) + 1
    return Hold(hold_id=hold_id, title=library["books"][hold["book_id"]]["title"], position=position, **hold)


def _queue(library: dict, book_id: str) -> list[tuple[str, dict]]:
    waiting = [(key, hold) for key, hold in library["holds"].items() if hold["book_id"] == book_id]
    return sorted(((k, h) for k, h in waiting if h["status"] == "waiting"), key=lambda item: item[1]["placed_on"])


def _on_loan(library: dict, book_id: str) -> int:
    return sum(1 for loan in library["loans"].values() if loan["book_id"] == book_id and loan["returned_on"] is None)


def _ready(library: dict, book_id: str) -> int:
    return sum(1 for hold in library["holds"].values() if hold["book_id"] == book_id and hold["status"] == "ready")


def _book(library: dict, book_id: str) -> Book:
    book = _record(library, "books", book_id, "book")
    shelf = book["copies"] - _on_loan(library, book_id) - _ready(library, book_id)
    return Book(
        book_id=book_id,
        title=book["title"],
        author=book["author"],
        year=book["year"],
        copies=book["copies"],
        on_shelf=shelf,
        holds_waiting=len(_queue(library, book_id)),
    )


def _may_borrow(member: dict) -> None:
    if member["status"] == "suspended":
        raise AccountSuspended(f"the account of {member['name']} is suspended; only staff at the desk can lift it")


# --- tools --------------------------------------------------------------------------------------------------


def find_members(library: dict, name: str | None = None, email: str | None = None) -> list[MemberSummary]:
    """Find members by part of their name or by their exact email address.

    Args:
        name: part of the member's name, any letter case.
        email: the member's email address.
    """
    if not name and not email:
        raise RuleViolation("give a name or an email address to search by")
    found = []
    for member_id, member in library["members"].items():
        if email and member["email"].lower() != email.strip().lower():
            continue
        if name and name.strip().lower() not in member["name"].lower():
            continue
        found.append(MemberSummary(member_id=member_id, name=member["name"], email=member["email"]))
    return found


def get_member(library: dict, member_id: str) -> Member:
    """A member's account: membership, status, balance owed, current loans and holds.

    Args:
        member_id: the member's id, such as M0007.
    """
    member = _record(library, "members", member_id, "member")
    loans = [
        _loan(library, key, loan)
        for key, loan in library["loans"].items()
        if loan["member_id"] == member_id and loan["returned_on"] is None
    ]
    holds = [
        _hold(library, key, hold)
        for key, hold in library["holds"].items()
        if hold["member_id"] == member_id and hold["status"] in ("waiting", "ready")
    ]
    return Member(
        member_id=member_id,
        name=member["name"],
        email=member["email"],
        membership=member["membership"],
        status=member["status"],
        balance=round(member["balance"], 2),
        loan_limit=LOAN_LIMITS[member["membership"]],
        loans=loans,
        holds=holds,
    )


def search_books(library: dict, query: str, available_only: bool = False) -> list[Book]:
    """Books whose title or author contains the query, with copies on the shelf and holds waiting.

    Args:
        query: part of a title or an author's name, any letter case.
        available_only: only books with a copy on the shelf now.
    """
    words = query.strip().lower()
    found = [
        _book(library, book_id)
        for book_id, book in library["books"].items()
        if words in f"{book['title']} {book['author']}".lower()
    ]
    return [book for book in found if book.on_shelf > 0] if available_only else found


def borrow_book(library: dict, member_id: str, book_id: str) -> Loan:
    """Lend a copy of a book to a member, due in 21 days.

    Args:
        member_id: the member borrowing.
        book_id: the book, such as B0012.
    """
    member = _record(library, "members", member_id, "member")
    _may_borrow(member)
    book = _book(library, book_id)
    if member["balance"] >= FINE_LIMIT:
        raise RuleViolation(f"{member['name']} owes ${member['balance']:.2f}; borrowing needs a balance under $10.00")
    open_loans = [loan for loan in library["loans"].values() if loan["member_id"] == member_id]
    if sum(loan["returned_on"] is None for loan in open_loans) >= LOAN_LIMITS[member["membership"]]:
        raise RuleViolation(f"{member['name']} already has {LOAN_LIMITS[member['membership']]} loans, the limit")
    if any(loan["book_id"] == book_id and loan["returned_on"] is None for loan in open_loans):
        raise RuleViolation(f"{member['name']} already has {book.title!r} on loan")
    ready = next(
        (
            (key, hold)
            for key, hold in library["holds"].items()
            if hold["book_id"] == book_id and hold["member_id"] == member_id and hold["status"] == "ready"
        ),
        None,
    )
    if ready is None and book.on_shelf <= 0:
        raise RuleViolation(f"no copy of {book.title!r} is on the shelf; a hold can be placed instead")
    if ready is not None:
        ready[1]["status"] = "collected"
    today = _today(library)
    loan_id = _next_id(library, "loans", "L")
    library["loans"][loan_id] = {
        "member_id": member_id,
        "book_id": book_id,
        "borrowed_on": today.isoformat(),
        "due_on": (today + timedelta(days=LOAN_DAYS)).isoformat(),
        "renewals": 0,
        "returned_on": None,
    }
    return _loan(library, loan_id, library["loans"][loan_id])


def renew_loan(library: dict, loan_id: str) -> Loan:
    """Extend a loan by 14 days from its due date; at most twice, not when overdue or held by another member.

    Args:
        loan_id: the loan, such as L0031.
    """
    loan = _record(library, "loans", loan_id, "loan")
    if loan["returned_on"] is not None:
        raise RuleViolation(f"loan {loan_id} was returned on {loan['returned_on']}")
    _may_borrow(library["members"][loan["member_id"]])
    due = date.fromisoformat(loan["due_on"])
    if due < _today(library):
        raise RuleViolation(f"loan {loan_id} is overdue since {loan['due_on']}; return it instead")
    if loan["renewals"] >= MAX_RENEWALS:
        raise RuleViolation(f"loan {loan_id} was already renewed {MAX_RENEWALS} times")
    if _queue(library, loan["book_id"]):
        raise RuleViolation(f"another member holds {library['books'][loan['book_id']]['title']!r}")
    loan["due_on"] = (due + timedelta(days=RENEWAL_DAYS)).isoformat()
    loan["renewals"] += 1
    return _loan(library, loan_id, loan)


def return_book(library: dict, loan_id: str) -> Return:
    """Record a returned book; a late return adds $0.25 per day late to the member's balance, and the copy goes
    to the first member waiting for it.

    Args:
        loan_id: the loan being returned.
    """
    loan = _record(library, "loans", loan_id, "loan")
    if loan["returned_on"] is not None:
        raise RuleViolation(f"loan {loan_id} was already returned on {loan['returned_on']}")
    today = _today(library)
    late = max(0, (today - date.fromisoformat(loan["due_on"])).days)
    member = library["members"][loan["member_id"]]
    member["balance"] = round(member["balance"] + late * LATE_FEE_PER_DAY, 2)
    loan["returned_on"] = today.isoformat()
    queue = _queue(library, loan["book_id"])
    if queue:
        queue[0][1]["status"] = "ready"
    return Return(
        loan=_loan(library, loan_id, loan),
        days_late=late,
        late_fee=late * LATE_FEE_PER_DAY,
        balance=member["balance"],
        hold_ready_for=queue[0][1]["member_id"] if queue else None,
    )


def place_hold(library: dict, member_id: str, book_id: str) -> Hold:
    """Join the queue for a book that has no copy on the shelf.

    Args:
        member_id: the member waiting.
        book_id: the book.
    """
    member = _record(library, "members", member_id, "member")
    _may_borrow(member)
    book = _book(library, book_id)
    if member["balance"] >= FINE_LIMIT:
        raise RuleViolation(f"{member['name']} owes ${member['balance']:.2f}; a hold needs a balance under $10.00")
    if book.on_shelf > 0:
        raise RuleViolation(f"{book.title!r} has {book.on_shelf} copies on the shelf; borrow one instead")
    for hold in library["holds"].values():
        if hold["member_id"] == member_id and hold["book_id"] == book_id and hold["status"] in ("waiting", "ready"):
            raise RuleViolation(f"{member['name']} already holds {book.title!r}")
    hold_id = _next_id(library, "holds", "H")
    library["holds"][hold_id] = {
        "member_id": member_id,
        "book_id": book_id,
        "placed_on": _today(library).isoformat(),
        "status": "waiting",
    }
    return _hold(library, hold_id, library["holds"][hold_id])


def cancel_hold(library: dict, hold_id: str) -> Hold:
    """Cancel a hold that is waiting or ready; a ready copy goes to the next member in the queue.

    Args:
        hold_id: the hold, such as H0004.
    """
    hold = _record(library, "holds", hold_id, "hold")
    if hold["status"] not in ("waiting", "ready"):
        raise RuleViolation(f"hold {hold_id} is {hold['status']}")
    was_ready = hold["status"] == "ready"
    hold["status"] = "cancelled"
    if was_ready and (queue := _queue(library, hold["book_id"])):
        queue[0][1]["status"] = "ready"
    return _hold(library, hold_id, hold)


def pay_balance(library: dict, member_id: str, amount: float) -> Member:
    """Take a payment towards what a member owes.

    Args:
        member_id: the member paying.
        amount: US dollars, more than 0 and at most the balance.
    """
    member = _record(library, "members", member_id, "member")
    if amount <= 0 or amount > round(member["balance"], 2):
        raise RuleViolation(f"a payment must be more than $0 and at most the balance, ${member['balance']:.2f}")
    member["balance"] = round(member["balance"] - amount, 2)
    return get_member(library, member_id)
