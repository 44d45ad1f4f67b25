"""A policy-config target scores each logged slate as the live engine does: every position
before any of the slate's rewards exists, so no position sees a reward of its own slate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from bandit.engine.config import PolicyConfig, config_from_mapping
from bandit.ope.log_format import ReplayLog, build_log
from bandit.ope.policy_target import explore_eval_target, progressive_policy_target
from bandit.ope.slate_world import SlateWorld
from bandit.ope.synthetic import action_names
from bandit.ope.targets import TargetDistribution

ITEMS = pa.table({"item_id": action_names(5), "category": ["c", "d", "c", "e", "f"]})
CONFIG = config_from_mapping(
    {
        "name": "p",
        "algorithm": "softmax",
        "softmax_lambda": 10.0,
        "candidate_count": 5,
        "slate_size": 3,
        "learning_rate": 0.5,
    }
)
Target = Callable[[ReplayLog, PolicyConfig], TargetDistribution]
TARGETS: dict[str, Target] = {
    "progressive": progressive_policy_target,
    "explore_eval": lambda log, config: explore_eval_target(log, config, 0),
}


def _rounds() -> tuple[pa.Table, pa.Table]:
    world = SlateWorld.make()
    return world.log_tables(world.sample(30, np.random.default_rng(0), world.logging_scores))


def _with_reward(rounds: pa.Table, reward: np.ndarray) -> pa.Table:
    return rounds.set_column(rounds.column_names.index("reward"), "reward", pa.array(reward))


def _pmf_by_row(target: TargetDistribution, rows: int) -> list[np.ndarray]:
    assert target.support is not None
    support = target.support
    return [support.probability[support.row == row] for row in range(rows)]


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_no_position_sees_a_reward_of_its_own_slate(kind: str) -> None:
    rounds, candidates = _rounds()
    target_of = TARGETS[kind]
    base_log = build_log(rounds, candidates, ITEMS)
    base = _pmf_by_row(target_of(base_log, CONFIG), base_log.rows)
    event = np.asarray(rounds.column("event_id").to_pylist())
    position = rounds.column("position").to_numpy()
    reward = rounds.column("reward").to_numpy().astype(float)
    later_changed = False
    for flipped_event in list(dict.fromkeys(event))[-8:]:
        rows = np.flatnonzero(event == flipped_event)
        first = rows[np.argmin(position[rows])]
        changed = reward.copy()
        changed[first] = 1.0 - changed[first]
        log = build_log(_with_reward(rounds, changed), candidates, ITEMS)
        flipped = _pmf_by_row(target_of(log, CONFIG), log.rows)
        for row in rows:  # every position of the flipped event, position 1 included
            np.testing.assert_allclose(flipped[row], base[row], rtol=0, atol=1e-12)
        after = np.flatnonzero(rows.max() < np.arange(log.rows))
        later_changed |= any(not np.allclose(flipped[r], base[r]) for r in after)
    # The flipped rewards are still learned: later slates see them.
    assert later_changed
