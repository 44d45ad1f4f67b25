"""A pre-score term learned from logged outcomes: how often curators keep or add each item.

For item i with c_i positive curator outcomes (kept on a slate, or swapped in) and d_i
negative ones (removed, swapped out), the affinity is the balance of their log counts:

    a_i = log(1 + c_i) - log(1 + d_i)

so an item nobody has judged scores 0, an item curators keep inserting climbs by the log of
how often they did, and one they keep removing sinks. Logs keep a few heavy favourites from
swamping the pre-score; the exploration slots keep low-scored items reachable whatever it says.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.db.models import FinalSlateItem
from bandit.engine.catalog import CatalogIndex
from bandit.engine.vocabulary import DecidedBy, SlateTag

POSITIVE_TAGS = (SlateTag.KEPT, SlateTag.SWAPPED_IN)
NEGATIVE_TAGS = (SlateTag.REMOVED, SlateTag.SWAPPED_OUT)


def item_affinity(session: Session, catalog: CatalogIndex) -> np.ndarray:
    """The learned affinity of every catalog row (zeros before any curator verdict)."""
    counts = session.execute(
        select(FinalSlateItem.item_id, FinalSlateItem.tag, func.count())
        .where(FinalSlateItem.decided_by == DecidedBy.CURATOR)
        .group_by(FinalSlateItem.item_id, FinalSlateItem.tag)
    ).all()
    positive = np.zeros(len(catalog))
    negative = np.zeros(len(catalog))
    for item_id, tag, count in counts:
        row = catalog.index_of.get(item_id)
        if row is None:
            continue
        if tag in POSITIVE_TAGS:
            positive[row] += count
        elif tag in NEGATIVE_TAGS:
            negative[row] += count
    return np.log1p(positive) - np.log1p(negative)
