"""Simulated curators: right most of the time, slower and sloppier as a shift wears on,
partial to some categories, and limited in how many tasks they can take an hour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit.services.review import ItemVerdict
from sim.world import TrueRewardModel

# A tired curator still does better than a coin toss.
ACCURACY_FLOOR = 0.5


@dataclass
class SimulatedCurator:
    """Keeps an item it believes the customer will keep; otherwise swaps in its best guess.

    `accuracy` is the chance each keep/drop judgement matches the truth at the start of a
    shift; it falls by `fatigue_per_hour` for every hour of review work, down to 0.5.
    With chance `bias`, an item of a `favored_categories` category is kept whatever its fit,
    and favoured items are preferred as swap-ins. `tasks_per_hour` caps the curator's pace
    (None: as many as the loop offers).
    """

    username: str
    accuracy: float
    seconds_per_item: float
    rng: np.random.Generator = field(repr=False)
    fatigue_per_hour: float = 0.0
    favored_categories: tuple[str, ...] = ()
    bias: float = 0.0
    tasks_per_hour: float | None = None
    seconds_worked: float = 0.0

    def current_accuracy(self) -> float:
        """The accuracy after the review time worked so far in this shift."""
        hours = self.seconds_worked / 3600.0
        return max(ACCURACY_FLOOR, self.accuracy - self.fatigue_per_hour * hours)

    def review(
        self,
        truth: TrueRewardModel,
        profile: Mapping[str, Any],
        slate: Sequence[str],
        alternates: Sequence[str],
    ) -> tuple[list[ItemVerdict], float]:
        """Verdicts for each slate position and the seconds it took."""
        keep_chance = truth.keep_probability(profile, slate)
        correct = self.rng.random(len(slate)) < self.current_accuracy()
        keeps = np.where(correct, keep_chance >= 0.5, keep_chance < 0.5)
        if self.bias > 0 and self.favored_categories:
            favoured = np.isin(truth.categories_of(slate), self.favored_categories)
            keeps |= favoured & (self.rng.random(len(slate)) < self.bias)
        spare = [a for a in alternates if a not in slate]
        order = self._swap_preference(truth, profile, spare)
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
        self.seconds_worked += seconds
        return verdicts, seconds

    def _swap_preference(
        self, truth: TrueRewardModel, profile: Mapping[str, Any], spare: Sequence[str]
    ) -> list[int]:
        if not spare:
            return []
        belief = truth.keep_probability(profile, spare)
        if self.bias > 0 and self.favored_categories:
            favoured = np.isin(truth.categories_of(spare), self.favored_categories)
            belief = belief + self.bias * favoured
        return [int(i) for i in np.argsort(-belief)]

    def start_shift(self) -> None:
        """A rested curator: fatigue starts again from zero."""
        self.seconds_worked = 0.0


def change_probability(
    curators: Sequence[SimulatedCurator],
    truth: TrueRewardModel,
    profile: Mapping[str, Any],
    slate: Sequence[str],
) -> float:
    """The chance that a curator picked at random would change this slate right now.

    Exactly what `SimulatedCurator.review` would do, in expectation: an item is kept with
    the curator's current accuracy if the customer would keep it (else with 1 - accuracy),
    plus the bias towards favoured categories; the slate is unchanged only if all are kept.
    """
    if not curators or not slate:
        return 0.0
    keep_chance = truth.keep_probability(profile, slate)
    categories = truth.categories_of(slate)
    unchanged = []
    for curator in curators:
        accuracy = curator.current_accuracy()
        keep = np.where(keep_chance >= 0.5, accuracy, 1.0 - accuracy)
        if curator.bias > 0 and curator.favored_categories:
            favoured = np.isin(categories, curator.favored_categories)
            keep = keep + (1.0 - keep) * curator.bias * favoured
        unchanged.append(float(np.prod(keep)))
    return 1.0 - float(np.mean(unchanged))
