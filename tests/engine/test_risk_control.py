"""The risk-controlled threshold on synthetic audit streams with known override rates."""

from __future__ import annotations

import numpy as np
import pytest

from bandit.engine import risk_control

TARGET = 0.05
CONFIDENCE = 0.9
SEEDS = 400


def _true_rate_above(threshold: float, floor: float) -> float:
    """Override chance p(s) = floor + 0.3 (1 - s)^2 with s ~ Uniform(0, 1): mean over s >= t."""
    return floor + 0.1 * (1 - threshold) ** 2


def _stream(rng: np.random.Generator, n: int, audit_share: float | None, floor: float):
    scores = rng.random(n)
    overridden = rng.random(n) < floor + 0.3 * (1 - scores) ** 2
    if audit_share is None:
        return scores, overridden, np.ones(n)
    # Above 0.6 only audits are reviewed (weight 1 / share); below it every slate is.
    reviewed = (scores < 0.6) | (rng.random(n) < audit_share)
    weights = np.where(scores < 0.6, 1.0, 1.0 / audit_share)
    return scores[reviewed], overridden[reviewed], weights[reviewed]


def _automate(
    audit_share: float | None,
    floor: float,
    start_factor: float = risk_control.START_EVIDENCE_FACTOR,
) -> tuple[float, float, int]:
    """Violation frequency, mean automated share and seeds automated over SEEDS streams."""
    violations = automated = 0
    shares = []
    for seed in range(SEEDS):
        scores, overridden, weights = _stream(np.random.default_rng(seed), 1500, audit_share, floor)
        choice = risk_control.choose_threshold(
            scores, overridden, weights, TARGET, CONFIDENCE, start_factor=start_factor
        )
        if choice.threshold is None:
            shares.append(0.0)
            continue
        automated += 1
        shares.append(1.0 - choice.threshold)
        violations += _true_rate_above(choice.threshold, floor) > TARGET
    return violations / SEEDS, float(np.mean(shares)), automated


@pytest.mark.parametrize("floor", [0.0, 0.02], ids=["clean_top", "two_percent_floor"])
@pytest.mark.parametrize("audit_share", [None, 0.2], ids=["all_reviewed", "audited"])
def test_the_chosen_threshold_violates_the_target_at_most_one_minus_confidence_of_the_time(
    audit_share: float | None, floor: float
) -> None:
    rate, share, automated = _automate(audit_share, floor)
    allowed = 1 - CONFIDENCE
    # Monte-Carlo error of a frequency over SEEDS runs, three standard errors.
    slack = 3 * np.sqrt(allowed * (1 - allowed) / SEEDS)
    print(f"automated in {automated}/{SEEDS} seeds (mean share {share:.3f}), violations {rate:.3f}")
    assert automated > SEEDS // 4  # the procedure is not vacuous: it does automate
    assert rate <= allowed + slack


@pytest.mark.parametrize("audit_share", [None, 0.2], ids=["all_reviewed", "audited"])
@pytest.mark.parametrize("floor", [0.0, 0.02, 0.03])
def test_starting_the_sequence_on_more_evidence_automates_at_least_as_much(
    audit_share: float | None, floor: float
) -> None:
    _, smallest_start, _ = _automate(audit_share, floor, start_factor=1)
    _, default_start, _ = _automate(audit_share, floor)
    print(f"automated share: start at n_min {smallest_start:.3f}, default {default_start:.3f}")
    # Two standard errors of a mean share over SEEDS streams (shares lie in [0, 1]).
    assert default_start >= smallest_start - 2 * 0.5 / np.sqrt(SEEDS)
    if audit_share is None and floor > 0:
        assert default_start > 2 * smallest_start  # where the n_min start fails on the top


def test_with_too_little_evidence_nothing_is_automated() -> None:
    for n in (0, 1, 10, 40):
        choice = risk_control.choose_threshold(
            np.ones(n), np.zeros(n), np.ones(n), TARGET, CONFIDENCE
        )
        # Even 40 clean reviews cannot bound a 5% rate at 90%: 1 - 0.1 ** (1 / 40) > 0.05.
        assert choice.threshold is None and not any(t.passed for t in choice.tests)
    assert risk_control.minimum_evidence(TARGET, CONFIDENCE) == 45
    one_override = risk_control.choose_threshold(
        np.ones(60), np.arange(60) == 0, np.ones(60), TARGET, CONFIDENCE
    )
    assert one_override.threshold is None and one_override.tests[0].passed is False


def test_the_clopper_pearson_bound_matches_its_closed_form_with_no_overrides() -> None:
    for n in (10, 45, 100, 1000):
        assert risk_control.upper_bound(0, n, 0.9) == pytest.approx(1 - 0.1 ** (1 / n))


def test_more_overrides_lower_the_automation() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(3000)
    clean = risk_control.choose_threshold(
        scores, rng.random(3000) < 0.1 * (1 - scores) ** 2, np.ones(3000), TARGET, CONFIDENCE
    )
    noisy = risk_control.choose_threshold(
        scores, rng.random(3000) < 0.3 * (1 - scores) ** 2, np.ones(3000), TARGET, CONFIDENCE
    )
    assert clean.threshold is not None and noisy.threshold is not None
    assert clean.threshold < noisy.threshold
