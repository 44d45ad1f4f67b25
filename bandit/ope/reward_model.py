"""The reward model behind DM and DR: ridge regression on context x action features, cross-fitted.

Features of a (row, action) pair are [1, x, z, u (outer) v]: x the row's context (numeric
columns standardised, text columns one-hot over their most frequent values), z the action
(one-hot over the most frequent logged actions, plus the item table's features when there is
one), u and v the leading principal components of x and z. The outer product lets the model
learn that different contexts like different actions; taking it over a few components keeps
the model small (a full x (outer) z has thousands of columns on real contexts and items).

Cross-fitting: events are split into K folds; the prediction for any row comes from the model
fit on the other K - 1 folds, so no row's reward leaks into its own prediction (Chernozhukov
et al., 2018). All positions of one event share a fold. Fitting only accumulates Gram
matrices chunk by chunk, so memory stays flat on long logs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bandit.ope.log_format import ReplayLog

CHUNK_ROWS = 200_000


@dataclass(frozen=True)
class RewardModelSettings:
    """How the reward model is fit: folds, ridge penalty, one-hot width and fold seed."""

    folds: int = 5
    ridge: float = 1.0
    max_levels: int = 20
    interaction_rank: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"folds: must be an integer >= 2; got {self.folds!r}")
        if not self.ridge > 0:
            raise ValueError(f"ridge: must be positive; got {self.ridge}")
        if self.interaction_rank < 1:
            raise ValueError(f"interaction_rank: must be at least 1; got {self.interaction_rank}")
        if self.max_levels < 1:
            raise ValueError(f"max_levels: must be at least 1; got {self.max_levels}")


def context_matrix(frame: pd.DataFrame, max_levels: int) -> np.ndarray:
    """Numeric context columns standardised, text columns one-hot on their top values."""
    parts: list[np.ndarray] = []
    for name in frame.columns:
        column = frame[name]
        numeric = pd.to_numeric(column, errors="coerce") if column.dtype != bool else column
        numeric = numeric.astype(float)
        if numeric.notna().mean() > 0.99:
            values = numeric.fillna(numeric.mean()).to_numpy(dtype=float)
            spread = values.std()
            parts.append(((values - values.mean()) / (spread if spread > 0 else 1.0))[:, None])
        else:
            parts.append(_one_hot(column.astype(str), max_levels))
    if not parts:
        return np.zeros((len(frame), 0))
    return np.hstack(parts)


def _one_hot(column: pd.Series, max_levels: int) -> np.ndarray:
    # Multi-valued text ("a|b") counts as one value: rare combinations fall out of the top.
    top = column.value_counts().index[:max_levels]
    codes = pd.Categorical(column, categories=top).codes
    matrix = np.zeros((len(column), len(top)))
    known = codes >= 0
    matrix[np.flatnonzero(known), codes[known]] = 1.0
    return matrix


def action_matrix(log: ReplayLog, vocabulary_size: int, max_levels: int) -> np.ndarray:
    """One row per action code: one-hot of the most logged actions plus item features."""
    counts = np.bincount(log.action, minlength=vocabulary_size)
    top = np.argsort(-counts, kind="stable")[: min(max_levels, vocabulary_size)]
    top = top[counts[top] > 0]
    one_hot = np.zeros((vocabulary_size, top.size))
    one_hot[top, np.arange(top.size)] = 1.0
    if log.items is None or log.items.shape[1] == 0:
        return one_hot
    # Actions a target file adds beyond the log's vocabulary have no item row: all unknown.
    ids = log.actions.to_pylist() + [None] * (vocabulary_size - len(log.actions))
    features = log.items.reindex(ids).drop(columns=["title"], errors="ignore")
    return np.hstack([one_hot, context_matrix(features, max_levels)])


def principal_components(matrix: np.ndarray, counts: np.ndarray, rank: int) -> np.ndarray:
    """[matrix, its centred projection on the top `rank` components], rows weighted by counts."""
    weights = counts / counts.sum()
    mean = weights @ matrix
    centred = matrix - mean
    covariance = (centred * weights[:, None]).T @ centred
    _, vectors = np.linalg.eigh(covariance)
    return np.hstack([matrix, centred @ vectors[:, ::-1][:, :rank]])


def _design(x: np.ndarray, z: np.ndarray, x_width: int, z_width: int) -> np.ndarray:
    # x and z carry their principal components after their first x_width / z_width columns.
    u, v = x[:, x_width:], z[:, z_width:]
    outer = (u[:, :, None] * v[:, None, :]).reshape(x.shape[0], -1)
    return np.hstack([np.ones((x.shape[0], 1)), x[:, :x_width], z[:, :z_width], outer])


@dataclass(frozen=True)
class CrossFittedRewardModel:
    """K ridge models, each fit without one fold of events; predicts out of fold."""

    contexts: np.ndarray
    actions: np.ndarray
    widths: tuple[int, int]
    fold: np.ndarray
    weights: np.ndarray  # (K, d)
    low: float
    high: float

    def predict(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Out-of-fold predicted reward of each (row, action) pair, clipped to the reward range."""
        out = np.empty(rows.size)
        for start in range(0, rows.size, CHUNK_ROWS):
            r = rows[start : start + CHUNK_ROWS]
            chosen = self.actions[actions[start : start + CHUNK_ROWS]]
            design = _design(self.contexts[r], chosen, *self.widths)
            by_fold = design @ self.weights.T
            out[start : start + r.size] = by_fold[np.arange(r.size), self.fold[r]]
        return np.clip(out, self.low, self.high)


def fit_reward_model(
    log: ReplayLog, vocabulary_size: int, settings: RewardModelSettings
) -> CrossFittedRewardModel:
    """Fit the cross-fitted ridge reward model on the log's logged actions and rewards."""
    frame = log.context_frame()
    # Identifiers are not features, as in bandit.vw_format.
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_id")])
    raw_contexts = context_matrix(frame, settings.max_levels)
    raw_actions = action_matrix(log, vocabulary_size, settings.max_levels)
    widths = (raw_contexts.shape[1], raw_actions.shape[1])
    rank = settings.interaction_rank
    contexts = principal_components(raw_contexts, np.ones(log.rows), rank)
    counts = np.bincount(log.action, minlength=vocabulary_size).astype(float)
    actions = principal_components(raw_actions, counts, rank)
    events = int(log.event.max()) + 1
    rng = np.random.default_rng(settings.seed)
    fold_of_event = rng.permutation(events) % settings.folds
    fold = fold_of_event[log.event]
    d = 1 + sum(widths) + (contexts.shape[1] - widths[0]) * (actions.shape[1] - widths[1])
    gram = np.zeros((settings.folds, d, d))
    moment = np.zeros((settings.folds, d))
    for start in range(0, log.rows, CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        design = _design(contexts[rows], actions[log.action[rows]], *widths)
        reward, chunk_fold = log.reward[rows], fold[rows]
        for k in range(settings.folds):
            mine = chunk_fold == k
            gram[k] += design[mine].T @ design[mine]
            moment[k] += design[mine].T @ reward[mine]
    penalty = settings.ridge * np.eye(d)
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    total_gram, total_moment = gram.sum(axis=0), moment.sum(axis=0)
    weights = np.stack(
        [
            _solve(total_gram - gram[k] + penalty, total_moment - moment[k])
            for k in range(settings.folds)
        ]
    )
    return CrossFittedRewardModel(
        contexts, actions, widths, fold, weights, float(log.reward.min()), float(log.reward.max())
    )


def _solve(gram: np.ndarray, moment: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(gram, moment)
    except np.linalg.LinAlgError:
        # Singular only when a fold is empty of some intercept-only direction; fall back.
        return np.linalg.lstsq(gram, moment, rcond=None)[0]
