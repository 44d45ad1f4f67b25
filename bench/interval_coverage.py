"""Coverage of the 95% intervals of ips, snips, dm and dr at a small ESS: the interval `hitl
replay` reports (below an ESS of 1,000 the wider of the cluster bootstrap and the normal
interval, each bound the farther) against the normal interval alone (the estimator classes').

One-position SyntheticWorld logs (logging temperature T) of ROWS rows, uniform target, known
true value; `python bench/interval_coverage.py [SEEDS [ROWS [T]]]` (400, 300, 0.5) prints both
coverages per estimator, the median ESS and the Monte-Carlo standard error (docs/replay.md,
"Honest intervals").
"""

from __future__ import annotations

import math
import sys

import numpy as np

from bandit.ope.estimators import DM, DR, IPS, SNIPS
from bandit.ope.log_format import build_log
from bandit.ope.replay import ReplayOptions, evaluate, replay_arrays
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.synthetic import SyntheticWorld
from bandit.ope.targets import uniform_target

NAMES = ("ips", "snips", "dm", "dr")
NORMAL = {"ips": IPS(), "snips": SNIPS(), "dm": DM(), "dr": DR()}


def main(seeds: int, rows: int = 300, temperature: float = 0.5) -> None:
    """Print each estimator's coverage under both intervals over `seeds` logs."""
    world = SyntheticWorld.make(temperature=temperature)
    truth = world.value(np.full(world.shape, 1.0 / world.shape[1]))
    methods = ("reported", "normal")
    hits = {(n, m): 0 for n in NAMES for m in methods}
    ess = []
    for seed in range(1000, 1000 + seeds):
        rounds, candidates, _ = world.sample(rows, np.random.default_rng(seed))
        log = build_log(rounds, candidates)
        target = uniform_target(log)
        report = evaluate(log, target, NAMES, options=ReplayOptions(seed=seed))
        arrays = replay_arrays(log, target, True, RewardModelSettings())
        ess.append(report.estimates["dr"].ess)
        for name in NAMES:
            reported = report.estimates[name]
            normal = NORMAL[name].estimate(arrays)
            hits[name, "reported"] += reported.ci_low <= truth <= reported.ci_high
            hits[name, "normal"] += normal.ci_low <= truth <= normal.ci_high
    error = math.sqrt(0.95 * 0.05 / seeds)
    print(f"{seeds} seeds, median ESS {np.median(ess):.1f}, MC s.e. of a 0.95 coverage {error:.3f}")
    for name in NAMES:
        print(
            f"{name:<6} reported {hits[name, 'reported'] / seeds:.3f}  "
            f"normal {hits[name, 'normal'] / seeds:.3f}"
        )


if __name__ == "__main__":
    numbers = [float(a) for a in sys.argv[1:4]]
    defaults = [400.0, 300.0, 0.5]
    seeds, rows, temperature = numbers + defaults[len(numbers) :]
    main(int(seeds), int(rows), temperature)
