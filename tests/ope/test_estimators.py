"""Estimators: against exact truth on 50 synthetic logs, and against hand computation."""

import numpy as np
import pyarrow as pa
import pytest

from bandit.ope.estimators import DM, DR, IPS, SNIPS, ReplayArrays
from bandit.ope.log_format import build_log
from bandit.ope.replay import ReplayOptions, evaluate
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.synthetic import SyntheticWorld
from bandit.ope.targets import from_support, uniform_target

REPEATS = 50


def _target_policy(world: SyntheticWorld) -> np.ndarray:
    # Far from the logging policy but covered by it: mostly the best action, some uniform.
    k = world.shape[1]
    return 0.7 * world.greedy() + 0.3 / k


def test_intervals_cover_the_truth_and_dr_beats_ips_with_a_good_reward_model() -> None:
    world = SyntheticWorld.make(segments=4, actions=5, seed=3, temperature=2.0)
    policy = _target_policy(world)
    truth = world.value(policy)
    covered = {"ips": 0, "snips": 0, "dr": 0}
    errors: dict[str, list[float]] = {"ips": [], "dr": []}
    for repeat in range(REPEATS):
        rng = np.random.default_rng([2024, repeat])
        rounds, candidates, segment = world.sample(2000, rng)
        log = build_log(rounds, candidates)
        table = world.distribution_table(rounds, segment, policy, "probability")
        keyed, vocabulary = log.rows_for(table, "target")
        target = from_support("mostly-best", log, keyed, len(vocabulary))
        report = evaluate(log, target, ("ips", "snips", "dr"), RewardModelSettings(seed=repeat))
        for name, estimate in report.estimates.items():
            covered[name] += estimate.ci_low <= truth <= estimate.ci_high
        errors["ips"].append(report.estimates["ips"].value - truth)
        errors["dr"].append(report.estimates["dr"].value - truth)
    print(f"truth {truth:.4f}; coverage {covered} of {REPEATS}")
    for name, hits in covered.items():
        assert hits >= 0.9 * REPEATS, f"{name} covered the truth in only {hits}/{REPEATS} logs"
    rmse = {name: float(np.sqrt(np.mean(np.square(e)))) for name, e in errors.items()}
    print(f"rmse {rmse}")
    assert rmse["dr"] < 0.8 * rmse["ips"]


def test_dm_is_close_to_the_truth_when_the_model_is_saturated() -> None:
    world = SyntheticWorld.make(segments=3, actions=4, seed=5)
    rounds, candidates, _ = world.sample(5000, np.random.default_rng(9))
    log = build_log(rounds, candidates)
    estimate = evaluate(log, uniform_target(log), ("dm",)).estimates["dm"]
    assert estimate.value == pytest.approx(world.value(np.full(world.shape, 0.25)), abs=0.02)


# A hand-made log: three events, two with two positions. Every number below is written out.
HAND_REWARD = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
HAND_PROPENSITY = np.array([0.5, 0.25, 0.8, 0.5, 0.1])
HAND_TARGET = np.array([1.0, 0.5, 0.2, 0.0, 0.6])
HAND_EVENT = np.array([0, 0, 1, 2, 2])
HAND_Q_LOGGED = np.array([0.6, 0.3, 0.7, 0.2, 0.4])
HAND_Q_TARGET = np.array([0.6, 0.4, 0.5, 0.3, 0.45])


def _hand_arrays() -> ReplayArrays:
    return ReplayArrays(
        reward=HAND_REWARD,
        propensity=HAND_PROPENSITY,
        target_probability=HAND_TARGET,
        cluster=HAND_EVENT,
        q_logged=HAND_Q_LOGGED,
        q_target=HAND_Q_TARGET,
    )


def _clustered_se(terms: np.ndarray, value: float) -> float:
    # Written independently: loop over the three events by hand.
    sums = [sum(terms[i] - value for i in range(5) if HAND_EVENT[i] == g) for g in range(3)]
    return float(np.sqrt(3 / 2 * sum(s * s for s in sums)) / 5)


def test_ips_snips_dm_dr_equal_a_hand_computation() -> None:
    arrays = _hand_arrays()
    w = [1.0 / 0.5, 0.5 / 0.25, 0.2 / 0.8, 0.0 / 0.5, 0.6 / 0.1]  # 2, 2, 0.25, 0, 6
    ips_terms = np.array([w[i] * HAND_REWARD[i] for i in range(5)])  # 2, 0, 0.25, 0, 6
    assert IPS().estimate(arrays).value == pytest.approx(8.25 / 5)
    assert IPS().estimate(arrays).ci_high - 8.25 / 5 == pytest.approx(
        1.959964 * _clustered_se(ips_terms, 8.25 / 5), rel=1e-5
    )
    # ESS in events: Kish over each event's mean weight, (2 + 2) / 2, 0.25 and (0 + 6) / 2.
    assert IPS().estimate(arrays).ess == pytest.approx(5.25**2 / (4 + 0.0625 + 9))
    snips = SNIPS().estimate(arrays)
    assert snips.value == pytest.approx(8.25 / 10.25)
    dm = DM().estimate(arrays)
    assert dm.value == pytest.approx((0.6 + 0.4 + 0.5 + 0.3 + 0.45) / 5)
    assert dm.ess == 3  # the events
    dr_terms = [HAND_Q_TARGET[i] + w[i] * (HAND_REWARD[i] - HAND_Q_LOGGED[i]) for i in range(5)]
    # 0.6 + 0.8, 0.4 - 0.6, 0.5 + 0.075, 0.3 + 0, 0.45 + 3.6
    assert DR().estimate(arrays).value == pytest.approx(sum(dr_terms) / 5)
    assert sum(dr_terms) == pytest.approx(1.4 - 0.2 + 0.575 + 0.3 + 4.05)


def test_clipping_caps_weights() -> None:
    clipped = IPS(max_weight=2.0).estimate(_hand_arrays())
    assert clipped.value == pytest.approx((2 + 0 + 0.25 + 0 + 2) / 5)


@pytest.mark.parametrize(
    ("estimator", "kwargs", "match"),
    [
        (IPS, {"level": 1.5}, "level"),
        (SNIPS, {"max_weight": 0.0}, "max_weight"),
        (DR, {"max_weight": -1.0}, "max_weight"),
        (DM, {"level": 0.2}, "level"),
    ],
)
def test_estimator_settings_are_validated(estimator: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimator(**kwargs)


def test_dm_and_dr_need_reward_predictions() -> None:
    arrays = ReplayArrays(HAND_REWARD, HAND_PROPENSITY, HAND_TARGET)
    with pytest.raises(ValueError, match="q_target"):
        DM().estimate(arrays)
    with pytest.raises(ValueError, match="q_logged"):
        DR().estimate(arrays)


def test_hand_log_through_the_file_path_matches_the_arrays() -> None:
    rounds = pa.table(
        {
            "event_id": ["a", "a", "b", "c", "c"],
            "timestamp": ["2025-01-01T00:00:00Z"] * 5,
            "position": [0, 1, 0, 0, 1],
            "action": ["x", "y", "x", "z", "y"],
            "reward": HAND_REWARD,
            "propensity": HAND_PROPENSITY,
        }
    )
    log = build_log(rounds)
    target = pa.table(
        {
            "event_id": ["a", "a", "b", "b", "c", "c", "c"],
            "position": [0, 1, 0, 0, 0, 0, 1],
            "action": ["x", "y", "x", "y", "z", "x", "y"],
            "probability": [1.0, 0.5, 0.2, 0.8, 0.0, 1.0, 0.6],
        }
    )
    # Position 1 of event a and c need the rest of their mass somewhere: give it to "w".
    target = pa.concat_tables(
        [
            target,
            pa.table(
                {
                    "event_id": ["a", "c"],
                    "position": [1, 1],
                    "action": ["w", "w"],
                    "probability": [0.5, 0.4],
                }
            ),
        ]
    )
    keyed, vocabulary = log.rows_for(target, "target", allow_new_actions=True)
    report = evaluate(
        log,
        from_support("hand", log, keyed, len(vocabulary)),
        ("ips", "snips"),
        options=ReplayOptions(estimand="position"),
    )
    # IPS's 1.65 lies above the largest reward logged (1): reported clipped, its own kept.
    assert report.estimates["ips"].unclipped == pytest.approx(8.25 / 5)
    assert report.estimates["ips"].value == report.estimates["ips"].ci_high == 1.0
    assert report.estimates["snips"].value == pytest.approx(8.25 / 10.25)
    assert report.estimates["snips"].unclipped is None
