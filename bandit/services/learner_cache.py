"""What the one learner keeps between passes: catalog rows, their VW action lines, and the
VW features of logged contexts.

A learn pass needs the catalog rows of every item its rounds offered (tens per round) and
of the items its verdicts touched. Loading them as ORM rows each pass cost more than the
learning itself. Items change only through a catalog load, which bumps the catalog revision
(`catalog_store.bump_catalog_revision`), so rows read under one revision stay right until
the revision moves; each pass checks it once, with one small query. A decision's context
never changes once logged, and every pass rescores the same window of held-out verdicts
(several per decision), so its formatted features are kept too.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import Decision
from bandit.engine import vw_format
from bandit.engine.catalog import CatalogRow
from bandit.services.catalog_store import as_row, catalog_revision, items_by_id

# Enough for the trust windows (600 held-out and 600 evidence positions, a few per decision).
MAX_CONTEXTS = 20_000
# Ids per IN list, under every backend's bound-parameter limit.
CHUNK = 500


class LearnerCache:
    """Catalog rows and action lines by item id, for one catalog revision at a time."""

    def __init__(self) -> None:
        self._revision: int | None = None
        self._rows: dict[str, CatalogRow] = {}
        self._missing: set[str] = set()
        # Shared with `learning.apply_rounds`, which fills it for the rounds it feeds.
        self.action_lines: dict[str, str] = {}
        self._context_features: dict[int, list[str]] = {}

    def start_pass(self, session: Session) -> None:
        """Forget everything if the catalog changed since the last pass."""
        revision = catalog_revision(session)
        if revision != self._revision:
            self._revision = revision
            self._rows, self._missing, self.action_lines = {}, set(), {}
        if len(self._context_features) > MAX_CONTEXTS:
            # The scoring windows move on; old decisions are not asked for again.
            self._context_features = {}

    def rows(self, session: Session, item_ids: Iterable[str]) -> dict[str, CatalogRow]:
        """The stored rows of these items (ids not in the catalog are left out)."""
        wanted = set(item_ids)
        unknown = wanted - self._rows.keys() - self._missing
        if unknown:
            found = items_by_id(session, unknown)
            self._rows.update((item_id, as_row(item)) for item_id, item in found.items())
            self._missing |= unknown - found.keys()
        return {item_id: self._rows[item_id] for item_id in wanted if item_id in self._rows}

    def line(self, session: Session, item_id: str) -> str | None:
        """The item's action line, or None if it is not in the catalog."""
        line = self.action_lines.get(item_id)
        if line is None:
            row = self.rows(session, (item_id,)).get(item_id)
            if row is None:
                return None
            line = self.action_lines[item_id] = vw_format.action_line(row)
        return line

    def context_features(self, session: Session, decision_ids: set[int]) -> dict[int, list[str]]:
        """The VW features of these logged decisions' contexts (read once per decision)."""
        known = self._context_features
        unknown = sorted(decision_ids - known.keys())
        for start in range(0, len(unknown), CHUNK):
            chunk = unknown[start : start + CHUNK]
            statement = select(Decision.id, Decision.context).where(Decision.id.in_(chunk))
            for decision_id, context in session.execute(statement):
                known[decision_id] = vw_format.context_features(context)
        return {d: known[d] for d in decision_ids if d in known}
