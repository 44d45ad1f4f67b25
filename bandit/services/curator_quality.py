"""Reads finished reviews from the database into records for the curator quality statistics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Curator, CuratorAction, ReviewTask, SlateVerification
from bandit.engine import quality
from bandit.engine.vocabulary import Route, TaskStatus, VerificationOutcome


@dataclass(frozen=True)
class QualityReport:
    """Everything the quality page shows."""

    reviews: int
    double_reviewed: int
    positions_compared: int
    observed_agreement: float
    kappa: float
    pairs: list[quality.PairAgreement]
    curators: list[quality.CuratorStats]


def review_records(session: Session, since: datetime) -> list[quality.ReviewRecord]:
    """Every review task finished since `since`, with its verdicts by position.

    A task's seconds are its verdicts' seconds, which include those of a submit since undone
    (the next submit carries them); `overturned` is set for review-after tasks only.
    """
    rows = session.execute(
        select(ReviewTask, CuratorAction, Curator.username)
        .join(CuratorAction, CuratorAction.task_id == ReviewTask.id)
        .join(Curator, Curator.id == CuratorAction.curator_id)
        .where(ReviewTask.status == TaskStatus.DONE, ReviewTask.completed_at >= since)
        .order_by(ReviewTask.id, CuratorAction.position)
    ).all()
    overturned = dict(
        session.execute(
            select(
                SlateVerification.task_id,
                SlateVerification.outcome == VerificationOutcome.CORRECTED,
            )
            .join(ReviewTask, ReviewTask.id == SlateVerification.task_id)
            # Verify-after reviews only: the review after an undo of a review-before submit
            # is logged as a check of the slate that stayed delivered, but the curator
            # checked their own slate, not one that went out unreviewed.
            .where(ReviewTask.completed_at >= since, ReviewTask.route == Route.REVIEW_AFTER)
        ).all()
    )
    tasks: dict[int, ReviewTask] = {}
    names: dict[int, str] = {}
    verdicts: dict[int, dict[int, str]] = defaultdict(dict)
    seconds: dict[int, float] = defaultdict(float)
    for task, action, username in rows:
        tasks[task.id], names[task.id] = task, username
        verdicts[task.id][action.position] = action.verdict
        seconds[task.id] += action.seconds_spent
    records = []
    for task_id, task in tasks.items():
        assert task.completed_at is not None
        records.append(
            quality.ReviewRecord(
                task_id=task_id,
                decision_id=task.decision_id,
                review_round=task.review_round,
                curator=names[task_id],
                completed_at=task.completed_at,
                seconds=seconds[task_id],
                verdicts=verdicts[task_id],
                overturned=overturned.get(task_id),
            )
        )
    return records


def quality_report(session: Session, since: datetime) -> QualityReport:
    """Agreement overall and per pair, and per-curator statistics, over reviews since `since`."""
    records = review_records(session, since)
    pairs = quality.double_reviewed_pairs(records)
    positions, observed, kappa = quality.agreement(pairs)
    return QualityReport(
        reviews=len(records),
        double_reviewed=len(pairs),
        positions_compared=positions,
        observed_agreement=observed,
        kappa=kappa,
        pairs=quality.agreement_by_pair(records),
        curators=quality.curator_stats(records),
    )
