"""The curators' console: the queue, the review page of a held task, and catalog search."""

from __future__ import annotations

import time
from collections.abc import Mapping

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from bandit.db.models import ReviewTask, utcnow
from bandit.engine.vocabulary import AuditAction, Route, TaskStatus
from bandit.services import audit, catalog_store, configs, customers, review
from bandit.services.review import overflow
from bandit.services.review import queue as review_queue
from curation_app import review_forms
from curation_app.auth import current_curator_id, current_username
from curation_app.db import get_session, transaction
from curation_app.errors import status_for

bp = Blueprint("console", __name__)
SEARCH_LIMIT = 20
SEARCH_MIN_CHARS = 2
SEARCH_MAX_CHARS = 100


def _error_page(status: int, message: str) -> ResponseReturnValue:
    return render_template("error.html", status=status, message=message), status


def _next_task_or_queue() -> ResponseReturnValue:
    with transaction() as session:
        overflow.upkeep(session)
    with transaction() as session:
        claimed = review.claim_task(session, current_curator_id(), current_username())
    if claimed is None:
        flash("The queue is empty: nothing waits for review.", "info")
        return redirect(url_for("console.queue"))
    return redirect(url_for("console.task", task_id=claimed.task.id))


@bp.get("/")
@login_required
def queue() -> ResponseReturnValue:
    """Queue counts and the waiting tasks in the order curators will get them."""
    with transaction() as session:
        overflow.upkeep(session)
    now = utcnow()
    _, config = configs.active_config(session)
    return render_template(
        "queue.html",
        summary=review_queue.queue_summary(session, now),
        rows=review_forms.queue_rows(session, review_queue.waiting_tasks(session), now),
        held=review.held_task(session, current_curator_id(), now),
        config=config,
        describe_age=review_forms.describe_age,
    )


@bp.post("/tasks/next")
@login_required
def next_task() -> ResponseReturnValue:
    """Claim the most informative waiting task (or the one already held) and open it."""
    return _next_task_or_queue()


def _held_or_refusal(task_id: int) -> ReviewTask | ResponseReturnValue:
    """The task if this curator holds its lease, else the error page that says why not."""
    task = get_session().get(ReviewTask, task_id)
    if task is None:
        return _error_page(404, f"There is no review task {task_id}.")
    if task.status == TaskStatus.DONE:
        return _error_page(409, f"Task {task_id} has already been reviewed.")
    mine = task.curator_id == current_curator_id()
    live = task.leased_until is not None and task.leased_until >= utcnow()
    if task.status == TaskStatus.CLAIMED and live and not mine:
        return _error_page(403, f"Task {task_id} is being reviewed by another curator.")
    if task.status != TaskStatus.CLAIMED or not live:
        return _error_page(
            409,
            f"You do not hold task {task_id} (it is unclaimed or your lease ran out). "
            "Use “Review next task” on the queue page to claim work.",
        )
    return task


def _render_task(
    task: ReviewTask,
    inputs: Mapping[int, review_forms.PositionInput] | None = None,
    error: str | None = None,
    status: int = 200,
    rendered_at: str | None = None,
) -> ResponseReturnValue:
    session = get_session()
    decision = task.decision
    inputs = dict(inputs or {})
    _, config = configs.active_config(session)
    return render_template(
        "task.html",
        task=task,
        decision=decision,
        error=error,
        delivered_already=task.route == Route.REVIEW_AFTER and task.review_round == 1,
        second_opinion=task.review_round > 1,
        blinded=config.blinded_review,
        heartbeat_ms=review_forms.heartbeat_interval_ms(config.review_lease_seconds),
        summary=review_forms.customer_summary(customers.with_profile(session, decision.context)),
        context_rows=review_forms.raw_context(decision.context),
        slate=review_forms.slate_rows(session, decision, blinded=config.blinded_review),
        alternates=review_forms.alternates(session, decision),
        inputs=inputs,
        default_input=review_forms.PositionInput(),
        chosen=review_forms.chosen_items(session, inputs),
        rendered_at=rendered_at or f"{time.time():.3f}",
    ), status


@bp.get("/tasks/<int:task_id>")
@login_required
def task(task_id: int) -> ResponseReturnValue:
    """The review page of a task this curator holds."""
    held = _held_or_refusal(task_id)
    if not isinstance(held, ReviewTask):
        return held
    return _render_task(held)


@bp.post("/tasks/<int:task_id>")
@login_required
def submit(task_id: int) -> ResponseReturnValue:
    """Store the curator's verdicts, then open the next task."""
    session = get_session()
    task = session.get(ReviewTask, task_id)
    if task is None:
        return _error_page(404, f"There is no review task {task_id}.")
    form = request.form
    positions = [p.position for p in task.decision.proposed]
    verdicts, inputs = review_forms.parse_verdicts(form, positions)
    try:
        with transaction():
            seconds = review_forms.seconds_spent(form, time.time())
            recorded = review.submit_review(
                session,
                task_id,
                current_curator_id(),
                form.get("lease_token", ""),
                verdicts,
                seconds,
            )
            if recorded:
                audit.record(
                    session,
                    AuditAction.TASK_SUBMIT,
                    current_username(),
                    current_curator_id(),
                    f"task {task_id}",
                    route=task.route,
                    verdicts=review_forms.verdict_summary(verdicts),
                    seconds=round(seconds, 1),
                )
    except (review.TaskNotFound, review.LeaseLost) as error:
        return _error_page(status_for(error), f"Task {task_id}: {error}")
    except review.ReviewError as error:
        # Keep the first render time: the minutes before a rejected submit are review time too.
        started = form.get("rendered_at") if review_forms.render_time(form) is not None else None
        return _render_task(task, inputs, str(error), status_for(error), started)
    flash(review_forms.saved_message(task.route, verdicts, recorded, task.review_round), "success")
    return _next_task_or_queue()


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id: int) -> ResponseReturnValue:
    """Give a held task back to the queue."""
    try:
        with transaction() as session:
            review.release(session, task_id, current_curator_id())
            audit.record(
                session,
                AuditAction.TASK_RELEASE,
                current_username(),
                current_curator_id(),
                f"task {task_id}",
            )
    except review.ReviewError as error:
        return _error_page(status_for(error), f"Task {task_id}: {error}")
    flash(f"Task {task_id} went back to the queue.", "info")
    return redirect(url_for("console.queue"))


@bp.post("/tasks/<int:task_id>/heartbeat")
@login_required
def heartbeat(task_id: int) -> ResponseReturnValue:
    """Renew this curator's lease while the review page stays open (JSON, CSRF header)."""
    body = request.get_json(silent=True)
    token = body.get("lease_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return jsonify(error="lease_token: required"), 400
    try:
        with transaction() as session:
            until = review.renew_lease(session, task_id, current_curator_id(), token)
    except review.ReviewError as error:
        return jsonify(error=f"Task {task_id}: {error}"), status_for(error)
    return jsonify(task_id=task_id, leased_until=until.isoformat())


@bp.get("/catalog/search")
@login_required
def catalog_search() -> ResponseReturnValue:
    """Catalog items matching `q` (at least two characters), optionally in one category."""
    query = request.args.get("q", "").strip()[:SEARCH_MAX_CHARS]
    category = request.args.get("category", "").strip()[:SEARCH_MAX_CHARS] or None
    if len(query) < SEARCH_MIN_CHARS:
        return jsonify(items=[])
    items = catalog_store.search_items(get_session(), query, category, SEARCH_LIMIT)
    return jsonify(
        items=[
            {
                "item_id": item.item_id,
                "title": item.title,
                "category": item.category,
                "price": item.price,
                "style": (item.attributes or {}).get("style"),
                "color": (item.attributes or {}).get("color"),
            }
            for item in items
        ]
    )
