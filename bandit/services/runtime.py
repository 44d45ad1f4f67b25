"""Per-process engine state: the catalog arrays, the active config and the served model.

Each is reloaded when storage says it changed, so a new model version, config activation or
catalog load reaches every serving process without a restart. What changed is read with one
small query (`_stamps`: the active config id, the catalog revision, the newest model version)
instead of loading the config row and two more queries per request. With a `ChangeFeed`
(PostgreSQL LISTEN/NOTIFY, or a half-second clock on SQLite) even that query runs only after
a change was announced; without one it runs on every request, which is what tests, the CLI
and the simulator get: they read their own writes at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion, PolicyConfigRow, SystemState
from bandit.engine import vw_format
from bandit.engine.approval import ApprovalModel
from bandit.engine.catalog import CatalogIndex
from bandit.engine.config import PolicyConfig, config_from_mapping
from bandit.engine.policy import VWPolicy
from bandit.engine.recommender import Recommender
from bandit.services import affinity, approval_store, catalog_store, configs, model_store
from bandit.services.change_feed import ChangeFeed


@dataclass(frozen=True)
class ConfigRef:
    """The identity of the config a decision was made with (what a decision row logs)."""

    id: int
    name: str
    version: int


@dataclass(frozen=True)
class Serving:
    """What a decision was made with."""

    recommender: Recommender
    config_row: ConfigRef
    model_version: int


@dataclass(frozen=True)
class _Stamps:
    config_id: int | None
    catalog_revision: int
    model_version: int


class EngineRuntime:
    """Caches the engine's inputs and refreshes them from storage when they change."""

    def __init__(self, rng: np.random.Generator, feed: ChangeFeed | None = None) -> None:
        self._rng = rng
        self._feed = feed
        self._lock = threading.Lock()
        self._catalog: CatalogIndex | None = None
        self._action_lines: vw_format.ActionLines | None = None
        self._catalog_revision = -1
        self._config: tuple[ConfigRef, PolicyConfig] | None = None
        self._policy: VWPolicy | None = None
        self._policy_key: tuple[int, int] | None = None
        self._affinity_key: tuple[int, int] | None = None
        self._stamps: _Stamps | None = None
        self._token: int | None = None
        self._approval: ApprovalModel | None = None
        self._auto_threshold: float | None = None

    def serving(self, session: Session) -> Serving:
        """An up-to-date recommender for this request."""
        with self._lock:
            stamps = self._current_stamps(session)
            config_ref, config = self._current_config(session, stamps)
            catalog = self._current_catalog(session, stamps.catalog_revision)
            action_lines = self._action_lines
            version, policy = self._current_policy(
                session, stamps.model_version, config_ref, config
            )
            if (stamps.catalog_revision, version) != self._affinity_key:
                # Outcomes change when learning runs, i.e. with each new model version.
                catalog.learned_affinity = affinity.item_affinity(session, catalog)
                self._affinity_key = (stamps.catalog_revision, version)
            approval, threshold = self._approval, self._auto_threshold
        recommender = Recommender(
            catalog, config, policy, self._rng, action_lines, approval, threshold
        )
        return Serving(recommender, config_ref, version)

    def policy_for(self, model_version: int) -> VWPolicy | None:
        """The policy that served `model_version`, if it is the one served now (else None)."""
        with self._lock:
            key = self._policy_key
            if self._policy is None or key is None or key[0] != model_version:
                return None
            return self._policy

    def _current_stamps(self, session: Session) -> _Stamps:
        token = None if self._feed is None else self._feed.token()
        if token is not None and token == self._token and self._stamps is not None:
            return self._stamps
        # The token is read before storage: a change committed after this read bumps it again.
        row = session.execute(_stamps_query()).one()
        stamps = _Stamps(row[0], row[1] or 0, row[2] or model_store.UNTRAINED_VERSION)
        if stamps.config_id is not None:
            # No active config yet: not cached, so the next request creates and reads it.
            self._stamps, self._token = stamps, token
        return stamps

    def _current_config(self, session: Session, stamps: _Stamps) -> tuple[ConfigRef, PolicyConfig]:
        cached = self._config
        if cached is not None and stamps.config_id == cached[0].id:
            return cached
        row, config = (
            configs.active_config(session)
            if stamps.config_id is None
            else _config_row(session, stamps.config_id)
        )
        self._config = ConfigRef(row.id, row.name, row.version), config
        return self._config

    def _current_catalog(self, session: Session, revision: int) -> CatalogIndex:
        if self._catalog is None or revision != self._catalog_revision:
            self._catalog = catalog_store.load_index(session)
            self._action_lines = vw_format.ActionLines(self._catalog)
            self._catalog_revision = revision
        return self._catalog

    def _current_policy(
        self, session: Session, version: int, config_ref: ConfigRef, config: PolicyConfig
    ) -> tuple[int, VWPolicy]:
        key = self._policy_key
        if self._policy is None or key is None or key != (version, config_ref.id):
            saved = model_store.latest_model(session)
            # Keyed by the version actually loaded: a model saved since the stamps were read
            # is the one served, and logged as such.
            loaded = saved.version if saved is not None else model_store.UNTRAINED_VERSION
            policy = model_store.policy_from(saved, config)
            # The approval model and its threshold are versioned with the policy model.
            self._approval, self._auto_threshold = approval_store.approval_from(saved)
            # The old workspace is dropped, not closed: a request may still be scoring with it.
            self._policy, self._policy_key = policy, (loaded, config_ref.id)
            return loaded, policy
        return key[0], self._policy


@cache
def _stamps_query() -> Select[int, int, int]:
    # Built once per process: without a change feed every request runs it.
    return select(
        select(PolicyConfigRow.id)
        .where(PolicyConfigRow.active.is_(True))
        .limit(1)
        .scalar_subquery(),
        select(SystemState.value)
        .where(SystemState.key == catalog_store.CATALOG_REVISION)
        .scalar_subquery(),
        select(func.max(ModelVersion.version)).scalar_subquery(),
    )


def _config_row(session: Session, config_id: int) -> tuple[PolicyConfigRow, PolicyConfig]:
    row = session.get(PolicyConfigRow, config_id)
    if row is None:  # deleted between the two reads: take whatever is active now
        return configs.active_config(session)
    return row, config_from_mapping(dict(row.document))
