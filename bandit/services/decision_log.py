"""Writing one decision in a few statements: its row, its proposed slate and its delivery.

Every rank writes here (its review task, if any, is added by the caller), so it is the serving
path's main cost. Through the ORM's unit of work it was about two thirds of the service's rank
time in a CPU profile (a decision row, an UPDATE when it was delivered, ten child rows, three
flushes and a savepoint). Here each table gets one INSERT built from values computed up front,
and a repeated event id is settled by the decision INSERT itself (ON CONFLICT DO NOTHING)
instead of a savepoint. On PostgreSQL the INSERTs are data-modifying CTEs of one statement, so
a rank's writes are one round trip (in process, 15-30% less CPU per rank than four statements);
SQLite, in process, runs them one by one.

The returned Decision is attached to the session as the already stored row it is (no SELECT),
with its proposed slate loaded; callers read and change it like any decision they queried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Insert,
    Select,
    Table,
    bindparam,
    column,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by
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
    if is_postgresql(session):
        return _write_in_one_statement(session, values, proposed)
    decision_id = session.execute(_insert_decision(), dict(values)).scalar()
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


def _write_in_one_statement(
    session: Session, values: Mapping[str, Any], proposed: Sequence[Mapping[str, Any]]
) -> Decision | None:
    """PostgreSQL: the same rows as `write_decision`'s statements, in one round trip.

    One INSERT ... RETURNING per table, chained as data-modifying CTEs on the new decision's
    id; when the event id is already logged the decision INSERT returns nothing, and so every
    other INSERT inserts nothing.
    """
    delivered = values.get("delivered_slate")
    parameters = {f"d_{name}": value for name, value in values.items()}
    parameters["proposed"] = [dict(row) for row in proposed]
    if delivered is not None:
        now = values["delivered_at"]
        parameters["delivered"] = [
            {"position": entry["position"], "item_id": entry["item_id"]} for entry in delivered
        ]
        parameters["o_payload"] = delivered_payload(delivered, now)
        parameters["o_created_at"] = now
    statement = _logged_in_one_statement(tuple(values), delivered is not None)
    row = session.execute(statement, parameters).one_or_none()
    if row is None:
        return None  # another request logged this event id first; its decision is the answer
    # The ids come back in position order; the rows were sent in any order.
    by_position = dict(zip(sorted(r["position"] for r in proposed), row[1], strict=True))
    return _attached(
        session, row[0], values, proposed, [by_position[r["position"]] for r in proposed]
    )


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
def _insert_decision() -> Insert:
    # SQLite's (PostgreSQL writes everything in `_logged_in_one_statement`); built once.
    return (
        sqlite.insert(DECISIONS)
        .on_conflict_do_nothing(index_elements=[DECISIONS.c.event_id])
        .returning(DECISIONS.c.id)
    )


@cache
def _insert_proposed() -> Insert:
    # The ids in the order of the rows sent, so each in-memory item gets its own.
    return insert(PROPOSED).returning(PROPOSED.c.id, sort_by_parameter_order=True)


# The proposed rows' columns as the JSON array sent for them is read back (json_to_recordset).
_PROPOSED_FIELDS = (
    "position",
    "item_id",
    "probability",
    "candidate_probability",
    "position_probability",
    "score",
    "explored",
    "reasons",
    "why",
)


@cache
def _logged_in_one_statement(columns: tuple[str, ...], delivered: bool) -> Select[Any]:
    # Built once per process per (column set, delivered or not): every rank on PostgreSQL
    # runs one of them.
    logged = (
        postgresql.insert(DECISIONS)
        .values({name: bindparam(f"d_{name}", type_=DECISIONS.c[name].type) for name in columns})
        .on_conflict_do_nothing(index_elements=[DECISIONS.c.event_id])
        .returning(DECISIONS.c.id)
        .cte("logged")
    )
    rows = _recordset("proposed", PROPOSED, _PROPOSED_FIELDS)
    # A missing why is stored as JSON null, as the Core INSERT of None stores it.
    why = func.coalesce(rows.c.why, literal_column("'null'::json", JSON))
    fields = [why if name == "why" else rows.c[name] for name in _PROPOSED_FIELDS]
    items = (
        insert(PROPOSED)
        .from_select(
            ["decision_id", *_PROPOSED_FIELDS],
            select(logged.c.id, *fields).select_from(logged.join(rows, true())),
        )
        .returning(PROPOSED.c.id, PROPOSED.c.position)
        .cte("items")
    )
    item_ids = select(
        func.array_agg(aggregate_order_by(items.c.id, items.c.position))
    ).scalar_subquery()
    statement = select(logged.c.id, item_ids)
    if not delivered:
        return statement
    slate = _recordset("delivered", FINAL_SLATE, ("position", "item_id"))
    final = insert(FINAL_SLATE).from_select(
        ["decision_id", "position", "item_id", "tag", "decided_by", "replaced_item_id"],
        select(
            logged.c.id,
            slate.c.position,
            slate.c.item_id,
            literal(str(SlateTag.KEPT)),
            literal(str(DecidedBy.POLICY)),
            null(),
        ).select_from(logged.join(slate, true())),
    )
    change = insert(EVENT_CHANGES).from_select(
        ["decision_id", "event_id", "kind", "payload", "created_at", "dispatched_at"],
        select(
            logged.c.id,
            bindparam("d_event_id", type_=EVENT_CHANGES.c.event_id.type),
            literal(str(EventChangeKind.DELIVERED)),
            bindparam("o_payload", type_=EVENT_CHANGES.c.payload.type),
            bindparam("o_created_at", type_=EVENT_CHANGES.c.created_at.type),
            null(),
        ),
    )
    return statement.add_cte(final.cte("final"), change.cte("outbox"))


def _recordset(name: str, table: Table, fields: Sequence[str]) -> Any:
    """The JSON array parameter `name` as rows typed like `table`'s columns."""
    return (
        func.json_to_recordset(bindparam(name, type_=JSON))
        .table_valued(*(column(field, table.c[field].type) for field in fields))
        .render_derived(name=f"{name}_rows", with_types=True)
    )
