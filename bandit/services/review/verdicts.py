"""Recording a curator's verdicts on a leased task and settling the curated slate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import Update, bindparam, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from bandit.db.models import (
    CuratorAction,
    Decision,
    FinalSlateItem,
    ReviewTask,
    SlateVerification,
    UTCDateTime,
    utcnow,
)
from bandit.engine.vocabulary import (
    VERDICT_DONE,
    VERDICT_TAG,
    DecidedBy,
    SlateTag,
    TaskStatus,
    Verdict,
    VerificationOutcome,
)
from bandit.services import corrections
from bandit.services.catalog_store import items_by_id
from bandit.services.delivery import (
    decision_config,
    record_delivery,
    replace_final_slate,
    slate_entries,
)
from bandit.services.review import double_review
from bandit.services.review.claims import load_decision
from bandit.services.review.errors import (
    LOST_LEASE,
    DuplicateReplacement,
    LeaseLost,
    PositionError,
    ReviewError,
    SameCurator,
    TaskNotFound,
)

VERDICTS = tuple(Verdict)


@dataclass(frozen=True)
class ItemVerdict:
    """A curator's verdict on one proposed position."""

    position: int
    verdict: str
    replacement_item_id: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Submitted:
    """What a submit did, and the task it was for (so the caller need not read it again)."""

    recorded: bool
    task: ReviewTask


def submit_review(
    session: Session,
    task_id: int,
    curator_id: int,
    lease_token: str,
    verdicts: Sequence[ItemVerdict],
    seconds_spent: float,
    now: datetime | None = None,
) -> bool:
    """`submit_verdicts`, answering only whether the verdicts were recorded now."""
    return submit_verdicts(
        session, task_id, curator_id, lease_token, verdicts, seconds_spent, now
    ).recorded


def submit_verdicts(
    session: Session,
    task_id: int,
    curator_id: int,
    lease_token: str,
    verdicts: Sequence[ItemVerdict],
    seconds_spent: float,
    now: datetime | None = None,
) -> Submitted:
    """Record the verdicts and the curated slate. Flushes; the caller commits.

    `recorded` is True when recorded now, False when this exact lease already recorded them (a
    repeated submit changes nothing, even when it races the original). Raises before writing
    anything if the verdicts are invalid or the curator no longer holds the task.
    """
    now = now or utcnow()
    # Locked and fresh: a racing submit of the same lease waits here, then sees it done.
    task = session.get(ReviewTask, task_id, populate_existing=True, with_for_update=True)
    if task is None:
        raise TaskNotFound(f"no review task {task_id}")
    if (
        task.status == TaskStatus.DONE
        and task.curator_id == curator_id
        and task.lease_token == lease_token
    ):
        return Submitted(False, task)
    if (
        task.status != TaskStatus.CLAIMED
        or task.curator_id != curator_id
        or task.lease_token != lease_token
    ):
        raise LeaseLost(LOST_LEASE)
    if task.leased_until is None or task.leased_until < now:
        raise LeaseLost(LOST_LEASE)
    if double_review.reviewed_other_round(session, task, curator_id):
        raise SameCurator(double_review.SAME_CURATOR)
    # A verdict needs the proposal, not the candidate list or the pmfs (the bulk of the row).
    decision = load_decision(session, task, Decision.candidates, Decision.position_pmfs)
    _check_verdicts(session, decision, verdicts)
    if not 0 <= seconds_spent < 86_400:
        raise ReviewError("seconds_spent must be between 0 and 86400")
    done = session.execute(
        _done_update(),
        {"task_id": task_id, "holder": curator_id, "token": lease_token, "now": now},
        execution_options={"synchronize_session": False},
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(LOST_LEASE)
    # The UPDATE wrote these; the row in the session says so without writing them again.
    set_committed_value(task, "status", TaskStatus.DONE)
    set_committed_value(task, "completed_at", now)
    second_opinion = task.review_round != double_review.FIRST_ROUND
    seconds_spent += _carried_seconds(task, curator_id)
    _record_actions(session, decision, task, curator_id, verdicts, seconds_spent, now)
    if not second_opinion:
        _settle_slate(session, decision, task, curator_id, verdicts, now)
        double_review.queue_second_review(session, task, now)
    session.flush()
    return Submitted(True, task)


def _carried_seconds(task: ReviewTask, curator_id: int) -> float:
    """The seconds of this curator's submit of the task since undone, taken off the task."""
    # A colleague finishing a task given back after an undo spent only their own time; the
    # undoing curator's seconds stay on the task row.
    if task.withdrawn_by != curator_id:
        return 0.0
    carried = task.withdrawn_seconds
    task.withdrawn_seconds, task.withdrawn_by = 0.0, None
    return carried


@cache
def _done_update() -> Update:
    # Built once per process and bound per call (every submitted verdict runs it). Parameter
    # names differ from the table's columns: an UPDATE would take those as SET values.
    now = bindparam("now", type_=UTCDateTime())
    return (
        update(ReviewTask)
        .where(
            ReviewTask.id == bindparam("task_id"),
            ReviewTask.status == TaskStatus.CLAIMED,
            ReviewTask.curator_id == bindparam("holder"),
            ReviewTask.lease_token == bindparam("token"),
            ReviewTask.leased_until >= now,
        )
        .values(status=TaskStatus.DONE, completed_at=now)
    )


def _check_verdicts(session: Session, decision: Decision, verdicts: Sequence[ItemVerdict]) -> None:
    positions = {p.position for p in decision.proposed}
    given = [v.position for v in verdicts]
    if sorted(given) != sorted(positions):
        raise ReviewError(
            f"give exactly one verdict for each slate position {sorted(positions)}; got {given}"
        )
    replacements = [v.replacement_item_id for v in verdicts if v.verdict == Verdict.SWAP]
    known = items_by_id(session, [r for r in replacements if r])
    slate_items = {p.item_id for p in decision.proposed}
    for verdict in verdicts:
        if verdict.verdict not in VERDICTS:
            raise PositionError(verdict.position, f"verdict must be one of {', '.join(VERDICTS)}")
        if len(verdict.reason) > 500:
            raise PositionError(verdict.position, "reason: at most 500 characters")
        if verdict.verdict != Verdict.SWAP:
            continue
        item_id = verdict.replacement_item_id
        if not item_id:
            raise PositionError(verdict.position, "a swap needs a replacement item")
        item = known.get(item_id)
        if item is None:
            raise PositionError(verdict.position, f"unknown item {item_id!r}")
        if not item.active or item.stock <= 0 or item_id in decision.exclude:
            raise PositionError(verdict.position, f"item {item_id!r} is not eligible")
        if item_id in slate_items:
            raise PositionError(verdict.position, f"item {item_id!r} is already on the slate")
    if len(replacements) != len(set(replacements)):
        swaps = [v for v in verdicts if v.verdict == Verdict.SWAP]
        for item_id in dict.fromkeys(replacements):
            where = sorted(v.position for v in swaps if v.replacement_item_id == item_id)
            if len(where) > 1:
                raise DuplicateReplacement(str(item_id), where)


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
                verdict=VERDICT_DONE[Verdict(verdict.verdict)],
                replacement_item_id=verdict.replacement_item_id
                if verdict.verdict == Verdict.SWAP
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
    """The first review's verdicts: the delivered slate, or corrections of a delivered one."""
    by_position = {p.position: p for p in decision.proposed}
    final: list[FinalSlateItem] = []
    for verdict in sorted(verdicts, key=lambda v: v.position):
        proposed = by_position[verdict.position]
        tag = VERDICT_TAG[Verdict(verdict.verdict)]
        final.append(
            FinalSlateItem(
                position=verdict.position,
                item_id=proposed.item_id,
                tag=tag,
                decided_by=DecidedBy.CURATOR,
                replaced_item_id=None,
            )
        )
        if verdict.verdict == Verdict.SWAP:
            final.append(
                FinalSlateItem(
                    position=verdict.position,
                    item_id=verdict.replacement_item_id or "",
                    tag=SlateTag.SWAPPED_IN,
                    decided_by=DecidedBy.CURATOR,
                    replaced_item_id=proposed.item_id,
                )
            )
    if decision.delivered_slate is not None:
        # Verify-after: the customer has the slate; an overturn is a correction beside it.
        check = corrections.record_review_after(
            session, decision, task.id, curator_id, verdicts, now
        )
        _log_verification(session, decision, task, curator_id, check, now)
    else:
        record_delivery(
            session, decision, slate_entries(final), decision_config(session, decision), now
        )
    # The curator's judgement per item (kept, removed, swapped): labels, not the delivery.
    replace_final_slate(session, decision, final)


def _log_verification(
    session: Session,
    decision: Decision,
    task: ReviewTask,
    curator_id: int,
    check: corrections.SlateCheck,
    now: datetime,
) -> None:
    """A verify-after review: the current slate is overturned (corrected) or reinstated."""
    session.add(
        SlateVerification(
            decision_id=decision.id,
            task_id=task.id,
            curator_id=curator_id,
            outcome=VerificationOutcome.REINSTATED
            if check.correction is None
            else VerificationOutcome.CORRECTED,
            delivered_before=check.before,
            delivered_after=check.after,
            created_at=now,
        )
    )
