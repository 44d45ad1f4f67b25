"""Simulated curators: right most of the time, and they know the catalog a little."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit.services.review import ItemVerdict
from sim.world import TrueRewardModel


@dataclass
class SimulatedCurator:
    """Keeps an item it believes the customer will keep; otherwise swaps in its best guess.

    `accuracy` is the chance each keep/drop judgement matches the truth.
    """

    username: str
    accuracy: float
    seconds_per_item: float
    rng: np.random.Generator = field(repr=False)

    def review(
        self,
        truth: TrueRewardModel,
        profile: Mapping[str, Any],
        slate: Sequence[str],
        alternates: Sequence[str],
    ) -> tuple[list[ItemVerdict], float]:
        """Verdicts for each slate position and the seconds it took."""
        keep_chance = truth.keep_probability(profile, slate)
        correct = self.rng.random(len(slate)) < self.accuracy
        keeps = np.where(correct, keep_chance >= 0.5, keep_chance < 0.5)
        spare = [a for a in alternates if a not in slate]
        spare_chance = truth.keep_probability(profile, spare) if spare else np.array([])
        order = list(np.argsort(-spare_chance))
        verdicts = []
        for position, keep in enumerate(keeps):
            if keep:
                verdicts.append(ItemVerdict(position, "keep"))
            elif order:
                verdicts.append(
                    ItemVerdict(position, "swap", spare[order.pop(0)], "better fit for customer")
                )
            else:
                verdicts.append(ItemVerdict(position, "remove", reason="poor fit"))
        seconds = float(self.rng.gamma(4.0, self.seconds_per_item / 4.0) * len(slate))
        return verdicts, seconds
