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
[1, x, u], so fitting needs only the small per-(fold, action) sums of [1, x, u] outer
products (one pass, chunked, flat memory), contexts are held once per event when its
positions share them, and each row is predicted with its own fold's coefficients only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bandit.ope.log_format import CONTEXT_PREFIX, ReplayLog

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
        if _text_column(column):
            parts.append(_one_hot(column.astype(str), max_levels))
            continue
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


def _text_column(column: pd.Series) -> bool:
    """Text for sure: not a numeric dtype and a sample of it does not parse as numbers (a
    full to_numeric over millions of strings costs seconds)."""
    if pd.api.types.is_numeric_dtype(column) or column.dtype == bool:
        return False
    sample = column.iloc[:: max(1, len(column) // 1000)]
    return bool(pd.to_numeric(sample, errors="coerce").notna().mean() <= 0.99)


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


@dataclass(frozen=True)
class CrossFittedRewardModel:
    """K ridge models, each fit without one fold of events; predicts out of fold.

    Stored as beta[k, a] = M_a^T w_k, so a prediction is one dot product of the event's
    context vector xt with the (fold, action) coefficients: each row meets only its own
    fold's model, and no design matrix is ever built.
    """

    contexts: np.ndarray  # xt per context row (an event, or a log row): [1, x, u]
    beta: np.ndarray  # (K, A, m)
    event: np.ndarray  # context row of each log row
    fold_of_event: np.ndarray  # fold of each context row
    low: float
    high: float

    def predict(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Out-of-fold predicted reward of each (row, action) pair, clipped to the reward range."""
        out = np.empty(rows.size)
        for start in range(0, rows.size, CHUNK_ROWS):
            stop = start + CHUNK_ROWS
            event = self.event[rows[start:stop]]
            coefficients = self.beta[self.fold_of_event[event], actions[start:stop]]
            out[start : start + event.size] = np.einsum(
                "ij,ij->i", self.contexts[event], coefficients
            )
        return np.clip(out, self.low, self.high)


def _group_sums(
    contexts: np.ndarray, event: np.ndarray, key: np.ndarray, reward: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: sum of xt xt^T and of r xt over its rows, chunk by chunk (flat memory)."""
    m = contexts.shape[1]
    gram = np.zeros((groups, m, m))
    moment = np.zeros((groups, m))
    for start in range(0, key.size, CHUNK_ROWS):
        chunk_key = key[start : start + CHUNK_ROWS]
        order = np.argsort(chunk_key, kind="stable")
        sorted_key = chunk_key[order]
        xt = contexts[event[start : start + CHUNK_ROWS][order]]
        r = reward[start : start + CHUNK_ROWS][order]
        bounds = np.flatnonzero(np.diff(sorted_key)) + 1
        for lo, hi in zip(np.append(0, bounds), np.append(bounds, sorted_key.size), strict=True):
            g = int(sorted_key[lo])
            block = xt[lo:hi]
            # einsum, not BLAS: on many small blocks a threaded BLAS spends far more time
            # waking its threads than multiplying (28x slower on a loaded 2-core machine).
            gram[g] += np.einsum("ij,ik->jk", block, block)
            moment[g] += np.einsum("i,ij->j", r[lo:hi], block)
    return gram, moment


def _shared_by_event(log: ReplayLog, first: np.ndarray) -> bool:
    """Whether every row carries its event's first row's context (true of our own logs)."""
    heads = pa.array(first[np.searchsorted(np.unique(log.event), log.event)])
    for name in log.rounds.column_names:
        if name.startswith(CONTEXT_PREFIX):
            column = log.rounds.column(name)
            same = pc.equal(column, column.take(heads)).fill_null(True)
            both_null = pc.and_(pc.is_null(column), pc.is_null(column.take(heads)))
            if not pc.all(pc.or_(same, both_null)).as_py():
                return False
    return True


def _event_contexts(log: ReplayLog, max_levels: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """The context matrix once per event when positions share their context, else per row;
    with each context row's weight (rows it stands for) and whether it is per event."""
    _, first = np.unique(log.event, return_index=True)
    per_event = first.size < log.rows and _shared_by_event(log, first)
    frame = log.context_frame()
    if per_event:
        frame = frame.iloc[first].reset_index(drop=True)
    # Identifiers are not features, as in bandit.engine.vw_format.
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_id")])
    weights = np.bincount(log.event)[np.unique(log.event)] if per_event else np.ones(log.rows)
    return context_matrix(frame, max_levels), weights.astype(float), per_event


def fit_reward_model(
    log: ReplayLog, vocabulary_size: int, settings: RewardModelSettings
) -> CrossFittedRewardModel:
    """Fit the cross-fitted ridge reward model on the log's logged actions and rewards."""
    raw_contexts, weights, per_event = _event_contexts(log, settings.max_levels)
    raw_actions = action_matrix(log, vocabulary_size, settings.max_levels)
    x_width, z_width = raw_contexts.shape[1], raw_actions.shape[1]
    rank = settings.interaction_rank
    with_pcs = principal_components(raw_contexts, weights, rank)
    contexts = np.hstack([np.ones((with_pcs.shape[0], 1)), with_pcs])
    counts = np.bincount(log.action, minlength=vocabulary_size).astype(float)
    actions = principal_components(raw_actions, counts, rank)
    maps = _action_maps(actions, x_width, z_width, with_pcs.shape[1] - x_width)
    events = int(log.event.max()) + 1
    rng = np.random.default_rng(settings.seed)
    fold_of_event = rng.permutation(events) % settings.folds
    if per_event:
        event_index = np.full(events, -1, dtype=np.int64)
        event_index[np.unique(log.event)] = np.arange(contexts.shape[0])
        row_event = event_index[log.event]
        context_fold = fold_of_event[np.unique(log.event)]
    else:  # one context row per log row
        row_event = np.arange(log.rows)
        context_fold = fold_of_event[log.event]
    key = fold_of_event[log.event] * vocabulary_size + log.action
    small_gram, small_moment = _group_sums(
        contexts, row_event, key, log.reward, settings.folds * vocabulary_size
    )
    small_gram = small_gram.reshape(settings.folds, vocabulary_size, *small_gram.shape[1:])
    small_moment = small_moment.reshape(settings.folds, vocabulary_size, -1)
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
    coefficients = np.stack(
        [
            _solve(total_gram - gram[k] + penalty, total_moment - moment[k])
            for k in range(settings.folds)
        ]
    )
    beta = np.einsum("adm,kd->kam", maps, coefficients)
    return CrossFittedRewardModel(
        contexts=contexts,
        beta=beta,
        event=row_event,
        fold_of_event=context_fold,
        low=float(log.reward.min()),
        high=float(log.reward.max()),
    )


def _solve(gram: np.ndarray, moment: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(gram, moment)
    except np.linalg.LinAlgError:
        # Singular only when a fold is empty of some intercept-only direction; fall back.
        return np.linalg.lstsq(gram, moment, rcond=None)[0]
