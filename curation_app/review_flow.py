"""Moving through tasks: claim one from the queue, skip one (to the back of my queue), undo.

Each action commits once, with its audit entry inside the same transaction.
"""

from __future__ import annotations

from flask import redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required

from bandit.engine.vocabulary import AuditAction
from bandit.services import audit, review
from bandit.services.review.claims import lock_curator
from bandit.services.review.skips import claim_chosen, skip_task
from bandit.services.review.undo import undo_submit
from curation_app.auth import current_curator_id, current_username
from curation_app.console import LAST_SUBMIT, bp, claim_next_url, error_answer, moved_on
from curation_app.db import transaction
from curation_app.errors import status_for


@bp.post("/tasks/<int:task_id>/skip")
@login_required
def skip(task_id: int) -> ResponseReturnValue:
    """Give the task back and open the next one; my "next" serves it after all others."""
    try:
        with transaction() as db:
            skip_task(db, task_id, current_curator_id(), request.form.get("lease_token", ""))
            audit.record(
                db, AuditAction.TASK_SKIP, current_username(), current_curator_id(),
                f"task {task_id}",
            )  # fmt: skip
    except review.ReviewError as error:
        return error_answer(status_for(error), f"Task {task_id}: {error}")
    url, found = claim_next_url(excluding=task_id)
    if not found:
        message = f"Skipped task {task_id}; nothing else waits, so it stays in the queue."
        return moved_on(message, "info", url, skipped=task_id)
    return moved_on(f"Skipped task {task_id}: you will get it again after the rest.", "info", url)


@bp.post("/tasks/<int:task_id>/undo")
@login_required
def undo(task_id: int) -> ResponseReturnValue:
    """Take back my last submit (within the undo window) and reopen that task."""
    try:
        with transaction() as db:
            lock_curator(db, current_curator_id())
            task = undo_submit(db, task_id, current_curator_id())
            audit.record(
                db, AuditAction.TASK_UNDO, current_username(), current_curator_id(),
                f"task {task_id}",
            )  # fmt: skip
    except review.ReviewError as error:
        return error_answer(status_for(error), f"Task {task_id}: cannot undo: {error}")
    session.pop(LAST_SUBMIT, None)
    url = url_for("console.task", task_id=task.id)
    return moved_on(f"Undone: task {task_id} is yours again, as it was before.", "info", url)


@bp.post("/tasks/<int:task_id>/claim")
@login_required
def claim(task_id: int) -> ResponseReturnValue:
    """Take the task picked on the queue page (or go back to the one already held)."""
    with transaction() as db:
        lock_curator(db, current_curator_id())
        task = claim_chosen(db, task_id, current_curator_id())
        if task is not None and task.id == task_id:
            audit.record(
                db, AuditAction.TASK_CLAIM, current_username(), current_curator_id(),
                f"task {task_id}", via="queue",
            )  # fmt: skip
    if task is None:
        return moved_on(
            f"Task {task_id} cannot be claimed: a colleague holds it, or it is done.",
            "error",
            url_for("console.queue"),
        )
    if task.id != task_id:
        return moved_on(
            f"Finish or give back task {task.id} first: you hold one task at a time.",
            "info",
            url_for("console.task", task_id=task.id),
        )
    return redirect(url_for("console.task", task_id=task_id))
