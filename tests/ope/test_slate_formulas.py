"""The slate estimators against independent textbook formulas written here, to 1e-9.

The formulas below are written slate by slate with plain Python loops, straight from the
papers: standard slate IPS and independent IPS as in Open Bandit Pipeline's SlateStandardIPS /
SlateIndependentIPS (Kiyohara et al. 2022, eq. 2 and 3), reward-interaction IPS (eq. 4),
Cascade-DR (eq. 5, gamma = 1) and the pseudo-inverse estimator (Swaminathan et al. 2017,
eq. 3). Rows are shuffled so the implementation cannot lean on the file's order.
"""

from __future__ import annotations

import numpy as np
import pytest

from bandit.ope import slate
from bandit.ope.slate_world import SlateWorld

TOLERANCE = 1e-9


def _random_log(seed: int):
    rng = np.random.default_rng(seed)
    events, length = 40, 3
    lengths = rng.integers(1, length + 1, size=events)  # slates of different lengths
    event = np.repeat(np.arange(events), lengths)
    position = np.concatenate([np.arange(n) for n in lengths])
    n = event.size
    columns = {
        "event": event,
        "position": position,
        "reward": rng.random(n),
        "propensity": rng.uniform(0.05, 1.0, n),
        "target_probability": rng.uniform(0.0, 1.0, n),
        "marginal_propensity": rng.uniform(0.05, 1.0, n),
        "marginal_target": rng.uniform(0.0, 1.0, n),
        "q_logged": rng.random(n),
        "q_target": rng.random(n),
    }
    order = rng.permutation(n)
    return {k: v[order] for k, v in columns.items()}


def _rows_of(log, event):
    rows = [i for i in range(len(log["event"])) if log["event"][i] == event]
    return sorted(rows, key=lambda i: log["position"][i])


def _textbook(log, threshold: float):
    events = sorted(set(log["event"].tolist()))
    n = len(log["event"])
    sums = {"sips": 0.0, "rips": 0.0, "cascade-dr": 0.0, "iips": 0.0, "switch-dr": 0.0}
    for e in events:
        rows = _rows_of(log, e)
        joint = 1.0
        for i in rows:
            joint *= log["target_probability"][i] / log["propensity"][i]
        before = 1.0
        for i in rows:
            r = log["reward"][i]
            prefix = before * log["target_probability"][i] / log["propensity"][i]
            sums["sips"] += joint * r
            sums["rips"] += prefix * r
            sums["iips"] += log["marginal_target"][i] / log["marginal_propensity"][i] * r
            sums["cascade-dr"] += prefix * (r - log["q_logged"][i]) + before * log["q_target"][i]
            correction = prefix * (r - log["q_logged"][i]) if prefix <= threshold else 0.0
            sums["switch-dr"] += correction + min(before, threshold) * log["q_target"][i]
            before = prefix
    return {k: v / n for k, v in sums.items()}


@pytest.mark.parametrize("seed", range(5))
def test_slate_estimators_equal_the_textbook_formulas(seed: int) -> None:
    log = _random_log(seed)
    arrays = slate.SlateArrays(**log)
    weights = slate.slate_weights(arrays)
    expected = _textbook(log, threshold=2.0)
    ours = {
        "sips": slate.sips_terms(arrays, weights).mean(),
        "rips": slate.rips_terms(arrays, weights).mean(),
        "cascade-dr": slate.cascade_dr_terms(arrays, weights).mean(),
        "iips": slate.iips_terms(arrays).mean(),
        "switch-dr": slate.switch_dr_terms(arrays, weights, 2.0).mean(),
    }
    for name, value in expected.items():
        assert abs(ours[name] - value) <= TOLERANCE, name


def test_pseudo_inverse_equals_its_formula_with_an_explicit_gamma() -> None:
    world = SlateWorld.make(segments=2, items=4, length=2, seed=6)
    s, m = world.shape
    length = world.length
    scores = world.logging_scores[::-1].copy()
    gamma = world.gamma(world.logging_scores)
    marginal = world.marginals(scores).reshape(s, length * m)
    sample = world.sample(30, np.random.default_rng(2), scores)
    cells = (sample["action"] + sample["position"] * m).reshape(-1, length)
    group = sample["segment"][::length]
    ours = slate.pseudo_inverse_weight(marginal, gamma, group, cells)
    for g in range(cells.shape[0]):
        # Swaminathan et al. 2017, eq. 3: q_pi(x)^T Gamma(x)^+ 1_s, Gamma^+ by SVD here.
        u, sv, vt = np.linalg.svd(gamma[group[g]])
        inverse = (vt.T * np.where(sv > sv.max() * 1e-10, 1 / sv, 0.0)) @ u.T
        indicator = np.zeros(length * m)
        indicator[cells[g]] = 1.0
        assert abs(ours[g] - marginal[group[g]] @ inverse @ indicator) <= TOLERANCE


def test_uniform_logging_gamma_matches_enumeration() -> None:
    world = SlateWorld.make(segments=1, items=4, length=2, seed=1)
    flat = SlateWorld(world.base, world.category, 2, world.decay, 1.0, "additive", np.zeros((1, 4)))
    np.testing.assert_allclose(slate.uniform_gamma(4, 2), flat.gamma(flat.logging_scores)[0])
