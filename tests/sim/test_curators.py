"""The simulator's known truth about its curators: the override chance it reports for an
unreviewed slate (`true_override_rate_auto` in the trust study) is how often its own curators
change that slate when they review it, measured by letting them review it many times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.curators import SimulatedCurator, change_probability
from sim.demo_data import generate_catalog, generate_customers
from sim.world import TrueRewardModel

REVIEWS = 3000
SLATES = 6


@pytest.fixture(scope="module")
def world() -> tuple[TrueRewardModel, list[str], list[dict[str, object]]]:
    catalog = generate_catalog(300, seed=4)
    return (
        TrueRewardModel.from_catalog(catalog, seed=4),
        list(catalog["item_id"]),
        generate_customers(30, seed=4),
    )


def _curators(kind: str, seed: int) -> list[SimulatedCurator]:
    rng = np.random.default_rng([seed, 9])
    if kind == "accurate":
        return [SimulatedCurator("a", 0.97, 20.0, rng)]
    if kind == "tired":
        # Two hours into a shift: accuracy 0.9 - 2 x 0.1.
        return [SimulatedCurator("t", 0.9, 20.0, rng, 0.1, seconds_worked=7200.0)]
    return [
        SimulatedCurator(
            "p", 0.7, 20.0, rng, favored_categories=("coat", "dress", "scarf", "jacket"), bias=0.9
        ),
        SimulatedCurator("q", 0.75, 20.0, rng),
    ]


def _measured_change_rate(
    curators: list[SimulatedCurator],
    truth: TrueRewardModel,
    profile: dict[str, object],
    slate: list[str],
    alternates: list[str],
    rng: np.random.Generator,
) -> float:
    """Let a curator picked at random review the slate `REVIEWS` times, at the same moment of
    their shift, and count the reviews that changed anything."""
    changed = 0
    for _ in range(REVIEWS):
        curator = curators[int(rng.integers(len(curators)))]
        worked = curator.seconds_worked
        verdicts, _ = curator.review(truth, profile, slate, alternates)
        curator.seconds_worked = worked
        changed += any(v.verdict != "keep" for v in verdicts)
    return changed / REVIEWS


@pytest.mark.parametrize("kind", ["accurate", "tired", "partial_pair"])
def test_the_reported_override_chance_is_how_often_the_curators_change_the_slate(
    world: tuple[TrueRewardModel, list[str], list[dict[str, object]]], kind: str
) -> None:
    truth, item_ids, customers = world
    rng = np.random.default_rng([11, len(kind)])
    curators = _curators(kind, seed=len(kind))
    outside = []
    for _ in range(SLATES):
        profile = customers[int(rng.integers(len(customers)))]
        picked = rng.choice(len(item_ids), size=12, replace=False)
        slate, alternates = [item_ids[i] for i in picked[:5]], [item_ids[i] for i in picked]
        reported = change_probability(curators, truth, profile, slate)
        measured = _measured_change_rate(curators, truth, profile, slate, alternates, rng)
        standard_error = math.sqrt(max(reported * (1 - reported), 1e-4) / REVIEWS)
        outside.append(abs(measured - reported) > 4 * standard_error)
        assert 0.0 <= reported <= 1.0
    # 4 standard errors: a false alarm on any of the 18 slates has a chance below 0.2%.
    assert not any(outside)
