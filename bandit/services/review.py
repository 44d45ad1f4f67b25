"""The review queue: claiming tasks under a lease and recording curators' verdicts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import set_committed_value

from bandit.db.models import (
    CuratorAction,
    Decision,
    FinalSlateItem,
    ReviewTask,
    SlateVerification,
    utcnow,
)
from bandit.routing import REVIEW_AFTER, REVIEW_BEFORE
from bandit.services import configs, double_review
from bandit.services.catalog_store import items_by_id
from bandit.services.decisions import IN_REVIEW, PENDING_REVIEW, decision_config, mark_delivered
from bandit.services.review_queue import CLAIMED, DONE, OPEN, QUEUE_ORDER, claimable

__all__ = ["CLAIMED", "DONE", "OPEN"]
VERDICTS = ("keep", "remove", "swap")
CORRECTED = "corrected"
REINSTATED = "reinstated"
CLAIM_ATTEMPTS = 5


class ReviewError(Exception):
    """A review request cannot be honoured; `status` is the matching HTTP code."""

    status = 400


class TaskNotFound(ReviewError):
    status = 404


class LeaseLost(ReviewError):
    status = 409


class SameCurator(ReviewError):
    """A second review by the curator who gave the first: it would not be independent."""

    status = 409


@dataclass(frozen=True)
class ItemVerdict:
    """A curator's verdict on one proposed position."""

    position: int
    verdict: str
    replacement_item_id: str | None = None
    reason: str = ""


def held_task(session: Session, curator_id: int, now: datetime) -> ReviewTask | None:
    """The task this curator holds under a live lease, if any."""
    return session.scalars(
        select(ReviewTask).where(
            ReviewTask.curator_id == curator_id,
            ReviewTask.status == CLAIMED,
            ReviewTask.leased_until >= now,
        )
    ).first()


def claim_next(session: Session, curator_id: int, now: datetime | None = None) -> ReviewTask | None:
    """Lease the most informative waiting task to the curator; None when the queue is empty.

    The lease is taken by a conditional UPDATE that only succeeds while the task is still
    claimable, so two curators can never hold the same task; on PostgreSQL the candidate row
    is also locked with SKIP LOCKED so concurrent claimers do not queue on one row. Commits.
    """
    now = now or utcnow()
    held = held_task(session, curator_id, now)
    if held is not None:
        return held
    _, config = configs.active_config(session)
    for _ in range(CLAIM_ATTEMPTS):
        query = (
            select(ReviewTask.id)
            .where(claimable(now), double_review.not_reviewed_by(curator_id))
            .order_by(*QUEUE_ORDER)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        task_id = session.scalar(query)
        if task_id is None:
            session.commit()
            return None
        claimed = session.execute(
            update(ReviewTask)
            .where(ReviewTask.id == task_id, claimable(now))
            .values(
                status=CLAIMED,
                curator_id=curator_id,
                lease_token=uuid.uuid4().hex,
                leased_until=now + timedelta(seconds=config.review_lease_seconds),
                claimed_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            task = session.get(ReviewTask, task_id, populate_existing=True)
            assert task is not None
            # The claimer shows the slate and alternates (candidates), never the per-position pmfs.
            _load_decision(session, task, Decision.position_pmfs)
            if task.decision.status == PENDING_REVIEW:
                task.decision.status = IN_REVIEW
            session.commit()
            return task
        session.rollback()
    return None


def _load_decision(session: Session, task: ReviewTask, *deferred: Any) -> Decision:
    """The task's decision without the bulky JSON columns this request does not use.

    A deferred column still loads on first access. It is set as `task.decision` directly:
    a lazy load from a task read with populate_existing would fetch the whole row again.
    """
    decision = session.get(
        Decision, task.decision_id, options=[defer(column) for column in deferred]
    )
    assert decision is not None
    set_committed_value(task, "decision", decision)
    return decision


def release(
    session: Session,
    task_id: int,
    curator_id: int,
    now: datetime | None = None,
    lease_token: str | None = None,
) -> None:
    """Give a held task back to the queue (only this lease's, when `lease_token` is given)."""
    now = now or utcnow()
    task = session.get(ReviewTask, task_id, populate_existing=True)
    if task is None:
        raise TaskNotFound(f"no review task {task_id}")
    if task.status != CLAIMED or task.curator_id != curator_id:
        raise LeaseLost("you do not hold this task")
    if lease_token is not None and task.lease_token != lease_token:
        raise LeaseLost("this lease token is not the task's current lease")
    if task.leased_until is None or task.leased_until < now:
        raise LeaseLost("your lease on this task ran out; it is back in the queue")
    task.status, task.curator_id, task.lease_token, task.leased_until = OPEN, None, None, None
    if task.decision.status == IN_REVIEW:
        task.decision.status = PENDING_REVIEW
    session.commit()


def renew_lease(
    session: Session, task_id: int, curator_id: int, lease_token: str, now: datetime | None = None
) -> datetime:
    """Extend a live lease by the configured lease time (the review page's heartbeat). Commits.

    A lease that already ran out is not revived: the task went back to the queue, and a
    colleague may hold it by now.
    """
    now = now or utcnow()
    _, config = configs.active_config(session)
    until = now + timedelta(seconds=config.review_lease_seconds)
    renewed = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task_id,
            ReviewTask.status == CLAIMED,
            ReviewTask.curator_id == curator_id,
            ReviewTask.lease_token == lease_token,
            ReviewTask.leased_until >= now,
        )
        .values(leased_until=until)
        .execution_options(synchronize_session=False)
    )
    if renewed.rowcount != 1:  # type: ignore[attr-defined]
        missing = session.get(ReviewTask, task_id) is None
        session.rollback()
        if missing:
            raise TaskNotFound(f"no review task {task_id}")
        raise LeaseLost(LOST_LEASE)
    session.commit()
    return until


LOST_LEASE = (
    "this task is no longer leased to you (your lease ran out, or it was released or taken "
    "over); nothing was saved"
)


def submit_review(
    session: Session,
    task_id: int,
    curator_id: int,
    lease_token: str,
    verdicts: Sequence[ItemVerdict],
    seconds_spent: float,
    now: datetime | None = None,
) -> bool:
    """Record the verdicts and the curated slate. Commits.

    Returns True when recorded now, False when this exact lease already recorded them (a
    repeated submit changes nothing). Raises before writing anything if the verdicts are
    invalid or the curator no longer holds the task.
    """
    now = now or utcnow()
    # Fresh from the database: another process may have finished or reclaimed it meanwhile.
    task = session.get(ReviewTask, task_id, populate_existing=True)
    if task is None:
        raise TaskNotFound(f"no review task {task_id}")
    if task.status == DONE and task.curator_id == curator_id and task.lease_token == lease_token:
        return False
    if task.status != CLAIMED or task.curator_id != curator_id or task.lease_token != lease_token:
        raise LeaseLost(LOST_LEASE)
    if task.leased_until is None or task.leased_until < now:
        raise LeaseLost(LOST_LEASE)
    if double_review.reviewed_other_round(session, task, curator_id):
        raise SameCurator(double_review.SAME_CURATOR)
    # A verdict needs the proposal, not the candidate list or the pmfs (the bulk of the row).
    decision = _load_decision(session, task, Decision.candidates, Decision.position_pmfs)
    _check_verdicts(session, decision, verdicts)
    if not 0 <= seconds_spent < 86_400:
        raise ReviewError("seconds_spent must be between 0 and 86400")
    done = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task_id,
            ReviewTask.status == CLAIMED,
            ReviewTask.curator_id == curator_id,
            ReviewTask.lease_token == lease_token,
            ReviewTask.leased_until >= now,
        )
        .values(status=DONE, completed_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise LeaseLost(LOST_LEASE)
    task.status, task.completed_at = DONE, now
    second_opinion = task.review_round != double_review.FIRST_ROUND
    _record_actions(session, decision, task, curator_id, verdicts, seconds_spent, now)
    if not second_opinion:
        _settle_slate(session, decision, task, curator_id, verdicts, now)
        double_review.queue_second_review(session, task, now)
    session.commit()
    return True


def _check_verdicts(session: Session, decision: Decision, verdicts: Sequence[ItemVerdict]) -> None:
    positions = {p.position for p in decision.proposed}
    given = [v.position for v in verdicts]
    if sorted(given) != sorted(positions):
        raise ReviewError(
            f"give exactly one verdict for each slate position {sorted(positions)}; got {given}"
        )
    replacements = [v.replacement_item_id for v in verdicts if v.verdict == "swap"]
    known = items_by_id(session, [r for r in replacements if r])
    slate_items = {p.item_id for p in decision.proposed}
    for verdict in verdicts:
        if verdict.verdict not in VERDICTS:
            raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}")
        if len(verdict.reason) > 500:
            raise ReviewError("reason: at most 500 characters")
        if verdict.verdict != "swap":
            continue
        item_id = verdict.replacement_item_id
        if not item_id:
            raise ReviewError(f"position {verdict.position}: a swap needs a replacement item")
        item = known.get(item_id)
        if item is None:
            raise ReviewError(f"position {verdict.position}: unknown item {item_id!r}")
        if not item.active or item.stock <= 0 or item_id in decision.exclude:
            raise ReviewError(f"position {verdict.position}: item {item_id!r} is not eligible")
        if item_id in slate_items:
            raise ReviewError(
                f"position {verdict.position}: item {item_id!r} is already on the slate"
            )
    if len(replacements) != len(set(replacements)):
        raise ReviewError("the same replacement item is used twice")


def _record_actions(
    session: Session,
    decision: Decision,
    task: ReviewTask,
    curator_id: int,
    verdicts: Sequence[ItemVerdict],
    seconds_spent: float,
    now: datetime,
) -> None:
    by_position = {p.position: p for p in decision.proposed}
    per_item_seconds = seconds_spent / max(1, len(verdicts))
    for verdict in sorted(verdicts, key=lambda v: v.position):
        proposed = by_position[verdict.position]
        session.add(
            CuratorAction(
                task_id=task.id,
                decision_id=decision.id,
                curator_id=curator_id,
                position=verdict.position,
                item_id=proposed.item_id,
                verdict={"keep": "kept", "remove": "removed", "swap": "swapped"}[verdict.verdict],
                replacement_item_id=verdict.replacement_item_id
                if verdict.verdict == "swap"
                else None,
                reason=verdict.reason,
                seconds_spent=per_item_seconds,
                created_at=now,
                agreement_only=task.review_round != double_review.FIRST_ROUND,
            )
        )


def _settle_slate(
    session: Session,
    decision: Decision,
    task: ReviewTask,
    curator_id: int,
    verdicts: Sequence[ItemVerdict],
    now: datetime,
) -> None:
    """The first review's verdicts become the delivered (or corrected) slate."""
    by_position = {p.position: p for p in decision.proposed}
    final: list[FinalSlateItem] = []
    for verdict in sorted(verdicts, key=lambda v: v.position):
        proposed = by_position[verdict.position]
        tag = {"keep": "kept", "remove": "removed", "swap": "swapped_out"}[verdict.verdict]
        final.append(
            FinalSlateItem(
                position=verdict.position,
                item_id=proposed.item_id,
                tag=tag,
                decided_by="curator",
                replaced_item_id=None,
            )
        )
        if verdict.verdict == "swap":
            final.append(
                FinalSlateItem(
                    position=verdict.position,
                    item_id=verdict.replacement_item_id or "",
                    tag="swapped_in",
                    decided_by="curator",
                    replaced_item_id=proposed.item_id,
                )
            )
    if task.route == REVIEW_AFTER:
        _log_verification(session, decision, task, curator_id, final, now)
    decision.final_slate = final
    if task.route == REVIEW_BEFORE:
        mark_delivered(decision, decision_config(session, decision), now)


def _log_verification(
    session: Session,
    decision: Decision,
    task: ReviewTask,
    curator_id: int,
    final: Sequence[FinalSlateItem],
    now: datetime,
) -> None:
    """A verify-after review: the delivered slate is overturned (corrected) or reinstated."""
    before = [p.item_id for p in sorted(decision.proposed, key=lambda p: p.position)]
    after = [f.item_id for f in final if f.tag in ("kept", "swapped_in")]
    session.add(
        SlateVerification(
            decision_id=decision.id,
            task_id=task.id,
            curator_id=curator_id,
            outcome=REINSTATED if after == before else CORRECTED,
            delivered_before=before,
            delivered_after=after,
            created_at=now,
        )
    )
