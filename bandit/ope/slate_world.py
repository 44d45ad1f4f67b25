"""Small slate worlds whose every policy value is known by exact enumeration.

A context is one of S segments (uniform); each of m items has a category; a policy is a
Plackett-Luce ranking, scores (S, m): position k draws among the items still free with
probability proportional to exp(score), exactly the sequential draw the live engine makes
(`bandit.engine.slate.draw_slate`). Position k's reward is Bernoulli with chance
base[s, a_k] * decay^k, times `penalty` for each *earlier* item of the same category
(`interaction="cascade"`: the cascade assumption holds, additivity does not), or for each
*other* item of the slate (`"symmetric"`: neither holds), or never (`"additive"`).
The truth sums over all m! / (m - L)! ordered slates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from bandit.ope.synthetic import START_NS, action_names

INTERACTIONS = ("additive", "cascade", "symmetric")


@lru_cache(maxsize=16)
def _slates(items: int, length: int) -> np.ndarray:
    slates = np.array(list(itertools.permutations(range(items), length)))
    slates.flags.writeable = False
    return slates


@dataclass(frozen=True)
class SlateWorld:
    """Known reward chances, categories, slate length and the logging policy's scores."""

    base: np.ndarray  # (S, m) keep chance at position 0 without penalty
    category: np.ndarray  # (m,)
    length: int
    decay: float
    penalty: float
    interaction: str
    logging_scores: np.ndarray  # (S, m)

    @classmethod
    def make(
        cls,
        segments: int = 2,
        items: int = 5,
        length: int = 3,
        seed: int = 0,
        interaction: str = "additive",
        penalty: float = 0.5,
    ) -> SlateWorld:
        """A random world; logging scores mildly informative so every slate has mass."""
        if interaction not in INTERACTIONS:
            raise ValueError(f"interaction: one of {', '.join(INTERACTIONS)}; got {interaction!r}")
        rng = np.random.default_rng([seed, 11])
        base = rng.uniform(0.1, 0.9, size=(segments, items))
        category = np.arange(items) % max(2, items // 2)
        logging = rng.normal(scale=0.5, size=(segments, items))
        return cls(base, category, length, 0.8, penalty, interaction, logging)

    @property
    def shape(self) -> tuple[int, int]:
        """(segments, items)."""
        return int(self.base.shape[0]), int(self.base.shape[1])

    def slates(self) -> np.ndarray:
        """Every ordered slate, (count, L)."""
        return _slates(self.shape[1], self.length)

    def slate_probability(self, scores: np.ndarray) -> np.ndarray:
        """(S, count) probability of each ordered slate under Plackett-Luce `scores`."""
        slates = self.slates()
        weight = np.exp(scores)  # (S, m)
        out = np.ones((scores.shape[0], slates.shape[0]))
        free = np.tile(weight.sum(axis=1)[:, None], (1, slates.shape[0]))
        for k in range(self.length):
            picked = weight[:, slates[:, k]]
            out *= picked / free
            free = free - picked
        return out

    def position_chance(self, segment: int | np.ndarray, slates: np.ndarray) -> np.ndarray:
        """Keep chance of every position of `slates` (count, L) for segment(s)."""
        segment = np.broadcast_to(np.asarray(segment), slates.shape[:1])
        chance = self.base[segment[:, None], slates] * self.decay ** np.arange(self.length)
        cat = self.category[slates]
        same = cat[:, :, None] == cat[:, None, :]
        if self.interaction == "cascade":
            clashes = np.tril(same, k=-1).sum(axis=2)
        elif self.interaction == "symmetric":
            clashes = same.sum(axis=2) - 1
        else:
            clashes = np.zeros_like(cat)
        return np.asarray(chance * self.penalty**clashes)

    def value(self, scores: np.ndarray) -> float:
        """Exact expected reward per position of the Plackett-Luce policy `scores`."""
        slates = self.slates()
        probability = self.slate_probability(scores)  # (S, count)
        total = 0.0
        for s in range(self.shape[0]):
            total += float(probability[s] @ self.position_chance(s, slates).sum(axis=1))
        return total / self.shape[0] / self.length

    def marginals(self, scores: np.ndarray) -> np.ndarray:
        """(S, L, m) P(item at position k) under `scores`, by enumeration."""
        slates = self.slates()
        probability = self.slate_probability(scores)
        s, m = self.shape
        out = np.zeros((s, self.length, m))
        for k in range(self.length):
            one_hot = np.eye(m)[slates[:, k]]  # (count, m)
            out[:, k] = probability @ one_hot
        return out

    def gamma(self, scores: np.ndarray) -> np.ndarray:
        """(S, L*m, L*m) E[1_s 1_s^T] under `scores`: cell (k, a) is index k * m + a."""
        slates = self.slates()
        probability = self.slate_probability(scores)
        s, m = self.shape
        cells = slates + np.arange(self.length) * m  # (count, L)
        indicator = np.zeros((slates.shape[0], self.length * m))
        np.put_along_axis(indicator, cells, 1.0, axis=1)
        return np.einsum("sc,cd,ce->sde", probability, indicator, indicator)

    def sample(
        self, events: int, rng: np.random.Generator, target_scores: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Per-row arrays of a log of `events` slates from the logging policy.

        Keys: event, segment, position, action, reward, propensity and target_probability (both
        conditional on the logged earlier items), marginal_propensity, marginal_target, and
        `free` (events*L, m) marking the items still available at each row.
        """
        s, m = self.shape
        n = events * self.length
        segment = rng.integers(s, size=events)
        logw, targetw = np.exp(self.logging_scores[segment]), np.exp(target_scores[segment])
        free = np.ones((events, m), dtype=bool)
        action = np.empty((events, self.length), dtype=np.int64)
        mu = np.empty((events, self.length))
        pi = np.empty((events, self.length))
        free_rows = np.empty((events, self.length, m), dtype=bool)
        for k in range(self.length):
            free_rows[:, k] = free
            weight = np.where(free, logw, 0.0)
            weight /= weight.sum(axis=1, keepdims=True)
            cumulative = weight.cumsum(axis=1)
            pick = np.minimum((rng.random(events)[:, None] > cumulative).sum(axis=1), m - 1)
            action[:, k] = pick
            mu[:, k] = weight[np.arange(events), pick]
            tweight = np.where(free, targetw, 0.0)
            pi[:, k] = tweight[np.arange(events), pick] / tweight.sum(axis=1)
            free[np.arange(events), pick] = False
        chance = self.position_chance(segment, action)
        reward = (rng.random((events, self.length)) < chance).astype(float)
        log_marginal = self.marginals(self.logging_scores)
        target_marginal = self.marginals(target_scores)
        positions = np.arange(self.length)
        return {
            "event": np.repeat(np.arange(events), self.length),
            "segment": np.repeat(segment, self.length),
            "position": np.tile(positions, events),
            "action": action.reshape(n),
            "reward": reward.reshape(n),
            "propensity": mu.reshape(n),
            "target_probability": pi.reshape(n),
            "marginal_propensity": log_marginal[segment[:, None], positions, action].reshape(n),
            "marginal_target": target_marginal[segment[:, None], positions, action].reshape(n),
            "free": free_rows.reshape(n, m),
        }

    def conditional(self, scores: np.ndarray, segment: np.ndarray, free: np.ndarray) -> np.ndarray:
        """(rows, m) the policy's distribution over the free items at each row."""
        weight = np.where(free, np.exp(scores[segment]), 0.0)
        return weight / weight.sum(axis=1, keepdims=True)

    def log_tables(self, sample: dict[str, np.ndarray]) -> tuple[pa.Table, pa.Table]:
        """The sample as a replay log: rounds and candidates tables (docs/log-format.md)."""
        n, m = sample["free"].shape
        events = sample["event"]
        ids = pa.array(np.char.add("e", events.astype(str)))
        names = action_names(m)
        rounds = pa.table(
            {
                "event_id": ids,
                "timestamp": pa.array(START_NS + events * 1_000_000_000, pa.timestamp("ns")),
                "position": sample["position"],
                "action": names.take(pa.array(sample["action"])),
                "reward": sample["reward"],
                "propensity": sample["propensity"],
                "marginal_propensity": sample["marginal_propensity"],
                "context_segment": pa.array(np.char.add("s", sample["segment"].astype(str))),
            }
        )
        pmf = self.conditional(self.logging_scores, sample["segment"], sample["free"])
        row, item = np.nonzero(sample["free"])
        candidates = pa.table(
            {
                "event_id": ids.take(pa.array(row)),
                "position": pa.array(sample["position"][row]),
                "action": names.take(pa.array(item)),
                "propensity": pmf[row, item],
            }
        )
        return rounds, candidates
