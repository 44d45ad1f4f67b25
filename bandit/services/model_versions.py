"""Model version management: list, checkpoint on demand, roll back, start a new lineage.

Serving always loads the newest version, so every operation here that changes what is served
appends a version instead of editing history: a rollback to version v stores v's bytes as the
next version. The runtime sees a new newest version on its next request and swaps the model
in without a restart, and the learner keeps training from the rolled-back state.

A version holds two models, the policy and the approval model (docs/trust.md): a rollback
takes both of v's, a checkpoint or a new lineage keeps the approval model that was served.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion, PolicyConfigRow
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.services import approval_store, change_feed, configs, learning, model_store


class ModelVersionError(LookupError):
    """A model version operation names a version that does not exist or cannot be served."""


@dataclass(frozen=True)
class VersionSummary:
    """One stored model version, without its bytes."""

    version: int
    created_at: datetime
    policy: str
    examples_learned: int
    examples_total: int
    note: str
    serving: bool


def list_versions(session: Session) -> list[VersionSummary]:
    """Every model version, newest first; the newest is the one being served."""
    rows = session.execute(
        select(
            ModelVersion.version,
            ModelVersion.created_at,
            PolicyConfigRow.name,
            PolicyConfigRow.version,
            ModelVersion.examples_learned,
            ModelVersion.examples_total,
            ModelVersion.note,
        )
        .join(PolicyConfigRow, PolicyConfigRow.id == ModelVersion.policy_config_id)
        .order_by(ModelVersion.version.desc())
    ).all()
    return [
        VersionSummary(
            version=row[0],
            created_at=row[1],
            policy=f"{row[2]}@{row[3]}",
            examples_learned=row[4],
            examples_total=row[5],
            note=row[6],
            serving=index == 0,
        )
        for index, row in enumerate(rows)
    ]


def rollback(session: Session, version: int, note: str | None = None) -> ModelVersion:
    """Serve version `version` again, as a new newest version; learning continues from it."""
    target = session.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()
    if target is None:
        raise ModelVersionError(f"version: no model version {version}")
    latest = model_store.latest_model(session)
    assert latest is not None  # target exists, so there is a newest version
    if latest.version == version:
        raise ModelVersionError(f"version: {version} is already the version being served")
    config_row, config = configs.active_config(session)
    configs.check_model_runs_under(session, target, config)
    rolled_back = ModelVersion(
        version=latest.version + 1,
        policy_config_id=config_row.id,
        vw_arguments=target.vw_arguments,
        examples_learned=0,
        examples_total=target.examples_total,
        note=(note or f"rollback to version {version}")[:300],
        model_bytes=target.model_bytes,
    )
    approval_store.copy_approval(target, rolled_back)
    session.add(rolled_back)
    session.flush()
    change_feed.announce(session)
    return rolled_back


def checkpoint(session: Session, note: str) -> ModelVersion:
    """Learn everything pending, then store the result as a version labelled `note`. Flushes."""
    learning.learn_pending(session)
    latest = model_store.latest_model(session)
    config_row, config = configs.active_config(session)
    policy = model_store.policy_from(latest, config)
    saved = model_store.save_model(
        session, policy, config_row, 0, latest, note=f"checkpoint: {note}"[:300]
    )
    approval_store.copy_approval(latest, saved)
    session.flush()
    return saved


def start_new_lineage(session: Session, config: PolicyConfig, created_by: str) -> ModelVersion:
    """Activate `config` with a fresh, untrained model: the explicit way to change settings a
    trained model's reductions cannot change (algorithm, bits, bag/cover/rnd size)."""
    latest = model_store.latest_model(session)
    row = configs.save_config(session, config, created_by=created_by, activate=False)
    saved = model_store.save_model(
        session,
        VWPolicy.fresh(config),
        row,
        0,
        latest,
        note=f"new lineage: untrained {config.algorithm} model for {row.name}@{row.version}",
    )
    saved.examples_total = 0  # a new lineage starts from nothing, whatever came before
    # The approval model learns from curator verdicts, not through the policy's reductions:
    # it keeps serving, and the next learn pass keeps training it, in the new lineage.
    approval_store.copy_approval(latest, saved)
    configs.activate_config(session, row)
    return saved
