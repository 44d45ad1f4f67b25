"""Export logged decisions from the database to the replay log format (three tables).

One row per (event, position) of the policy's own proposal:

- `action` is the item the policy proposed there, and `propensity` the policy's probability of
  it given the candidates still available at that position (`proposed_items.
  position_probability`), the number the learner gives VW. Every built-in target chooses among
  the same candidates, so P(candidate) cancels from the weights; it is exported too, as
  `candidate_probability`, for targets that reach outside the candidate set.
- `reward` and `reward_source` are the logged round's, as `bandit.services.rounds` defines
  them for the learner too (customer outcome, curator proxy for an item removed before
  delivery, or default); `late_reward` is a customer outcome that arrived after the reward
  wait ran out. Positions with no round yet are left out and counted as pending. Curator
  swap-ins are never rows: the policy did not choose them. `curator_verdict` is the curator's
  approval label, kept apart from the reward.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bandit.db.models import CatalogItem, CuratorAction, Decision
from bandit.engine.records import LoggedRound
from bandit.engine.vocabulary import DISTRIBUTION_MEASURES
from bandit.ope.log_format import CONTEXT_PREFIX, LIST_SEPARATOR
from bandit.services import rounds as rounds_module

UNCERTAINTY_KEYS = DISTRIBUTION_MEASURES


@dataclass(frozen=True)
class ExportedLog:
    """The three tables of a log, and how many positions had no reward yet."""

    rounds: pa.Table
    candidates: pa.Table
    items: pa.Table
    pending: int
    last_decision_id: int | None = None


def flatten_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """`context_*` columns: number lists become `_0`, `_1`...; text lists are joined by `|`."""
    flat: dict[str, Any] = {}
    for key, value in context.items():
        name = CONTEXT_PREFIX + str(key)
        if isinstance(value, list):
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
                flat.update({f"{name}_{i}": float(v) for i, v in enumerate(value)})
            else:
                flat[name] = LIST_SEPARATOR.join(str(v) for v in value)
        elif isinstance(value, dict):
            continue  # nested objects are not features anywhere in the loop
        else:
            flat[name] = value
    return flat


def export_log(
    session: Session, after_id: int | None = None, limit: int | None = None
) -> ExportedLog:
    """Every logged round as replay tables, ordered by time then event (bandit/services/rounds.py
    defines the rounds: one per delivered position, with its reward source).

    With `after_id` / `limit`: only the next `limit` decisions by id after `after_id` (one
    chunk of a streamed export).
    """
    query = select(Decision).options(selectinload(Decision.proposed)).order_by(Decision.id)
    if limit is not None:
        query = query.where(Decision.id > (after_id or 0)).limit(limit)
    decisions = {d.id: d for d in session.scalars(query)}
    by_event = {d.event_id: d for d in decisions.values()}
    verdict_query = select(CuratorAction).where(
        CuratorAction.agreement_only.is_(False), CuratorAction.decision_id.in_(decisions)
    )
    verdicts = {(a.decision_id, a.position): a.verdict for a in session.scalars(verdict_query)}
    logged = rounds_module.logged_rounds(session, list(decisions)) if decisions else []
    rounds: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    contexts: dict[int, dict[str, Any]] = {}
    for round_ in logged:
        decision = by_event[round_.event_id]
        if decision.id not in contexts:
            contexts[decision.id] = flatten_context(decision.context)
        proposed = decision.proposed[round_.position]
        rounds.append(_round_record(decision, proposed, round_, verdicts, contexts[decision.id]))
        pmf = decision.position_pmfs[round_.position]
        candidates.extend(
            {
                "event_id": decision.event_id,
                "position": round_.position,
                "action": item_id,
                "propensity": float(p),
            }
            for item_id, p in zip(round_.offered_item_ids, pmf, strict=True)
        )
    pending = sum(len(d.proposed) for d in decisions.values()) - len(rounds)
    item_ids = {r["action"] for r in rounds} | {c["action"] for c in candidates}
    return ExportedLog(
        rounds=_table(rounds, ROUND_COLUMNS),
        candidates=_table(candidates, ("event_id", "position", "action", "propensity")),
        items=_items_table(session, item_ids),
        pending=pending,
        last_decision_id=max(decisions, default=None),
    )


ROUND_COLUMNS = (
    "event_id",
    "timestamp",
    "position",
    "action",
    "reward",
    "propensity",
    "candidate_probability",
    "reward_source",
    "late_reward",
    "curator_verdict",
    "route",
    "confidence",
    *(f"uncertainty_{k}" for k in UNCERTAINTY_KEYS),
    "policy_name",
    "policy_version",
    "model_version",
)


def _round_record(
    decision: Decision,
    proposed: Any,
    round_: LoggedRound,
    verdicts: dict[tuple[int, int], str],
    context: dict[str, Any],
) -> dict[str, Any]:
    uncertainty = decision.uncertainty
    return {
        "event_id": decision.event_id,
        "timestamp": decision.created_at,
        "position": proposed.position,
        "action": proposed.item_id,
        "reward": round_.reward,
        "propensity": proposed.position_probability,
        "candidate_probability": proposed.candidate_probability,
        "reward_source": str(round_.reward_source),
        "late_reward": round_.late_reward,
        "curator_verdict": verdicts.get((decision.id, proposed.position)),
        "route": decision.route,
        "confidence": float(uncertainty.get("confidence", float("nan"))),
        **{f"uncertainty_{k}": float(uncertainty.get(k, float("nan"))) for k in UNCERTAINTY_KEYS},
        "policy_name": decision.policy_name,
        "policy_version": decision.policy_version,
        "model_version": decision.model_version,
        **context,
    }


def _table(records: list[dict[str, Any]], columns: tuple[str, ...]) -> pa.Table:
    frame = pd.DataFrame.from_records(records)
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype="object" if column != "timestamp" else "float")
    extra = sorted(c for c in frame.columns if c not in columns)
    frame = frame[[*columns, *extra]]
    for column in frame.columns:
        if frame[column].dtype == object:
            # Mixed text and numbers (a context key used both ways) are kept as text.
            kinds = {type(v) for v in frame[column].dropna()}
            if len(kinds) > 1:
                frame[column] = frame[column].map(lambda v: v if v is None else str(v))
    return pa.Table.from_pandas(frame, preserve_index=False)


def _items_table(session: Session, item_ids: set[str]) -> pa.Table:
    records = []
    ids = sorted(item_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for item in session.scalars(select(CatalogItem).where(CatalogItem.item_id.in_(chunk))):
            attributes = {
                k: LIST_SEPARATOR.join(map(str, v)) if isinstance(v, list) else v
                for k, v in item.attributes.items()
            }
            records.append(
                {
                    **attributes,
                    "item_id": item.item_id,
                    "title": item.title,
                    "category": item.category,
                    "price": item.price,
                }
            )
    return _table(records, ("item_id", "title", "category", "price"))
