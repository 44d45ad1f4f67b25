"""The simulated truth: how likely each customer is to keep each item."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.demo_data import SEGMENTS


@dataclass(frozen=True)
class TrueRewardModel:
    """P(keep) = sigmoid(bias + style + favourite category + segment colour + quality - budget).

    Item quality and segment colour tastes are hidden from the pre-scorer: they are what the
    policy has to learn from curators and customers.
    """

    item_index: Mapping[str, int]
    style: np.ndarray
    category: np.ndarray
    color: np.ndarray
    price: np.ndarray
    quality: np.ndarray

    @classmethod
    def from_catalog(cls, catalog: pd.DataFrame, seed: int) -> TrueRewardModel:
        """The truth for a generated catalog."""
        rng = np.random.default_rng([seed, 3])
        return cls(
            item_index={item_id: i for i, item_id in enumerate(catalog["item_id"])},
            style=catalog["style"].to_numpy(dtype=object),
            category=catalog["category"].to_numpy(dtype=object),
            color=catalog["color"].to_numpy(dtype=object),
            price=catalog["price"].to_numpy(dtype=float),
            quality=rng.normal(0.0, 1.0, size=len(catalog)),
        )

    def keep_probability(self, profile: Mapping[str, Any], item_ids: Sequence[str]) -> np.ndarray:
        """The true chance the customer keeps each item."""
        return self._keep_probability_of_rows(profile, self._rows(item_ids))

    def keep_probability_all(self, profile: Mapping[str, Any]) -> np.ndarray:
        """The true keep chance of every catalog item, in catalog order."""
        return self._keep_probability_of_rows(profile, np.arange(len(self.quality)))

    def categories_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each item's category."""
        return self.category[self._rows(item_ids)]

    def _rows(self, item_ids: Sequence[str]) -> np.ndarray:
        return np.array([self.item_index[i] for i in item_ids], dtype=np.int64)

    def _keep_probability_of_rows(self, profile: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
        favoured_colors = SEGMENTS[profile["segment"]][2]
        logit = (
            -2.0
            + 1.2 * (self.style[rows] == profile["preferred_style"])
            + 0.8 * np.isin(self.category[rows], profile["favorite_categories"])
            + 1.8 * np.isin(self.color[rows], favoured_colors)
            + 1.2 * self.quality[rows]
            - 1.0 * np.clip(self.price[rows] / float(profile["budget"]) - 1.0, 0.0, 2.0)
        )
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=float)
