"""A synthetic bandit world whose policy values are known exactly, for tests and benchmarks.

Contexts are one of S segments (uniform), plus a numeric feature that does not matter; each
of K actions has a known keep chance per segment; the logging policy is a known softmax. The
true value of any policy given as an S x K matrix is sum_s 1/S sum_a pi(a|s) mu(s, a).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

START_NS = np.datetime64("2025-01-01T00:00:00", "ns").astype(np.int64)


@dataclass(frozen=True)
class SyntheticWorld:
    """Known mean rewards and a known logging policy over segments x actions."""

    mean_reward: np.ndarray  # (S, K) P(reward = 1 | segment, action)
    logging: np.ndarray  # (S, K) the logging policy

    @classmethod
    def make(
        cls, segments: int = 4, actions: int = 5, seed: int = 0, temperature: float = 1.0
    ) -> SyntheticWorld:
        """A random world: keep chances in (0.05, 0.95) and a softmax logging policy."""
        rng = np.random.default_rng([seed, 7])
        mean = rng.uniform(0.05, 0.95, size=(segments, actions))
        scores = rng.normal(size=(segments, actions)) / temperature
        logging = np.exp(scores - scores.max(axis=1, keepdims=True))
        return cls(mean, logging / logging.sum(axis=1, keepdims=True))

    @property
    def shape(self) -> tuple[int, int]:
        """(segments, actions)."""
        return (int(self.mean_reward.shape[0]), int(self.mean_reward.shape[1]))

    def value(self, policy: np.ndarray) -> float:
        """The exact expected reward per round of `policy`, an S x K matrix of distributions."""
        return float((policy * self.mean_reward).sum(axis=1).mean())

    def greedy(self) -> np.ndarray:
        """The best policy: each segment's best action with probability 1."""
        best = np.zeros_like(self.mean_reward)
        best[np.arange(best.shape[0]), self.mean_reward.argmax(axis=1)] = 1.0
        return best

    def sample(
        self, events: int, rng: np.random.Generator, positions: int = 1
    ) -> tuple[pa.Table, pa.Table, np.ndarray]:
        """A log of `events` x `positions` rows, its candidates table and each row's segment.

        Positions of an event share its segment and are drawn independently (with
        replacement), so every position offers all K actions.
        """
        s, k = self.shape
        n = events * positions
        segment = np.repeat(rng.integers(s, size=events), positions)
        cumulative = self.logging.cumsum(axis=1)[segment]
        action = np.minimum((rng.random(n)[:, None] > cumulative).sum(axis=1), k - 1)
        reward = (rng.random(n) < self.mean_reward[segment, action]).astype(np.float64)
        event_ids = pa.array(np.char.add("e", np.arange(events).astype(str)))
        event_index = np.repeat(np.arange(events), positions)
        rounds = pa.table(
            {
                "event_id": event_ids.take(pa.array(event_index)),
                "timestamp": pa.array(START_NS + event_index * 1_000_000_000, pa.timestamp("ns")),
                "position": np.tile(np.arange(positions), events),
                "action": action_names(k).take(pa.array(action)),
                "reward": reward,
                "propensity": self.logging[segment, action],
                "context_segment": pa.array(np.char.add("s", segment.astype(str))),
                "context_noise": rng.normal(size=n),
            }
        )
        return rounds, self.distribution_table(rounds, segment, self.logging, "propensity"), segment

    def distribution_table(
        self, rounds: pa.Table, segment: np.ndarray, policy: np.ndarray, column: str
    ) -> pa.Table:
        """(event_id, position, action, `column`) rows of `policy` per log row, zeros left out."""
        k = self.shape[1]
        probability = policy[segment]  # (n, K)
        row, action = np.nonzero(probability > 0)
        return pa.table(
            {
                "event_id": rounds.column("event_id").take(pa.array(row)),
                "position": rounds.column("position").take(pa.array(row)),
                "action": action_names(k).take(pa.array(action)),
                column: probability[row, action],
            }
        )


def action_names(actions: int) -> pa.Array:
    """Item ids `a0`, `a1`, ... of the synthetic actions."""
    return pa.array([f"a{i}" for i in range(actions)])
