"""The approval model in storage: which verdicts train, calibrate or test it, and loading it.

Each decision gets a fixed role from its event id (so a slate's verdicts stay together):
10% calibrate, 20% are evidence (ECE, Brier and the reliability diagram), the rest train.
Every audit is evidence: audits are the unbiased sample of auto-eligible slates. The
override-rate bound uses every reviewed decision's logged score (see `trust.choose_auto_threshold`).
"""

from __future__ import annotations

import zlib

from bandit.db.models import ModelVersion
from bandit.engine.approval import ApprovalModel
from bandit.engine.calibration import IsotonicMap
from bandit.engine.vocabulary import ApprovalRole

ROLE_BUCKETS = 10
CALIBRATE_BUCKETS = frozenset({0})
EVIDENCE_BUCKETS = frozenset({1, 2})
# In a copied approval state: the version whose learn pass made it, or one the pass came before.
# The threshold rows of that version or older describe it (`trust_status.promise_status`).
COPIED_FROM = "copied_from_version"


def role_for(event_id: str, audit: bool) -> ApprovalRole:
    """The fixed job of a decision's verdicts for the approval model."""
    if audit:
        return ApprovalRole.EVIDENCE
    bucket = zlib.crc32(event_id.encode()) % ROLE_BUCKETS
    if bucket in CALIBRATE_BUCKETS:
        return ApprovalRole.CALIBRATE
    if bucket in EVIDENCE_BUCKETS:
        return ApprovalRole.EVIDENCE
    return ApprovalRole.TRAIN


def approval_from(saved: ModelVersion | None) -> tuple[ApprovalModel | None, float | None]:
    """The approval model saved with a model version and the auto threshold chosen with it."""
    if saved is None or saved.approval_bytes is None:
        return None, None
    state = saved.approval_state or {}
    calibration = state.get("calibration")
    model = ApprovalModel.from_bytes(
        saved.approval_bytes, IsotonicMap.from_document(calibration) if calibration else None
    )
    threshold = state.get("threshold")
    return model, None if threshold is None else float(threshold)


def copy_approval(source: ModelVersion | None, copy: ModelVersion) -> None:
    """Store `source`'s approval model and state on `copy` (a rollback, checkpoint or lineage),
    remembering which version's learn pass the state describes."""
    if source is None or source.approval_bytes is None:
        copy.approval_bytes, copy.approval_state = None, None
        return
    state = dict(source.approval_state or {})
    state.setdefault(COPIED_FROM, source.version)
    copy.approval_bytes, copy.approval_state = source.approval_bytes, state
