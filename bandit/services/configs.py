"""Policy configs in storage: the active one, new versions, activation."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion, PolicyConfigRow
from bandit.engine.config import PolicyConfig, check_model_compatible, config_from_mapping
from bandit.services import change_feed

# The active config as read in the session's current transaction: one user action asks for
# it several times (a claim: the lease length, then the task document's blinding).
_READ_IN_TRANSACTION = "hitl.active_config"


def active_config(session: Session) -> tuple[PolicyConfigRow, PolicyConfig]:
    """The active config row and its parsed settings, creating the default on first use.

    Read once per transaction; activating a config in the same transaction reads it anew.
    """
    transaction = session.get_transaction()
    memo = session.info.get(_READ_IN_TRANSACTION)
    if memo is not None and memo[0] is transaction:
        return memo[1], memo[2]
    row = session.scalars(select(PolicyConfigRow).where(PolicyConfigRow.active.is_(True))).first()
    if row is None:
        row = save_config(session, PolicyConfig(), created_by="system", activate=True)
    parsed = config_from_mapping(dict(row.document))
    session.info[_READ_IN_TRANSACTION] = (session.get_transaction(), row, parsed)
    return row, parsed


def save_config(
    session: Session, config: PolicyConfig, created_by: str, activate: bool
) -> PolicyConfigRow:
    """Store `config` as the next version of its name, optionally making it the active one."""
    if activate:
        check_trained_model_accepts(session, config)
    latest = session.scalar(
        select(func.max(PolicyConfigRow.version)).where(PolicyConfigRow.name == config.name)
    )
    row = PolicyConfigRow(
        name=config.name,
        version=(latest or 0) + 1,
        document=config.to_document(),
        created_by=created_by,
        active=False,
    )
    session.add(row)
    session.flush()
    if activate:
        _make_active(session, row)  # checked above, before anything was stored
    return row


def activate_config(session: Session, row: PolicyConfigRow) -> None:
    """Make `row` the single active config."""
    check_trained_model_accepts(session, config_from_mapping(dict(row.document)))
    _make_active(session, row)


def _make_active(session: Session, row: PolicyConfigRow) -> None:
    session.info.pop(_READ_IN_TRANSACTION, None)
    session.execute(update(PolicyConfigRow).values(active=False))
    row.active = True
    session.flush()
    change_feed.announce(session)


def check_trained_model_accepts(session: Session, config: PolicyConfig) -> None:
    """Raise ConfigError if the newest model cannot run under `config`."""
    latest = session.scalars(
        select(ModelVersion).order_by(ModelVersion.version.desc()).limit(1)
    ).first()
    if latest is not None:
        check_model_runs_under(session, latest, config)


def check_model_runs_under(session: Session, model: ModelVersion, config: PolicyConfig) -> None:
    """Raise ConfigError if `config` changes a setting `model`'s reductions were built with."""
    trained_row = session.get(PolicyConfigRow, model.policy_config_id)
    if trained_row is not None:
        trained_with = config_from_mapping(dict(trained_row.document))
        check_model_compatible(trained_with, config, model.version)
