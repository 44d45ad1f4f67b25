"""Every estimator's effective sample size is counted in logged slates (events), the unit of
the 100 / 1,000 thresholds that choose the warning and the interval method."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bandit.ope.log_format import ReplayLog, build_log
from bandit.ope.replay import POSITION, ReplayOptions, evaluate
from bandit.ope.slate_world import SlateWorld
from bandit.ope.targets import TargetDistribution, logged_target


def _slate_ess(weight: np.ndarray, event: np.ndarray) -> float:
    """Kish's (sum m)^2 / sum m^2 over events, m an event's mean weight: written out by hand."""
    means = [float(np.mean(weight[event == g])) for g in np.unique(event)]
    return sum(means) ** 2 / sum(m * m for m in means)


@pytest.mark.parametrize(
    ("estimand", "names"),
    [
        ("slate", ("sips", "rips", "cascade-dr", "switch-dr", "iips")),
        (POSITION, ("ips", "snips", "dm", "dr")),
    ],
)
def test_the_logging_policy_as_target_has_the_ess_of_every_logged_slate(
    estimand: str, names: tuple[str, ...]
) -> None:
    world = SlateWorld.make(seed=2, interaction="cascade")
    sample = world.sample(300, np.random.default_rng(4), world.logging_scores)
    log = build_log(*world.log_tables(sample))
    report = evaluate(log, logged_target(log), names, options=ReplayOptions(estimand=estimand))
    assert log.rows == 300 * world.length
    for name in names:
        assert report.estimates[name].ess == pytest.approx(300, abs=1e-9), name


def _few_heavy_slates(slates: int, seed: int) -> tuple[np.ndarray, ReplayLog, TargetDistribution]:
    """Slates of 5 whose target differs from the logging policy at the first position only:
    weight 4 on about a quarter of the slates, 0 on the rest (the reviewer's scenario)."""
    rng = np.random.default_rng(seed)
    heavy = rng.random(slates) < 0.25
    event = np.repeat(np.arange(slates), 5)
    position = np.tile(np.arange(5), slates)
    propensity = np.where(position == 0, 0.25, 0.5)
    ratio = np.where(position == 0, np.repeat(np.where(heavy, 4.0, 0.0), 5), 1.0)
    rounds = pa.table(
        {
            "event_id": pa.array(np.char.add("e", event.astype(str))),
            "timestamp": pa.array(event * 1_000_000_000, pa.timestamp("ns")),
            "position": position,
            "action": pa.array(np.char.add("a", position.astype(str))),
            "reward": (rng.random(event.size) < 0.4).astype(float),
            "propensity": propensity,
        }
    )
    log = build_log(rounds)
    target = TargetDistribution("few-heavy", propensity * ratio, None, len(log.actions))
    return heavy, log, target


@pytest.mark.parametrize(("slates", "seed"), [(60, 0), (200, 1)])
def test_cascade_ess_counts_slates_as_sips_does(slates: int, seed: int) -> None:
    heavy, log, target = _few_heavy_slates(slates, seed)
    report = evaluate(log, target, ("sips", "rips"))
    sips, rips = report.estimates["sips"], report.estimates["rips"]
    # Only the first position differs, so every prefix weight is the slate weight: 4 or 0.
    assert sips.ess == pytest.approx(heavy.sum(), abs=1e-9)
    assert rips.ess == pytest.approx(sips.ess, abs=1e-9)
    prefix = np.repeat(np.where(heavy, 4.0, 0.0), 5)
    assert rips.ess == pytest.approx(_slate_ess(prefix, log.event), abs=1e-9)
    # One unit, so one warning and one interval method for both on the same log.
    assert rips.method == sips.method == "bootstrap+normal"
    assert sum(w.startswith(("sips:", "rips:")) for w in report.warnings) == 2


def test_the_cascade_ess_is_kish_over_each_slates_mean_prefix_weight() -> None:
    world = SlateWorld.make(seed=2, interaction="cascade")
    scores = world.logging_scores + np.random.default_rng(1).normal(
        scale=3.0, size=world.logging_scores.shape
    )
    sample = world.sample(400, np.random.default_rng(4), scores)
    log = build_log(*world.log_tables(sample))
    target = TargetDistribution("far", sample["target_probability"], None, len(log.actions))
    report = evaluate(log, target, ("sips", "rips"))
    ratio = sample["target_probability"] / sample["propensity"]
    prefix = np.concatenate(
        [np.cumprod(ratio[sample["event"] == g]) for g in np.unique(sample["event"])]
    )
    assert report.estimates["rips"].ess == pytest.approx(
        _slate_ess(prefix, sample["event"]), rel=1e-9
    )
    assert report.estimates["rips"].ess <= 400
