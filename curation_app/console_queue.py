"""The queue page: counts, and the waiting tasks as links, filtered by route and category."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request
from flask.typing import ResponseReturnValue
from flask_login import login_required

from bandit.db.models import utcnow
from bandit.engine.vocabulary import Route
from bandit.services import configs, queue_view, review
from bandit.services.review import overflow
from bandit.services.review import queue as review_queue
from curation_app import review_forms
from curation_app.auth import current_curator_id
from curation_app.console import bp
from curation_app.db import transaction

ROUTES = (Route.REVIEW_BEFORE, Route.REVIEW_AFTER)


@dataclass(frozen=True)
class QueueLine:
    """A queue row with who the task is for."""

    row: review_forms.QueueRow
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
    route = request.args.get("route", "").strip()
    route = route if route in ROUTES else ""
    categories = queue_view.categories(db)
    category = request.args.get("category", "").strip()
    category = category if category in categories else ""
    tasks = queue_view.waiting_tasks(db, route or None, category or None)
    slate_categories = queue_view.slate_categories(db, tasks)
    lines = []
    for task, row in zip(tasks, review_forms.queue_rows(db, tasks, now), strict=True):
        context = task.decision.context
        budget = context.get("budget")
        lines.append(
            QueueLine(
                row=row,
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
        routes=ROUTES,
        route=route,
        categories=categories,
        category=category,
        filtered=bool(route or category),
    )
