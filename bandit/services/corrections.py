"""Corrections: a later curator verdict on a delivered slate, stored beside the delivery.

A review-after overturn says what should replace what (by whom, when); the client decides
what to do about it. The delivered slate stays as sent, and the current slate is the
delivery with every correction applied in order, each position once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, SlateCorrection
from bandit.engine.vocabulary import CorrectionAction, EventChangeKind, Verdict
from bandit.services.delivery import add_change, delivered_slate


class PositionVerdict(Protocol):
    """What a correction needs of a curator's verdict on one position."""

    @property
    def position(self) -> int: ...

    @property
    def verdict(self) -> str: ...

    @property
    def replacement_item_id(self) -> str | None: ...


def corrections_of(session: Session, decision: Decision) -> list[SlateCorrection]:
    """The event's corrections, oldest first."""
    return list(
        session.scalars(
            select(SlateCorrection)
            .where(SlateCorrection.decision_id == decision.id)
            .order_by(SlateCorrection.id)
        )
    )


def current_slate(
    delivered: Sequence[dict[str, Any]], corrections: Sequence[SlateCorrection]
) -> list[dict[str, Any]]:
    """The delivered slate with each correction applied in order: one entry per position."""
    by_position = {
        entry["position"]: {
            "position": entry["position"],
            "item_id": entry["item_id"],
            "corrected": False,
            "correction_id": None,
        }
        for entry in delivered
    }
    for correction in corrections:
        for change in correction.changes:
            position = change["position"]
            if change["action"] == CorrectionAction.REMOVE:
                by_position.pop(position, None)
            else:
                by_position[position] = {
                    "position": position,
                    "item_id": change["replacement_item_id"],
                    "corrected": True,
                    "correction_id": correction.id,
                }
    return [by_position[position] for position in sorted(by_position)]


@dataclass(frozen=True)
class SlateCheck:
    """A verify-after verdict: the current slate before and after it, and its correction."""

    before: list[str]
    after: list[str]
    correction: SlateCorrection | None


def record_review_after(
    session: Session,
    decision: Decision,
    task_id: int,
    curator_id: int,
    verdicts: Sequence[PositionVerdict],
    now: datetime,
) -> SlateCheck:
    """Store a verify-after verdict: a correction if it overturns anything, else a reinstatement.

    The verdicts are on the proposal, as the curator saw it; each position's item as they
    left it (the proposed item kept, its swap-in, or nothing) is compared with what the
    position holds now, which is the proposal for a review-after slate but the first review's
    slate after an undo. Only a difference is a change: a repeat of what went out is a
    reinstatement, and an item kept where nothing was sent is put back (a `replace` of no
    item). Either way one outbox row tells the client; the delivered slate is not touched.
    """
    current = {
        entry["position"]: entry["item_id"]
        for entry in current_slate(delivered_slate(decision), corrections_of(session, decision))
    }
    left = _as_left(decision, verdicts)
    changes = []
    for position in sorted(left):
        wanted, held = left[position], current.get(position)
        if wanted == held:
            continue
        changes.append(
            {
                "position": position,
                "action": CorrectionAction.REMOVE if wanted is None else CorrectionAction.REPLACE,
                "item_id": held,
                "replacement_item_id": wanted,
            }
        )
    before = [current[position] for position in sorted(current)]
    after = [item for _, item in sorted({**current, **left}.items()) if item is not None]
    if not changes:
        add_change(
            session,
            decision,
            EventChangeKind.REINSTATED,
            {"verified_at": now.isoformat(), "curator_id": curator_id},
            now,
        )
        return SlateCheck(before, after, None)
    correction = SlateCorrection(
        decision_id=decision.id,
        task_id=task_id,
        curator_id=curator_id,
        changes=changes,
        created_at=now,
    )
    session.add(correction)
    session.flush()
    add_change(
        session,
        decision,
        EventChangeKind.CORRECTED,
        {"correction": correction_view(correction)},
        now,
    )
    return SlateCheck(before, after, correction)


def _as_left(decision: Decision, verdicts: Sequence[PositionVerdict]) -> dict[int, str | None]:
    """Per position with a verdict: the item the curator left there (None: removed)."""
    proposed = {p.position: p.item_id for p in decision.proposed}
    left: dict[int, str | None] = {}
    for verdict in verdicts:
        if verdict.verdict == Verdict.KEEP:
            left[verdict.position] = proposed[verdict.position]
        elif verdict.verdict == Verdict.SWAP:
            left[verdict.position] = verdict.replacement_item_id
        else:
            left[verdict.position] = None
    return left


def correction_view(correction: SlateCorrection) -> dict[str, Any]:
    """A correction as the event document and the webhook carry it."""
    return {
        "correction_id": correction.id,
        "created_at": correction.created_at.isoformat(),
        "curator_id": correction.curator_id,
        "task_id": correction.task_id,
        "changes": [dict(change) for change in correction.changes],
    }
