"""Model versions in storage; every serving process loads the newest one."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion, PolicyConfigRow
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.services import change_feed

UNTRAINED_VERSION = 0


def latest_version_number(session: Session) -> int:
    """The newest saved version, or 0 when the policy has never learned."""
    return session.scalar(select(func.max(ModelVersion.version))) or UNTRAINED_VERSION


def latest_model(session: Session) -> ModelVersion | None:
    """The newest saved model version, if any."""
    # LIMIT 1: an ORM .first() still fetches every row, and each row holds the model bytes.
    return session.scalars(
        select(ModelVersion).order_by(ModelVersion.version.desc()).limit(1)
    ).first()


def policy_from(saved: ModelVersion | None, config: PolicyConfig) -> VWPolicy:
    """The saved version's policy, or a fresh (untrained) one when nothing is saved yet."""
    return (
        VWPolicy.fresh(config) if saved is None else VWPolicy.from_bytes(saved.model_bytes, config)
    )


def save_model(
    session: Session,
    policy: VWPolicy,
    config_row: PolicyConfigRow,
    examples_learned: int,
    previous: ModelVersion | None,
    note: str,
) -> ModelVersion:
    """Store the policy as the version after `previous`; the unique version makes a racing
    second learner fail instead of forking the model."""
    version = ModelVersion(
        version=(previous.version if previous else UNTRAINED_VERSION) + 1,
        policy_config_id=config_row.id,
        vw_arguments=policy.arguments,
        examples_learned=examples_learned,
        examples_total=(previous.examples_total if previous else 0) + examples_learned,
        note=note,
        model_bytes=policy.to_bytes(),
    )
    session.add(version)
    session.flush()
    change_feed.announce(session)
    return version
