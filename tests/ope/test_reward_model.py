"""The fast reward model against its definition: Arrow features equal the pandas encoding, and
the cross-fitted predictions equal an explicit design-matrix ridge fit per fold."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from bandit.ope.context_features import context_matrix, first_rows, log_context_matrix
from bandit.ope.context_store import ContextColumns
from bandit.ope.diagnostics import equal_count_bins
from bandit.ope.grouped_gram import grouped_gram
from bandit.ope.log_format import ReplayLog, build_log
from bandit.ope.reward_model import (
    RewardModelSettings,
    action_matrix,
    fit_reward_model,
    principal_components,
)
from bandit.ope.synthetic import SyntheticWorld


def _mixed_table(rows: int, seed: int) -> pa.Table:
    """Context columns of every kind the encoder distinguishes, two rows per event."""
    rng = np.random.default_rng(seed)
    events = rows // 2
    per_event = {
        # 30 levels with tied counts: the top 20 and their order must match pandas'.
        "context_shop": pa.array([f"s{v}" for v in np.arange(events) % 30]),
        "context_price": pa.array(rng.normal(50, 10, events)),
        "context_age": pa.array(rng.integers(18, 80, events)),
        "context_member": pa.array(rng.random(events) < 0.3),
        "context_maybe": pa.array(
            [None if i % 7 == 0 else f"m{i % 3}" for i in range(events)], type=pa.string()
        ),
        "context_zip": pa.array([str(v) for v in rng.integers(1000, 1010, events)]),
        "context_sparse": pa.array(np.ones(events), mask=rng.random(events) < 0.5),
        "context_customer_id": pa.array([f"c{i}" for i in range(events)]),
    }
    repeat = pa.array(np.repeat(np.arange(events), 2))
    return pa.table({name: values.take(repeat) for name, values in per_event.items()})


@pytest.mark.parametrize("shared", [True, False])
def test_arrow_context_matrix_equals_the_pandas_encoding(shared: bool) -> None:
    table = _mixed_table(400, seed=1)
    event = np.repeat(np.arange(200), 2)
    if not shared:  # a context that changes within an event: contexts are held per row
        noise = np.random.default_rng(2).normal(size=400)
        table = table.append_column("context_noise", pa.array(noise))
    names = table.column_names
    features = [n for n in names if not n.endswith("_id")]
    matrix, first = log_context_matrix(table, names, features, event, max_levels=20)
    frame = table.select(features).to_pandas()
    if shared:
        assert first is not None
        frame = frame.iloc[first].reset_index(drop=True)
    else:
        assert first is None
    expected = context_matrix(frame, 20)
    np.testing.assert_allclose(matrix.dense(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shuffle", [False, True])
def test_first_rows_equal_numpy_unique(shuffle: bool) -> None:
    event = np.repeat(np.arange(50), np.random.default_rng(3).integers(1, 4, 50))
    if shuffle:
        event = np.random.default_rng(4).permutation(event)
    np.testing.assert_array_equal(first_rows(event), np.unique(event, return_index=True)[1])


def test_grouped_gram_equals_explicit_sums() -> None:
    rng = np.random.default_rng(5)
    contexts = rng.normal(size=(300, 4))
    row_context = rng.integers(0, 300, 1000)
    key = rng.integers(0, 7, 1000)
    reward = rng.random(1000)
    gram, moment = grouped_gram(ContextColumns.from_dense(contexts), row_context, key, reward, 8)
    for group in range(8):
        mine = key == group
        design = np.hstack([np.ones((mine.sum(), 1)), contexts[row_context[mine]]])
        np.testing.assert_allclose(gram[group], design.T @ design, atol=1e-9)
        np.testing.assert_allclose(moment[group], reward[mine] @ design, atol=1e-9)


@pytest.mark.parametrize("kind", ["uniform", "ties", "clipped"])
def test_equal_count_bins_match_a_stable_sort(kind: str) -> None:
    rng = np.random.default_rng(6)
    for n in (1, 9, 10, 11, 97, 1000):
        values = {
            "uniform": rng.random(n),
            "ties": rng.integers(0, 3, n).astype(float),
            "clipped": np.clip(rng.normal(size=n), 0.0, 0.5),
        }[kind]
        bins = min(10, n)
        expected = np.empty(n, dtype=np.int64)
        for b, part in enumerate(np.array_split(np.argsort(values, kind="stable"), bins)):
            expected[part] = b
        np.testing.assert_array_equal(equal_count_bins(values, bins), expected)


def _world_log(events: int, shared: bool = True) -> ReplayLog:
    """A two-position log; its noise column per event (`shared`) or per row."""
    world = SyntheticWorld.make(segments=6, actions=5, seed=8)
    rounds, candidates, _ = world.sample(events, np.random.default_rng(9), positions=2)
    if shared:
        noise = rounds.column("context_noise").take(pa.array(np.arange(rounds.num_rows) // 2 * 2))
        rounds = rounds.set_column(
            rounds.schema.get_field_index("context_noise"), "context_noise", noise
        )
    return build_log(rounds, candidates)


def _reference_predictions(log: ReplayLog, settings: RewardModelSettings) -> np.ndarray:
    """Out-of-fold predictions of the logged actions from explicit design matrices."""
    vocabulary = len(log.actions)
    frame = log.context_frame()
    frame = frame.drop(columns=[c for c in frame.columns if str(c).endswith("_id")])
    # Contexts once per event when its rows share them (standardised over events), else per row.
    shared = bool((frame.groupby(log.event).nunique(dropna=False) <= 1).all().all())
    if shared:
        first = np.unique(log.event, return_index=True)[1]
        raw = context_matrix(frame.iloc[first].reset_index(drop=True), 20)
        x = principal_components(
            raw, np.bincount(log.event).astype(float), settings.interaction_rank
        )
        x_rows = x[log.event]
    else:
        raw = context_matrix(frame, 20)
        x_rows = principal_components(raw, np.ones(log.rows), settings.interaction_rank)
    raw_actions = action_matrix(log, vocabulary, settings.max_levels)
    counts = np.bincount(log.action, minlength=vocabulary).astype(float)
    actions = principal_components(raw_actions, counts, settings.interaction_rank)
    z, v = actions[log.action, : raw_actions.shape[1]], actions[log.action, raw_actions.shape[1] :]
    u = x_rows[:, raw.shape[1] :]
    interactions = np.einsum("ni,nj->nij", u, v).reshape(log.rows, -1)
    design = np.hstack([np.ones((log.rows, 1)), x_rows[:, : raw.shape[1]], z, interactions])
    folds = np.random.default_rng(settings.seed).permutation(int(log.event.max()) + 1)
    fold = (folds % settings.folds)[log.event]
    penalty = settings.ridge * np.eye(design.shape[1])
    penalty[0, 0] = 0.0
    out = np.empty(log.rows)
    for k in range(settings.folds):
        train = fold != k
        w = np.linalg.solve(
            design[train].T @ design[train] + penalty, design[train].T @ log.reward[train]
        )
        out[~train] = design[~train] @ w
    return np.clip(out, log.reward.min(), log.reward.max())


@pytest.mark.parametrize("shared", [True, False])
def test_cross_fitted_predictions_equal_the_explicit_ridge_fit(shared: bool) -> None:
    log = _world_log(3000, shared)
    settings = RewardModelSettings(folds=5, seed=3)
    model = fit_reward_model(log, len(log.actions), settings)
    assert (model.contexts.rows < log.rows) == shared  # contexts held once per event
    predicted = model.predict(np.arange(log.rows), log.action)
    np.testing.assert_allclose(predicted, _reference_predictions(log, settings), rtol=1e-9)


def test_rowwise_dot_equals_the_dense_product() -> None:
    rng = np.random.default_rng(10)
    codes = rng.integers(-1, 4, 50)
    dense = rng.normal(size=(50, 2))
    store = ContextColumns.from_parts(50, [("dense", dense, 2), ("codes", codes, 4)])
    weights = rng.normal(size=(7, 6))
    index, which = rng.integers(0, 50, 200), rng.integers(0, 7, 200)
    expected = np.einsum("ij,ij->i", store.take(index), weights[which])
    np.testing.assert_allclose(store.rowwise_dot(index, weights, which), expected, rtol=1e-12)


def test_a_log_without_context_columns_fits_the_action_model() -> None:
    log = _world_log(500)
    names = [n for n in log.rounds.column_names if n.startswith("context_")]
    bare = ReplayLog(**{**log.__dict__, "rounds": log.rounds.drop_columns(names)})
    settings = RewardModelSettings()
    model = fit_reward_model(bare, len(bare.actions), settings)
    predicted = model.predict(np.arange(bare.rows), bare.action)
    np.testing.assert_allclose(predicted, _reference_predictions(bare, settings), rtol=1e-9)
