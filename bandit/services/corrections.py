"""Corrections: a later curator verdict on a delivered slate, stored beside the delivery.

A review-after overturn says what should replace what (by whom, when); the client decides
what to do about it. The delivered slate stays as sent, and the current slate is the
delivery with every correction applied in order, each position once.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def record_review_after(
    session: Session,
    decision: Decision,
    task_id: int,
    curator_id: int,
    verdicts: Sequence[PositionVerdict],
    now: datetime,
) -> SlateCorrection | None:
    """Store a verify-after verdict: a correction if it overturns anything, else a reinstatement.

    Either way one outbox row tells the client; the delivered slate is not touched.
    """
    current = {
        entry["position"]: entry["item_id"]
        for entry in current_slate(delivered_slate(decision), corrections_of(session, decision))
    }
    changes = []
    for verdict in sorted(verdicts, key=lambda v: v.position):
        if verdict.verdict == Verdict.KEEP or verdict.position not in current:
            continue
        swap = verdict.verdict == Verdict.SWAP
        changes.append(
            {
                "position": verdict.position,
                "action": CorrectionAction.REPLACE if swap else CorrectionAction.REMOVE,
                "item_id": current[verdict.position],
                "replacement_item_id": verdict.replacement_item_id if swap else None,
            }
        )
    if not changes:
        add_change(
            session,
            decision,
            EventChangeKind.REINSTATED,
            {"verified_at": now.isoformat(), "curator_id": curator_id},
            now,
        )
        return None
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
    return correction


def correction_view(correction: SlateCorrection) -> dict[str, Any]:
    """A correction as the event document and the webhook carry it."""
    return {
        "correction_id": correction.id,
        "created_at": correction.created_at.isoformat(),
        "curator_id": correction.curator_id,
        "task_id": correction.task_id,
        "changes": [dict(change) for change in correction.changes],
    }
