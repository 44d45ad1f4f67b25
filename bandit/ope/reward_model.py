"""The reward model behind DM and DR: ridge regression on context x action features, cross-fitted.

Features of a (row, action) pair are [1, x, z, u (outer) v]: x the row's context (numeric
columns standardised, text columns one-hot over their most frequent values), z the action
(one-hot over the most frequent logged actions, plus the item table's features when there is
one), u and v the leading principal components of x and z. The outer product lets the model
learn that different contexts like different actions; taking it over a few components keeps
the model small (a full x (outer) z has thousands of columns on real contexts and items).

Cross-fitting: events are split into K folds; the prediction for any row comes from the model
fit on the other K - 1 folds, so no row's reward leaks into its own prediction (Chernozhukov
et al., 2018). All positions of one event share a fold.

Speed: for a fixed action the design row is a linear map M_a of the context vector
xt = [1, x, u], and u is itself linear in x, so xt = T [1, x]. Fitting needs only the small
per-(fold, action) sums of [1, x] outer products (one sorted pass, `bandit.ope.grouped_gram`),
from which the principal components of x and the sums of xt follow; contexts are held once
per event when its positions share them, read from Arrow without a pandas frame of the log
(`bandit.ope.context_features`), and each row is predicted with its own fold's coefficients
on [1, x] only: no design matrix, and no u, is ever built per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bandit.ope.context_features import context_matrix, log_context_matrix
from bandit.ope.context_store import ContextColumns
from bandit.ope.grouped_gram import grouped_gram
from bandit.ope.log_format import CONTEXT_PREFIX, ReplayLog

CHUNK_ROWS = 1 << 18


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
    covariance = np.einsum("ij,ik->jk", centred * weights[:, None], centred)
    _, vectors = np.linalg.eigh(covariance)
    return np.hstack([matrix, centred @ vectors[:, ::-1][:, :rank]])


def _action_maps(actions: np.ndarray, x_width: int, z_width: int, rank_x: int) -> np.ndarray:
    """M_a per action, (A, D, m): the design row of (x, a) is M_a @ xt with xt = [1, x, u].

    The design is [1, x, z_a, u (outer) v_a]: for a fixed action it is linear in xt, so the
    Gram matrix of a fold is sum_a M_a (sum_{rows with a} xt xt^T) M_a^T, and only the small
    (m x m) sums need a pass over the rows.
    """
    count = actions.shape[0]
    z, v = actions[:, :z_width], actions[:, z_width:]
    rank_z = v.shape[1]
    m = 1 + x_width + rank_x
    d = 1 + x_width + z_width + rank_x * rank_z
    maps = np.zeros((count, d, m))
    maps[:, 0, 0] = 1.0
    maps[:, 1 : 1 + x_width, 1 : 1 + x_width] = np.eye(x_width)
    maps[:, 1 + x_width : 1 + x_width + z_width, 0] = z
    offset = 1 + x_width + z_width
    for i in range(rank_x):
        rows = slice(offset + i * rank_z, offset + (i + 1) * rank_z)
        maps[:, rows, 1 + x_width + i] = v
    return maps


def context_transform(total_gram: np.ndarray, rank: int) -> np.ndarray:
    """T with xt = T [1, x], xt = [1, x, u], u = (x - mean) V the centred projection of x on
    its top `rank` principal components; mean and covariance (over log rows) are read off
    the total Gram matrix of [1, x], so u is never built per row."""
    rows = total_gram[0, 0]
    mean = total_gram[0, 1:] / rows
    covariance = total_gram[1:, 1:] / rows - np.outer(mean, mean)
    _, vectors = np.linalg.eigh(covariance)
    top = vectors[:, ::-1][:, :rank]
    width, components = mean.size, top.shape[1]
    transform = np.zeros((1 + width + components, 1 + width))
    transform[0, 0] = 1.0
    transform[1 : 1 + width, 1:] = np.eye(width)
    transform[1 + width :, 0] = -top.T @ mean
    transform[1 + width :, 1:] = top.T
    return transform


@dataclass(frozen=True)
class CrossFittedRewardModel:
    """K ridge models, each fit without one fold of events; predicts out of fold.

    Stored as coefficients on [1, x] per (fold, action): coef[k, a] = T^T M_a^T w_k, so a
    prediction is the intercept plus one dot product of a context with its own fold's
    coefficients, read off the compact contexts (a one-hot block adds one coefficient): no
    design matrix, no per-row x, no (contexts x actions) table is ever built.
    """

    contexts: ContextColumns  # x per context row (an event, or a log row)
    coef: np.ndarray  # (K, A, 1 + p): intercept, then x's coefficients
    event: np.ndarray  # context row of each log row
    fold_of_event: np.ndarray  # fold of each context row
    low: float
    high: float

    def predict(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Out-of-fold predicted reward of each (row, action) pair, clipped to the reward range.

        Chunk by chunk into one output array: whole-length temporaries of 20M pairs cost more
        in page faults than in arithmetic.
        """
        folds, vocabulary, width = self.coef.shape
        flat = self.coef.reshape(folds * vocabulary, width)
        intercept, weights = flat[:, 0].copy(), np.ascontiguousarray(flat[:, 1:])
        out = np.empty(rows.size)
        for start in range(0, rows.size, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, rows.size)
            context = self.event[rows[start:stop]]
            model = self.fold_of_event[context] * vocabulary + actions[start:stop]
            chunk = out[start:stop]
            np.take(intercept, model, out=chunk)
            chunk += self.contexts.rowwise_dot(context, weights, model)
            np.clip(chunk, self.low, self.high, out=chunk)
        return out


def _context_rows(log: ReplayLog, max_levels: int) -> tuple[ContextColumns, np.ndarray | None]:
    """The context matrix once per event when positions share it, else per row; with the
    first row of each event when it is per event (None when per row)."""
    names = [n for n in log.rounds.column_names if n.startswith(CONTEXT_PREFIX)]
    # Identifiers are not features, as in bandit.engine.vw_format.
    features = [n for n in names if not n[len(CONTEXT_PREFIX) :].endswith("_id")]
    return log_context_matrix(log.rounds, names, features, log.event, max_levels)


def fit_reward_model(
    log: ReplayLog, vocabulary_size: int, settings: RewardModelSettings
) -> CrossFittedRewardModel:
    """Fit the cross-fitted ridge reward model on the log's logged actions and rewards."""
    raw_contexts, first = _context_rows(log, settings.max_levels)
    events = int(log.event.max()) + 1
    rng = np.random.default_rng(settings.seed)
    fold_of_event = rng.permutation(events) % settings.folds
    if first is not None:  # one context row per event
        present = log.event[first]
        event_index = np.full(events, -1, dtype=np.int64)
        event_index[present] = np.arange(present.size)
        row_context = event_index[log.event]
        context_fold = fold_of_event[present]
    else:  # one context row per log row
        row_context = np.arange(log.rows)
        context_fold = fold_of_event[log.event]
    key = fold_of_event[log.event] * vocabulary_size + log.action
    base_gram, base_moment = grouped_gram(
        raw_contexts, row_context, key, log.reward, settings.folds * vocabulary_size
    )
    del key
    transform = context_transform(base_gram.sum(axis=0), settings.interaction_rank)
    # The sums of xt = T [1, x]: T S T^T and T s, per (fold, action).
    small_gram = (transform @ base_gram @ transform.T).reshape(
        settings.folds, vocabulary_size, transform.shape[0], transform.shape[0]
    )
    small_moment = (base_moment @ transform.T).reshape(settings.folds, vocabulary_size, -1)
    x_width = raw_contexts.width
    raw_actions = action_matrix(log, vocabulary_size, settings.max_levels)
    counts = np.bincount(log.action, minlength=vocabulary_size).astype(float)
    actions = principal_components(raw_actions, counts, settings.interaction_rank)
    maps = _action_maps(actions, x_width, raw_actions.shape[1], transform.shape[0] - 1 - x_width)
    coefficients = _fold_coefficients(maps, small_gram, small_moment, settings)
    beta = np.einsum("adm,kd->kam", maps, coefficients)
    return CrossFittedRewardModel(
        contexts=raw_contexts,
        coef=beta @ transform,
        event=row_context,
        fold_of_event=context_fold,
        low=float(log.reward.min()),
        high=float(log.reward.max()),
    )


def _fold_coefficients(
    maps: np.ndarray,
    small_gram: np.ndarray,
    small_moment: np.ndarray,
    settings: RewardModelSettings,
) -> np.ndarray:
    """Ridge coefficients (K, D) of each fold's model, fit on the other folds' sums."""
    # One BLAS product pair per action (maps[a] G[k, a] maps[a]^T for every fold at once):
    # a single einsum over all actions ran without BLAS and took minutes on wide contexts.
    gram = np.zeros((settings.folds, maps.shape[1], maps.shape[1]))
    for action in range(maps.shape[0]):
        projected = np.matmul(maps[action], small_gram[:, action])
        gram += np.matmul(projected, maps[action].T)
    moment = np.einsum("adm,kam->kd", maps, small_moment, optimize=True)
    d = maps.shape[1]
    penalty = settings.ridge * np.eye(d)
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    total_gram, total_moment = gram.sum(axis=0), moment.sum(axis=0)
    return np.stack(
        [
            _solve(total_gram - gram[k] + penalty, total_moment - moment[k])
            for k in range(settings.folds)
        ]
    )


def _solve(gram: np.ndarray, moment: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(gram, moment)
    except np.linalg.LinAlgError:
        # Singular only when a fold is empty of some intercept-only direction; fall back.
        return np.linalg.lstsq(gram, moment, rcond=None)[0]
