"""Slate estimators against exact truth: small worlds enumerated exactly, many seeds.

Each estimator's mean over seeds must sit within Monte-Carlo error of the truth where its
assumption holds, and away from it (its documented failure) where it does not. The
per-position estimand is shown to rank two policies the wrong way round where the slate
estimators rank them right.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bandit.ope import slate
from bandit.ope.intervals import IntervalSettings, mean_estimate
from bandit.ope.log_format import build_log
from bandit.ope.replay import ReplayOptions, evaluate
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.slate_world import SlateWorld
from bandit.ope.synthetic import action_names
from bandit.ope.targets import from_support

SEEDS = 300
EVENTS = 1000
SIGMAS = 4.0  # |bias| <= 4 Monte-Carlo standard errors: a false alarm about once in 16,000


def _target_scores(world: SlateWorld) -> np.ndarray:
    shift = np.random.default_rng(5).normal(scale=0.7, size=world.logging_scores.shape)
    return world.logging_scores + shift


def _model_q(world: SlateWorld, sample: dict[str, np.ndarray], scores: np.ndarray):
    """A reward model that knows base x decay but not the category penalty (wrong in general)."""
    segment, position = sample["segment"], sample["position"]
    per_item = world.base[segment] * (world.decay**position)[:, None]  # (rows, m)
    q_logged = per_item[np.arange(segment.size), sample["action"]]
    pmf = world.conditional(scores, segment, sample["free"])
    return q_logged, (pmf * per_item).sum(axis=1)


def _estimates(world: SlateWorld, scores: np.ndarray, seed: int) -> dict[str, float]:
    sample = world.sample(EVENTS, np.random.default_rng([seed, 17]), scores)
    q_logged, q_target = _model_q(world, sample, scores)
    arrays = slate.SlateArrays(
        event=sample["event"],
        position=sample["position"],
        reward=sample["reward"],
        propensity=sample["propensity"],
        target_probability=sample["target_probability"],
        marginal_propensity=sample["marginal_propensity"],
        marginal_target=sample["marginal_target"],
        q_logged=q_logged,
        q_target=q_target,
    )
    weights = slate.slate_weights(arrays)
    s, m = world.shape
    length = world.length
    cells = (sample["action"] + sample["position"] * m).reshape(-1, length)
    group = sample["segment"][::length]
    pi_weight = slate.pseudo_inverse_weight(
        world.marginals(scores).reshape(s, length * m),
        world.gamma(world.logging_scores),
        group,
        cells,
    )
    return {
        "sips": float(slate.sips_terms(arrays, weights).mean()),
        "rips": float(slate.rips_terms(arrays, weights).mean()),
        "cascade-dr": float(slate.cascade_dr_terms(arrays, weights).mean()),
        "iips": float(slate.iips_terms(arrays).mean()),
        "pi": float((np.repeat(pi_weight, length) * sample["reward"]).mean()),
        "position": float((arrays.ratio * arrays.reward).mean()),
    }


# world -> (estimators whose assumption holds, estimators documented to fail there)
CASES = {
    "additive": (("sips", "rips", "cascade-dr", "iips", "pi"), ()),
    "cascade": (("sips", "rips", "cascade-dr"), ("iips", "position")),
    "symmetric": (("sips",), ("rips", "iips", "position")),
}


@pytest.mark.parametrize("interaction", list(CASES))
def test_estimators_are_unbiased_where_their_assumption_holds(interaction: str) -> None:
    world = SlateWorld.make(seed=1, interaction=interaction, penalty=0.4)
    scores = _target_scores(world)
    truth = world.value(scores)
    runs = [_estimates(world, scores, seed) for seed in range(SEEDS)]
    valid, failing = CASES[interaction]
    for name in (*valid, *failing):
        values = np.array([run[name] for run in runs])
        bias, error = values.mean() - truth, values.std(ddof=1) / np.sqrt(SEEDS)
        print(f"{interaction} {name}: truth {truth:.4f} mean {values.mean():.4f} se {error:.4f}")
        if name in valid:
            assert abs(bias) <= SIGMAS * error, f"{name} biased by {bias:.4f} ({error:.4f})"
        else:
            assert abs(bias) > SIGMAS * error, f"{name} should fail here; bias {bias:.4f}"


def test_clustered_intervals_cover_the_truth_at_their_level() -> None:
    world = SlateWorld.make(seed=2, interaction="cascade", penalty=0.4)
    scores = _target_scores(world)
    truth = world.value(scores)
    hits = 0
    repeats = 200
    for seed in range(repeats):
        sample = world.sample(EVENTS, np.random.default_rng([seed, 3]), scores)
        arrays = slate.SlateArrays(
            sample["event"],
            sample["position"],
            sample["reward"],
            sample["propensity"],
            sample["target_probability"],
        )
        weights = slate.slate_weights(arrays)
        estimate = mean_estimate(
            "rips",
            slate.rips_terms(arrays, weights),
            arrays.event,
            10_000.0,
            IntervalSettings(reward_low=0.0, reward_high=1.0),
        )
        hits += estimate.ci_low <= truth <= estimate.ci_high
    # 95% nominal; 200 repeats put a correct interval above 0.91 with near certainty.
    assert hits / repeats >= 0.91, hits


# Two policies in a world where same-category items crowd each other out (cascade holds).
# A piles on its favourite items whatever their category; B spreads over categories.
# Truths by enumeration: A 0.3512 < B 0.3930. The per-position estimand, which scores each
# position after the logging policy's (diverse) earlier picks, sees A at 0.417, B at 0.372.
POLICY_A = np.array([[2.7, -1.5, 1.0, 0.3, 0.6, -0.2], [-2.5, 2.8, -2.1, -1.7, 1.3, 0.4]])
POLICY_B = np.array([[-1.6, -1.3, -0.3, -0.9, 1.3, -2.3], [0.7, 3.1, 0.4, -1.8, -1.4, 0.1]])


def _replay(world: SlateWorld, scores: np.ndarray, seed: int, names, estimand: str):
    sample = world.sample(3000, np.random.default_rng([seed, 99]), scores)
    rounds, candidates = world.log_tables(sample)
    items = pa.table(
        {"item_id": action_names(world.shape[1]), "category": world.category.astype(str)}
    )
    log = build_log(rounds, candidates, items)
    pmf = world.conditional(scores, sample["segment"], sample["free"])
    row, item = np.nonzero(pmf > 0)
    table = pa.table(
        {
            "event_id": rounds.column("event_id").take(pa.array(row)),
            "position": rounds.column("position").take(pa.array(row)),
            "action": action_names(world.shape[1]).take(pa.array(item)),
            "probability": pmf[row, item],
        }
    )
    keyed, vocabulary = log.rows_for(table, "target")
    target = from_support("t", log, keyed, len(vocabulary))
    report = evaluate(
        log,
        target,
        names,
        RewardModelSettings(seed=seed),
        options=ReplayOptions(estimand=estimand),
    )
    return {name: e.value for name, e in report.estimates.items()}


@pytest.mark.slow
def test_the_slate_value_ranks_the_better_policy_first_where_per_position_does_not() -> None:
    world = SlateWorld.make(seed=3, interaction="cascade", penalty=0.3, items=6, segments=2)
    assert world.value(POLICY_A) < world.value(POLICY_B) - 0.04
    right = {"cascade-dr": 0, "sips": 0, "dr (position)": 0}
    pairs = 40
    for seed in range(pairs):
        a = _replay(world, POLICY_A, seed, ("sips", "cascade-dr"), "slate")
        b = _replay(world, POLICY_B, seed, ("sips", "cascade-dr"), "slate")
        a_pos = _replay(world, POLICY_A, seed, ("dr",), "position")["dr"]
        b_pos = _replay(world, POLICY_B, seed, ("dr",), "position")["dr"]
        right["cascade-dr"] += a["cascade-dr"] < b["cascade-dr"]
        right["sips"] += a["sips"] < b["sips"]
        right["dr (position)"] += a_pos < b_pos
    print(right)
    # sips is right but noisy (joint weights): right in about 78% of pairs, so >= 24 of 40.
    assert right["cascade-dr"] >= 36 and right["sips"] >= 24
    assert right["dr (position)"] <= 8  # the documented failure of the per-position estimand


def test_one_position_logs_give_the_same_numbers_under_both_estimands() -> None:
    world = SlateWorld.make(seed=4, length=1)
    sample = world.sample(500, np.random.default_rng(1), _target_scores(world))
    rounds, candidates = world.log_tables(sample)
    log = build_log(rounds, candidates)
    assert log.candidates is not None
    target = from_support("t", log, log.candidates, len(log.actions))  # the logging policy itself
    slate_report = evaluate(log, target, ("sips", "rips", "cascade-dr", "ips", "dr"))
    values = {n: e.value for n, e in slate_report.estimates.items()}
    assert values["sips"] == pytest.approx(values["ips"], abs=1e-12)
    assert values["rips"] == pytest.approx(values["ips"], abs=1e-12)
    assert values["cascade-dr"] == pytest.approx(values["dr"], abs=1e-12)
    assert values["ips"] == pytest.approx(float(log.reward.mean()), abs=1e-12)
