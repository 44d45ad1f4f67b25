"""Export logged decisions from the database to the replay log format (three tables).

One row per (event, position) of the policy's own proposal:

- `action` is the item the policy proposed there, and `propensity` the policy's probability of
  it given the candidates still available at that position (`proposed_items.
  position_probability`), the number the learner gives VW. Every built-in target chooses among
  the same candidates, so P(candidate) cancels from the weights; it is exported too, as
  `candidate_probability`, for targets that reach outside the candidate set.
- `reward` is the signal the learner uses for that item, one per row, in this order: a
  customer outcome for it (per item or for the whole event, if the item went out as the
  policy proposed it and the reward did not arrive after the default); else the curator's
  verdict (kept 1, removed or swapped 0); else the default reward. Rows with none of these yet
  are left out and counted. Curator swap-ins are never rows: the policy did not choose them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bandit.db.models import CatalogItem, CuratorAction, Decision, Outcome
from bandit.engine.vocabulary import DISTRIBUTION_MEASURES
from bandit.ope.log_format import CONTEXT_PREFIX, LIST_SEPARATOR
from bandit.services.delivery import policy_items_delivered
from bandit.services.learning import CURATOR_REWARD, offered_at

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


def _row_reward(
    decision: Decision,
    position: int,
    item_id: str,
    verdicts: dict[tuple[int, int], str],
    outcomes: list[Outcome],
) -> tuple[float, str] | None:
    # The customer received what was delivered; a later correction does not change that.
    delivered = item_id in policy_items_delivered(decision)
    real = [
        o
        for o in outcomes
        if not o.is_default and not o.after_default and o.item_key in ("", item_id)
    ]
    if delivered and real:
        return real[0].value, "customer"
    verdict = verdicts.get((decision.id, position))
    if verdict is not None:
        return CURATOR_REWARD[verdict], "curator"
    defaults = [o for o in outcomes if o.is_default]
    if delivered and defaults:
        return defaults[0].value, "default"
    return None


def export_log(
    session: Session, after_id: int | None = None, limit: int | None = None
) -> ExportedLog:
    """Every logged decision as replay tables, ordered by time then event.

    With `after_id` / `limit`: only the next `limit` decisions by id after `after_id` (one
    chunk of a streamed export), with their verdicts and outcomes only.
    """
    query = select(Decision).options(
        selectinload(Decision.proposed), selectinload(Decision.final_slate)
    )
    if limit is not None:
        chunk = select(Decision.id).where(Decision.id > (after_id or 0))
        ids = list(session.scalars(chunk.order_by(Decision.id).limit(limit)))
        query = query.where(Decision.id.in_(ids))
    decisions = session.scalars(query.order_by(Decision.created_at, Decision.id)).all()
    verdict_query = select(CuratorAction).where(CuratorAction.agreement_only.is_(False))
    outcome_query = select(Outcome)
    if limit is not None:
        verdict_query = verdict_query.where(CuratorAction.decision_id.in_(ids))
        outcome_query = outcome_query.where(Outcome.decision_id.in_(ids))
    verdicts = {(a.decision_id, a.position): a.verdict for a in session.scalars(verdict_query)}
    outcomes: dict[int, list[Outcome]] = defaultdict(list)
    for outcome in session.scalars(outcome_query.order_by(Outcome.id)):
        outcomes[outcome.decision_id].append(outcome)
    rounds: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    pending = 0
    for decision in decisions:
        context = flatten_context(decision.context)
        for proposed in decision.proposed:
            reward = _row_reward(
                decision, proposed.position, proposed.item_id, verdicts, outcomes[decision.id]
            )
            if reward is None:
                pending += 1
                continue
            rounds.append(_round_record(decision, proposed, reward, verdicts, context))
            offered = offered_at(decision, proposed.position)
            pmf = decision.position_pmfs[proposed.position]
            candidates.extend(
                {
                    "event_id": decision.event_id,
                    "position": proposed.position,
                    "action": item_id,
                    "propensity": float(p),
                }
                for item_id, p in zip(offered, pmf, strict=True)
            )
    item_ids = {r["action"] for r in rounds} | {c["action"] for c in candidates}
    return ExportedLog(
        rounds=_table(rounds, ROUND_COLUMNS),
        candidates=_table(candidates, ("event_id", "position", "action", "propensity")),
        items=_items_table(session, item_ids),
        pending=pending,
        last_decision_id=max((d.id for d in decisions), default=None),
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
    reward: tuple[float, str],
    verdicts: dict[tuple[int, int], str],
    context: dict[str, Any],
) -> dict[str, Any]:
    uncertainty = decision.uncertainty
    return {
        "event_id": decision.event_id,
        "timestamp": decision.created_at,
        "position": proposed.position,
        "action": proposed.item_id,
        "reward": float(reward[0]),
        "propensity": proposed.position_probability,
        "candidate_probability": proposed.candidate_probability,
        "reward_source": reward[1],
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
