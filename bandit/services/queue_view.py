"""The queue as the console lists it: waiting and held tasks, filtered by route and category."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bandit.db.models import CatalogItem, Decision, ProposedItem, ReviewTask
from bandit.engine.vocabulary import TaskStatus
from bandit.services.review.queue import QUEUE_ORDER

QUEUE_PAGE = 50


def waiting_tasks(
    session: Session,
    route: str | None = None,
    category: str | None = None,
    limit: int = QUEUE_PAGE,
    routes_hidden_under: Collection[int] = (),
) -> list[ReviewTask]:
    """Open and held tasks in the order curators get them; `category`: one on the slate.

    `routes_hidden_under`: config versions whose decisions' routes the viewer is not told;
    a `route` filter never matches their tasks, so it cannot single them out.
    """
    statement = (
        select(ReviewTask)
        .where(ReviewTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)))
        .options(selectinload(ReviewTask.decision).selectinload(Decision.proposed))
        .order_by(*QUEUE_ORDER)
        .limit(limit)
    )
    if route:
        statement = statement.where(ReviewTask.route == route)
        if routes_hidden_under:
            hidden = select(Decision.id).where(
                Decision.policy_config_id.in_(tuple(routes_hidden_under))
            )
            statement = statement.where(ReviewTask.decision_id.not_in(hidden))
    if category:
        with_category = (
            select(ProposedItem.decision_id)
            .join(CatalogItem, CatalogItem.item_id == ProposedItem.item_id)
            .where(CatalogItem.category == category)
        )
        statement = statement.where(ReviewTask.decision_id.in_(with_category))
    return list(session.scalars(statement))


def categories(session: Session) -> list[str]:
    """Every catalog category, for the queue's filter."""
    return list(
        session.scalars(select(CatalogItem.category).distinct().order_by(CatalogItem.category))
    )


def slate_categories(session: Session, tasks: list[ReviewTask]) -> dict[int, list[str]]:
    """Per task id, the categories of its proposed items in position order, each once."""
    ids = {p.item_id for task in tasks for p in task.decision.proposed}
    found = (
        dict(
            session.execute(
                select(CatalogItem.item_id, CatalogItem.category).where(
                    CatalogItem.item_id.in_(ids)
                )
            ).all()
        )
        if ids
        else {}
    )
    result = {}
    for task in tasks:
        ordered = sorted(task.decision.proposed, key=lambda p: p.position)
        result[task.id] = list(
            dict.fromkeys(found[p.item_id] for p in ordered if p.item_id in found)
        )
    return result
