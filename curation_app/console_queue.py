"""The queue page: counts, and the waiting tasks as links, filtered by route and category.

Curators are not told the route of tasks made under risk-controlled routing (so that audits
stay blinded, `route_blinding`): those rows read "review", a route filter never matches
them, and the held and overdue-check counts are one "overdue" count. Admins see every route.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from bandit.db.models import utcnow
from bandit.engine.vocabulary import Route, RoutingMode
from bandit.services import configs, queue_view, review
from bandit.services.review import overflow
from bandit.services.review import queue as review_queue
from curation_app import review_forms, route_blinding
from curation_app.auth import ADMIN, current_curator_id
from curation_app.console import bp
from curation_app.db import transaction

ROUTES = (Route.REVIEW_BEFORE, Route.REVIEW_AFTER)


@dataclass(frozen=True)
class QueueLine:
    """A queue row with who the task is for."""

    row: review_forms.QueueRow
    # The route and overflow label as this viewer may read them.
    route: str
    overflow: str
    segment: str
    budget: float | None
    categories: list[str]


@bp.get("/")
@login_required
def queue() -> ResponseReturnValue:
    """Queue counts and the waiting tasks in the order curators will get them."""
    with transaction() as db:
        overflow.upkeep(db)
    now = utcnow()
    _, config = configs.active_config(db)
    is_admin = current_user.role == ADMIN
    blinded = () if is_admin else route_blinding.blinded_config_ids(db)
    route = request.args.get("route", "").strip()
    route = route if route in ROUTES else ""
    categories = queue_view.categories(db)
    category = request.args.get("category", "").strip()
    category = category if category in categories else ""
    tasks = queue_view.waiting_tasks(
        db, route or None, category or None, routes_hidden_under=blinded
    )
    slate_categories = queue_view.slate_categories(db, tasks)
    lines = []
    for task, row in zip(tasks, review_forms.queue_rows(db, tasks, now), strict=True):
        context = task.decision.context
        budget = context.get("budget")
        hidden = task.decision.policy_config_id in blinded
        lines.append(
            QueueLine(
                row=row,
                route=route_blinding.shown_route(task, hidden),
                overflow=route_blinding.shown_overflow(task, hidden, now),
                segment=str(context.get("segment") or ""),
                budget=float(budget) if isinstance(budget, int | float) else None,
                categories=slate_categories.get(task.id, []),
            )
        )
    return render_template(
        "queue.html",
        summary=review_queue.queue_summary(db, now),
        lines=lines,
        held=review.held_task(db, current_curator_id(), now),
        config=config,
        describe_age=review_forms.describe_age,
        # Under risk-controlled routing a curator's route filter would match nothing new.
        routes=() if blinded and config.routing_mode == RoutingMode.RISK_CONTROLLED else ROUTES,
        route=route,
        overdue_merged=bool(blinded),  # route_blinding.overdue_counts_merged, already known
        categories=categories,
        category=category,
        filtered=bool(route or category),
    )
