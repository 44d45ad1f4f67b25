"""Stored customer profiles, to show curators who a slate is for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Customer


def profile_for(session: Session, customer_id: str) -> dict[str, Any] | None:
    """The stored profile of a customer, if the id is known."""
    customer = session.scalars(select(Customer).where(Customer.customer_id == customer_id)).first()
    return None if customer is None else dict(customer.profile)


def with_profile(session: Session, context: Mapping[str, Any]) -> dict[str, Any]:
    """The request context, with stored profile fields filling what the request left out."""
    customer_id = context.get("customer_id")
    profile = profile_for(session, customer_id) if isinstance(customer_id, str) else None
    return {**(profile or {}), **context}
