"""Per-process engine state: the catalog arrays, the active config and the served model.

Each is reloaded when storage says it changed, so a new model version or catalog load
reaches every serving process without a restart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from bandit.db.models import PolicyConfigRow
from bandit.engine import vw_format
from bandit.engine.approval import ApprovalModel
from bandit.engine.catalog import CatalogIndex
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.recommender import Recommender
from bandit.services import affinity, approval_store, catalog_store, configs, model_store


@dataclass(frozen=True)
class Serving:
    """What a decision was made with."""

    recommender: Recommender
    config_row: PolicyConfigRow
    model_version: int


class EngineRuntime:
    """Caches the engine's inputs and refreshes them from storage when they change."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._catalog: CatalogIndex | None = None
        self._action_lines: vw_format.ActionLines | None = None
        self._catalog_revision = -1
        self._policy: VWPolicy | None = None
        self._policy_key: tuple[int, int] | None = None
        self._affinity_key: tuple[int, int] | None = None
        self._approval: ApprovalModel | None = None
        self._auto_threshold: float | None = None

    def serving(self, session: Session) -> Serving:
        """An up-to-date recommender for this request."""
        config_row, config = configs.active_config(session)
        with self._lock:
            catalog = self._current_catalog(session)
            action_lines = self._action_lines
            version, policy = self._current_policy(session, config_row, config)
            if (catalog_revision := self._catalog_revision, version) != self._affinity_key:
                # Outcomes change when learning runs, i.e. with each new model version.
                catalog.learned_affinity = affinity.item_affinity(session, catalog)
                self._affinity_key = (catalog_revision, version)
            approval, threshold = self._approval, self._auto_threshold
        recommender = Recommender(
            catalog, config, policy, self._rng, action_lines, approval, threshold
        )
        return Serving(recommender, config_row, version)

    def _current_catalog(self, session: Session) -> CatalogIndex:
        revision = catalog_store.catalog_revision(session)
        if self._catalog is None or revision != self._catalog_revision:
            self._catalog = catalog_store.load_index(session)
            self._action_lines = vw_format.ActionLines(self._catalog)
            self._catalog_revision = revision
        return self._catalog

    def _current_policy(
        self, session: Session, config_row: PolicyConfigRow, config: PolicyConfig
    ) -> tuple[int, VWPolicy]:
        version = model_store.latest_version_number(session)
        key = (version, config_row.id)
        if self._policy is None or key != self._policy_key:
            saved = model_store.latest_model(session)
            policy = model_store.policy_from(saved, config)
            # The approval model and its threshold are versioned with the policy model.
            self._approval, self._auto_threshold = approval_store.approval_from(saved)
            # The old workspace is dropped, not closed: a request may still be scoring with it.
            self._policy, self._policy_key = policy, key
        return version, self._policy
