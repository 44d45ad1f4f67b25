"""The curators' console: the review page of a held task, submit, release and the heartbeat.

Submit, skip and undo answer a plain form post with a redirect and a flashed message, and a
request that asks for JSON (the page's own script) with the message and the next page's URL,
so the curator moves on without a full reload. Each action commits once, with its audit entry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from sqlalchemy import select

from bandit.db.models import CuratorAction, ReviewTask, utcnow
from bandit.engine.vocabulary import AuditAction, TaskStatus
from bandit.services import audit, configs, explanations, review
from bandit.services.curator_day import curator_day
from bandit.services.review import overflow
from bandit.services.review.undo import undo_deadline
from curation_app import review_forms, route_blinding, task_view
from curation_app.auth import ADMIN, current_curator_id, current_username
from curation_app.db import get_runtime, get_session, transaction
from curation_app.errors import status_for

bp = Blueprint("console", __name__)
LAST_SUBMIT = "last_submit"


def wants_json() -> bool:
    """True when the page's script asked for a JSON answer instead of a redirect."""
    return request.accept_mimetypes.best == "application/json"


def error_answer(status: int, message: str, **extra: Any) -> ResponseReturnValue:
    """The error as JSON for the script, as a page otherwise."""
    if wants_json():
        return jsonify(error=message, **extra), status
    return render_template("error.html", status=status, message=message), status


def moved_on(message: str, category: str, next_url: str, **extra: Any) -> ResponseReturnValue:
    """After an action: JSON with the message and where to go, or a flash and a redirect."""
    if wants_json():
        return jsonify(message=message, category=category, next_url=next_url, **extra)
    flash(message, category)
    return redirect(next_url)


def claim_next_url(excluding: int | None = None) -> tuple[str, bool]:
    """Claim the next task for this curator: (its URL, True), or (the queue's URL, False)."""
    with transaction() as db:
        overflow.upkeep(db)
    with transaction() as db:
        claimed = review.claim_task(
            db, current_curator_id(), current_username(), excluding=excluding
        )
    if claimed is None:
        return url_for("console.queue"), False
    return url_for("console.task", task_id=claimed.task.id), True


@bp.post("/tasks/next")
@login_required
def next_task() -> ResponseReturnValue:
    """Claim the most informative waiting task (or the one already held) and open it."""
    url, found = claim_next_url()
    if not found:
        return moved_on("The queue is empty: nothing waits for review.", "info", url)
    return redirect(url) if not wants_json() else jsonify(next_url=url)


def _held_or_refusal(task_id: int) -> ReviewTask | ResponseReturnValue:
    """The task if this curator holds its lease, else the error page that says why not."""
    task = get_session().get(ReviewTask, task_id)
    if task is None:
        return error_answer(404, f"There is no review task {task_id}.")
    if task.status == TaskStatus.DONE:
        return error_answer(409, f"Task {task_id} has already been reviewed.")
    mine = task.curator_id == current_curator_id()
    live = task.leased_until is not None and task.leased_until >= utcnow()
    if task.status == TaskStatus.CLAIMED and live and not mine:
        return error_answer(403, f"Task {task_id} is being reviewed by another curator.")
    if task.status != TaskStatus.CLAIMED or not live:
        return error_answer(
            409,
            f"You do not hold task {task_id} (it is unclaimed or your lease ran out). "
            "Use “Review next task” on the queue page to claim work.",
        )
    return task


def _undo_offer(now: datetime) -> dict[str, Any] | None:
    """The curator's last submit, if it can still be undone: task id and latest deadline."""
    task_id = session.get(LAST_SUBMIT)
    task = get_session().get(ReviewTask, task_id) if isinstance(task_id, int) else None
    if task is None or task.status != TaskStatus.DONE or task.curator_id != current_curator_id():
        return None
    deadline = undo_deadline(task)
    if deadline is None or deadline <= now:
        return None
    # A learner pass ends the window before the deadline: no offer the server would refuse.
    learned = get_session().scalar(
        select(CuratorAction.id)
        .where(CuratorAction.task_id == task.id, CuratorAction.learned_at.is_not(None))
        .limit(1)
    )
    if learned is not None:
        return None
    return {"task_id": task.id, "until": deadline.isoformat()}


def _render_task(
    task: ReviewTask,
    inputs: Mapping[int, review_forms.PositionInput] | None = None,
    error: str | None = None,
    status: int = 200,
    rendered_at: str | None = None,
) -> ResponseReturnValue:
    db = get_session()
    decision = task.decision
    _, config = configs.active_config(db)
    now = utcnow()
    is_admin = current_user.role == ADMIN
    hidden = route_blinding.route_hidden(db, task, is_admin)
    panel = task_view.customer_panel(db, decision, route_hidden=hidden)
    budget_amount = task_view.budget_amount(decision, panel)
    kept_categories = {item.category for item in panel.kept if item.category}
    cards = task_view.cards(db, decision, budget_amount, config.blinded_review, kept_categories)
    first_round = task.review_round == 1
    return render_template(
        "task.html",
        task=task,
        route=route_blinding.shown_route(task, hidden),
        decision=decision,
        error=error,
        delivered_already=route_blinding.already_delivered(task, hidden) and first_round,
        route_hidden=hidden and first_round,
        second_opinion=task.review_round > 1,
        blinded=config.blinded_review,
        heartbeat_ms=review_forms.heartbeat_interval_ms(config.review_lease_seconds),
        panel=panel,
        cards=cards,
        budget=task_view.Budget(
            budget_amount, task_view.budget_source(decision, panel), task_view.total(cards)
        ),
        inputs=dict(inputs or {}),
        default_input=review_forms.PositionInput(),
        chosen=review_forms.chosen_items(db, dict(inputs or {})),
        rendered_at=rendered_at or f"{time.time():.3f}",
        day=curator_day(db, current_curator_id(), now),
        undo=_undo_offer(now),
        is_admin=is_admin,
    ), status


@bp.get("/tasks/<int:task_id>")
@login_required
def task(task_id: int) -> ResponseReturnValue:
    """The review page of a task this curator holds."""
    held = _held_or_refusal(task_id)
    if not isinstance(held, ReviewTask):
        return held
    # The decision was logged without explanations: the curator is the one who reads them.
    with transaction() as session:
        explanations.explain_decision(session, get_runtime(), held.decision)
    return _render_task(held)


def _saved_verdicts(task_id: int) -> list[str]:
    """The stored verdicts of a task, one line per position, counted from 1 as on the page."""
    actions = get_session().scalars(
        select(CuratorAction)
        .where(CuratorAction.task_id == task_id)
        .order_by(CuratorAction.created_at, CuratorAction.position)
    )
    return [review_forms.describe_action(action) for action in actions]


def _seconds_spent(form: Mapping[str, str], task: ReviewTask, now: float) -> float:
    """The review time the page counted (visible, focused), never more than the time held."""
    wall = review_forms.seconds_spent(form, now)
    active = review_forms.active_seconds(form)
    if active is None:
        return wall
    held_since = task.claimed_at.timestamp() if task.claimed_at else now - wall
    return min(active, max(now - held_since, 0.0), review_forms.MAX_SECONDS - 1)


@bp.post("/tasks/<int:task_id>")
@login_required
def submit(task_id: int) -> ResponseReturnValue:
    """Store the curator's verdicts, then open the next task."""
    db = get_session()
    task = db.get(ReviewTask, task_id)
    if task is None:
        return error_answer(404, f"There is no review task {task_id}.")
    form = request.form
    positions = [p.position for p in task.decision.proposed]
    verdicts, inputs = review_forms.parse_verdicts(form, positions)
    try:
        with transaction():
            seconds = _seconds_spent(form, task, time.time())
            recorded = review.submit_review(
                db, task_id, current_curator_id(), form.get("lease_token", ""), verdicts, seconds
            )
            if recorded:
                audit.record(
                    db,
                    AuditAction.TASK_SUBMIT,
                    current_username(),
                    current_curator_id(),
                    f"task {task_id}",
                    route=task.route,
                    verdicts=review_forms.verdict_summary(verdicts),
                    seconds=round(seconds, 1),
                )
    except (review.TaskNotFound, review.LeaseLost) as error:
        return error_answer(status_for(error), f"Task {task_id}: {error}")
    except review.ReviewError as error:
        message, position = review_forms.console_error(error)
        if wants_json():
            return jsonify(error=message, position=position), status_for(error)
        # Keep the first render time: the minutes before a rejected submit are review time too.
        started = form.get("rendered_at") if review_forms.render_time(form) is not None else None
        return _render_task(task, inputs, message, status_for(error), started)
    if not recorded:
        # Another tab (or a repeated click) saved this task first: say what was kept.
        kept = _saved_verdicts(task_id)
        url, _ = claim_next_url()
        message = "This task was already saved from another tab; those verdicts were kept: "
        return moved_on(message + "; ".join(kept) + ".", "info", url, kept=kept)
    session[LAST_SUBMIT] = task_id
    hidden = route_blinding.route_hidden(db, task, current_user.role == ADMIN)
    shown = route_blinding.shown_route(task, hidden)
    message = review_forms.saved_message(shown, verdicts, True, task.review_round)
    url, _ = claim_next_url()
    return moved_on(message, "success", url, task_id=task_id)


@bp.post("/tasks/<int:task_id>/release")
@login_required
def release(task_id: int) -> ResponseReturnValue:
    """Give a held task back to the queue."""
    try:
        with transaction() as db:
            review.release(db, task_id, current_curator_id())
            audit.record(
                db,
                AuditAction.TASK_RELEASE,
                current_username(),
                current_curator_id(),
                f"task {task_id}",
            )
    except review.ReviewError as error:
        return error_answer(status_for(error), f"Task {task_id}: {error}")
    return moved_on(f"Task {task_id} went back to the queue.", "info", url_for("console.queue"))


@bp.post("/tasks/<int:task_id>/heartbeat")
@login_required
def heartbeat(task_id: int) -> ResponseReturnValue:
    """Renew this curator's lease while the review page stays open (JSON, CSRF header)."""
    body = request.get_json(silent=True)
    token = body.get("lease_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return jsonify(error="lease_token: required"), 400
    try:
        with transaction() as db:
            until = review.renew_lease(db, task_id, current_curator_id(), token)
    except review.ReviewError as error:
        return jsonify(error=f"Task {task_id}: {error}"), status_for(error)
    return jsonify(task_id=task_id, leased_until=until.isoformat())


# The queue, search and flow routes live in their own modules on this blueprint.
from curation_app import console_queue, console_search, review_flow  # noqa: E402, F401
