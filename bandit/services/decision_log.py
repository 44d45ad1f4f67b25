"""Writing one decision in a few statements: its row, its proposed slate and its delivery.

Every rank writes here (its review task, if any, is added by the caller), so it is the serving
path's main cost. Through the ORM's unit of work it was about two thirds of the service's rank
time in a CPU profile (a decision row, an UPDATE when it was delivered, ten child rows, three
flushes and a savepoint); here each table gets one INSERT built from
values computed up front, and a repeated event id is settled by the decision INSERT itself
(ON CONFLICT DO NOTHING, on PostgreSQL and SQLite alike) instead of a savepoint.

The returned Decision is attached to the session as the already stored row it is (no SELECT),
with its proposed slate loaded; callers read and change it like any decision they queried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached

from bandit.db.models import Decision, EventChange, FinalSlateItem, ProposedItem
from bandit.db.session import is_postgresql
from bandit.engine.config import PolicyConfig
from bandit.engine.records import Proposal
from bandit.engine.vocabulary import DecidedBy, EventChangeKind, SlateTag
from bandit.services.delivery import change_row, delivered_payload, delivery_columns

DECISIONS = cast(Table, Decision.__table__)
PROPOSED = cast(Table, ProposedItem.__table__)
FINAL_SLATE = cast(Table, FinalSlateItem.__table__)
EVENT_CHANGES = cast(Table, EventChange.__table__)


def decision_values(proposal: Proposal) -> dict[str, Any]:
    """The columns a decision's row takes from the policy's proposal."""
    return {
        "candidates": [
            {
                "item_id": c.item_id,
                "candidate_probability": c.candidate_probability,
                "prescore": c.prescore,
                "exploration_slot": c.exploration_slot,
                "pmf": c.pmf,
                "score": c.score,
            }
            for c in proposal.candidates
        ],
        "position_pmfs": [list(pmf) for pmf in proposal.position_pmfs],
        "uncertainty": {**proposal.uncertainty, "confidence": proposal.confidence},
        "route": proposal.route,
        "approval_probability": proposal.approval_probability,
        "auto_threshold": proposal.auto_threshold,
        "audit": proposal.audit,
        "audit_probability": proposal.audit_probability,
    }


def proposed_values(proposal: Proposal) -> list[dict[str, Any]]:
    """One row per slate position, with the probabilities learning and replay need."""
    return [
        {
            "position": s.position,
            "item_id": s.item_id,
            "probability": s.probability,
            "candidate_probability": s.candidate_probability,
            "position_probability": s.position_probability,
            "score": s.score,
            "explored": s.explored,
            "reasons": [[code, value] for code, value in s.reasons],
            # None: not computed yet (services/explanations.py fills it in on first view).
            "why": [{"feature": feature, "weight": weight} for feature, weight in s.why]
            if proposal.explained
            else None,
        }
        for s in proposal.slate
    ]


def policy_delivery(
    proposed: Sequence[Mapping[str, Any]], config: PolicyConfig, now: datetime
) -> dict[str, Any]:
    """The delivery columns of a decision whose own slate goes out unchanged at `now`."""
    slate = [
        {
            "position": p["position"],
            "item_id": p["item_id"],
            "decided_by": DecidedBy.POLICY,
            "replaced_item_id": None,
        }
        for p in sorted(proposed, key=lambda p: p["position"])
    ]
    return delivery_columns(slate, config, now)


def write_decision(
    session: Session, values: Mapping[str, Any], proposed: Sequence[Mapping[str, Any]]
) -> Decision | None:
    """Store a decision and its proposed slate, or None if its event id is already logged.

    When `values` carry a delivered slate, its rows and the client's outbox row are written
    too, in the same transaction. Nothing is flushed through the ORM.
    """
    decision_id = session.execute(_insert_decision(is_postgresql(session)), dict(values)).scalar()
    if decision_id is None:
        return None  # another request logged this event id first; its decision is the answer
    item_ids = session.scalars(
        _insert_proposed(), [{**row, "decision_id": decision_id} for row in proposed]
    ).all()
    delivered = values.get("delivered_slate")
    if delivered is not None:
        session.execute(
            insert(FINAL_SLATE),
            [
                {
                    "decision_id": decision_id,
                    "position": entry["position"],
                    "item_id": entry["item_id"],
                    "tag": SlateTag.KEPT,
                    "decided_by": DecidedBy.POLICY,
                    "replaced_item_id": None,
                }
                for entry in delivered
            ],
        )
        now = values["delivered_at"]
        payload = delivered_payload(delivered, now)
        session.execute(
            insert(EVENT_CHANGES),
            change_row(decision_id, values["event_id"], EventChangeKind.DELIVERED, payload, now),
        )
    return _attached(session, decision_id, values, proposed, item_ids)


def _attached(
    session: Session,
    decision_id: int,
    values: Mapping[str, Any],
    proposed: Sequence[Mapping[str, Any]],
    item_ids: Sequence[int],
) -> Decision:
    items = [
        ProposedItem(id=item_id, decision_id=decision_id, **row)
        for item_id, row in zip(item_ids, proposed, strict=True)
    ]
    decision = Decision(id=decision_id, **values, proposed=items)
    # As if just loaded: every column set here is what was stored; the final slate, not set,
    # loads from the database when first read.
    for item in items:
        make_transient_to_detached(item)
    make_transient_to_detached(decision)
    session.add(decision)
    return decision


@cache
def _insert_decision(on_postgresql: bool) -> Insert:
    # Built once per process per backend (PostgreSQL, else SQLite): every rank runs it.
    statement = postgresql.insert(DECISIONS) if on_postgresql else sqlite.insert(DECISIONS)
    return statement.on_conflict_do_nothing(index_elements=[DECISIONS.c.event_id]).returning(
        DECISIONS.c.id
    )


@cache
def _insert_proposed() -> Insert:
    # The ids in the order of the rows sent, so each in-memory item gets its own.
    return insert(PROPOSED).returning(PROPOSED.c.id, sort_by_parameter_order=True)
