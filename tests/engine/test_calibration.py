"""The approval model is calibrated on simulated verdicts with known approval chances."""

from __future__ import annotations

import numpy as np
import pytest

from bandit.engine import calibration
from bandit.engine.approval import ApprovalExample, ApprovalModel, slate_approval

ECE_BOUND = 0.05
ITEMS = 40


def _world(rng: np.random.Generator):
    """Each (segment, item) pair has a known chance that a curator keeps the item."""
    logits = rng.normal(1.5, 1.5, size=(3, ITEMS))
    return 1 / (1 + np.exp(-logits))


def _verdicts(rng: np.random.Generator, chance: np.ndarray, n: int):
    segments = rng.integers(0, 3, n)
    items = rng.integers(0, ITEMS, n)
    kept = rng.random(n) < chance[segments, items]
    return (
        [
            ApprovalExample({"segment": f"s{s}"}, f"|I id=item{i}", int(i % 5), bool(k))
            for s, i, k in zip(segments, items, kept, strict=True)
        ],
        chance[segments, items],
        kept,
    )


@pytest.mark.parametrize("seed", range(3))
def test_calibrated_approval_probabilities_match_known_chances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    chance = _world(rng)
    train, _, _ = _verdicts(rng, chance, 6000)
    held_out, _, held_kept = _verdicts(rng, chance, 2000)
    test, test_chance, test_kept = _verdicts(rng, chance, 3000)
    model = ApprovalModel.fresh()
    model.learn(train)

    def raw(examples):
        return np.array([model.raw_at(e.context, e.action_line, e.position) for e in examples])

    model.calibration = calibration.fit_isotonic(raw(held_out), held_kept)
    predicted = model.calibration(raw(test))
    ece = calibration.expected_calibration_error(predicted, test_kept)
    # The ECE of the true chances themselves is the floor set by sampling noise.
    floor = calibration.expected_calibration_error(test_chance, test_kept)
    brier = calibration.brier_score(predicted, test_kept)
    print(f"ECE {ece:.4f} (truth {floor:.4f}), Brier {brier:.4f}")
    assert ece < ECE_BOUND
    assert calibration.brier_score(predicted, test_kept) < calibration.brier_score(
        np.full(len(test_kept), test_kept.mean()), test_kept
    )
    model.close()


def test_isotonic_fit_is_monotone_and_within_unit_interval() -> None:
    rng = np.random.default_rng(1)
    raw = rng.random(500)
    labels = rng.random(500) < raw
    fitted = calibration.fit_isotonic(raw, labels)
    grid = np.linspace(0, 1, 101)
    values = fitted(grid)
    assert np.all(np.diff(values) >= -1e-12) and values.min() > 0 and values.max() < 1
    again = calibration.IsotonicMap.from_document(fitted.to_document())
    np.testing.assert_allclose(again(grid), values)


def test_reliability_table_and_brier_by_hand() -> None:
    table = calibration.reliability_table([0.05, 0.15, 0.95, 0.95], [0, 1, 1, 0])
    assert [(r["count"], r["observed"]) for r in table] == [(1, 0.0), (1, 1.0), (2, 0.5)]
    assert calibration.brier_score([1.0, 0.0], [1, 1]) == pytest.approx(0.5)
    assert calibration.expected_calibration_error([0.5, 0.5], [1, 0]) == pytest.approx(0.0)


def test_slate_approval_multiplies_its_items() -> None:
    assert slate_approval(np.array([0.9, 0.5, 1.0])) == pytest.approx(0.45)
