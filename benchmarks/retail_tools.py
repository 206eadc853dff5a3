"""Tools of the shape of tau2-bench's retail domain, over a JSON database, for ``benchmarks/python_env.py``.

The database is a dict of three tables keyed by id (``users``, ``orders``, ``products``), as tau2's ``db.json``;
the functions get it through the parameter ``db`` (``state_parameter: db``). ``modify_user_address`` has a
``state`` argument of its own (a US state), as tau2's does.
"""

from __future__ import annotations

from typing import Any, Literal


def find_user_id_by_email(db: dict[str, Any], email: str) -> str:
    """Find a user id by email address (a scan of every user, as tau2's tool does).

    Args:
        email: the user's email address.
    """
    for user_id, user in db["users"].items():
        if user["email"].lower() == email.lower():
            return user_id
    raise ValueError("User not found")


def get_user_details(db: dict[str, Any], user_id: str) -> dict[str, Any]:
    """A user's profile, payment methods and order ids.

    Args:
        user_id: the user id, such as sara_doe_496.
    """
    if user_id not in db["users"]:
        raise ValueError("User not found")
    return db["users"][user_id]


def get_order_details(db: dict[str, Any], order_id: str) -> dict[str, Any]:
    """An order's status, items, fulfillments and payments.

    Args:
        order_id: the order id, such as #W0000000.
    """
    if order_id not in db["orders"]:
        raise ValueError("Order not found")
    return db["orders"][order_id]


def get_product_details(db: dict[str, Any], product_id: str) -> dict[str, Any]:
    """A product and its variants (items) with their options, availability and price.

    Args:
        product_id: the product id, such as 6086499569.
    """
    if product_id not in db["products"]:
        raise ValueError("Product not found")
    return db["products"][product_id]


def cancel_pending_order(
    db: dict[str, Any], order_id: str, reason: Literal["no longer needed", "ordered by mistake"]
) -> dict[str, Any]:
    """Cancel a pending order and refund its payments to their methods.

    Args:
        order_id: the order id.
        reason: why the user cancels.
    """
    order = get_order_details(db, order_id)
    if order["status"] != "pending":
        raise ValueError("Non-pending order cannot be cancelled")
    refunds = [
        {"transaction_type": "refund", "amount": payment["amount"], "payment_method_id": payment["payment_method_id"]}
        for payment in order["payment_history"]
    ]
    order["payment_history"].extend(refunds)
    order["status"] = "cancelled"
    order["cancel_reason"] = reason
    return order


def modify_user_address(
    db: dict[str, Any], user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> dict[str, Any]:
    """Change a user's default address.

    Args:
        user_id: the user id.
        address1: the first line.
        address2: the second line, or an empty string.
        city: the city.
        state: the state, such as NY.
        country: the country, such as USA.
        zip: the zip code.
    """
    user = get_user_details(db, user_id)
    user["address"] = {
        "address1": address1, "address2": address2, "city": city, "state": state, "country": country, "zip": zip
    }  # fmt: skip
    return user
