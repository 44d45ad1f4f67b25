"""Explanations computed when someone asks: a curator opening the task, a client's `explain`.

`rank` logs a decision without its items' `why` unless the client asked for it (the
leave-one-out explanation costs about as much VW work as the decision itself). When a curator
opens the task, the missing explanations are computed with the model version that made the
decision (the served one from the runtime's cache, or that saved version loaded once) and
stored on the proposed items, so every later view shows the same numbers.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Decision, ModelVersion
from bandit.engine import explain
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.services import model_store
from bandit.services.catalog_store import as_row, items_by_id
from bandit.services.delivery import decision_config
from bandit.services.runtime import EngineRuntime


def explain_decision(session: Session, runtime: EngineRuntime, decision: Decision) -> int:
    """Fill in the `why` of the decision's proposed items logged without one; flushes.

    Returns how many items were explained (0 when all already were).
    """
    missing = [p for p in decision.proposed if p.why is None]
    if not missing:
        return 0
    policy = runtime.policy_for(decision.model_version)
    owned = None
    if policy is None:
        config = decision_config(session, decision)
        owned = policy = _saved_policy(session, decision.model_version, config)
    try:
        items = items_by_id(session, [p.item_id for p in missing])
        known = [p for p in missing if p.item_id in items]
        why = explain.explain(policy, decision.context, [as_row(items[p.item_id]) for p in known])
    finally:
        if owned is not None:
            owned.close()
    for proposed, contributions in zip(known, why, strict=True):
        proposed.why = [{"feature": c.feature, "weight": c.weight} for c in contributions]
    for proposed in missing:
        if proposed.item_id not in items:
            proposed.why = []  # the item left the catalog: nothing left to explain it with
    session.flush()
    return len(missing)


def _saved_policy(session: Session, version: int, config: PolicyConfig) -> VWPolicy:
    saved = session.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()
    return model_store.policy_from(saved, config)
