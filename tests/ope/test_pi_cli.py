"""`hitl replay --estimators pi --logging uniform`: the pseudo-inverse estimator from the CLI.

A small world (5 items, slates of 3, additive rewards) logged uniformly at random without
replacement, its truth by enumeration (`bandit.ope.slate_world`): the CLI's `pi` must be
unbiased over many seeds, agree with the textbook pseudo-inverse q^T Gamma^+ 1_s computed
here from the enumerated Gamma, and be refused, with a message and exit 1, where Gamma is not
known.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from bandit.ope import slate
from bandit.ope.slate_world import SlateWorld
from bandit.ope.synthetic import action_names
from curation_app import replay_charts
from curation_app.cli import main

SEEDS = 200
EVENTS = 400
SIGMAS = 4.0  # |bias| <= 4 Monte-Carlo standard errors


def _uniform_world() -> SlateWorld:
    world = SlateWorld.make(segments=2, items=5, length=3, seed=1, interaction="additive")
    return replace(world, logging_scores=np.zeros_like(world.logging_scores))


def _target_scores(world: SlateWorld) -> np.ndarray:
    return np.random.default_rng(5).normal(scale=0.8, size=world.logging_scores.shape)


def _write(
    folder: Path, world: SlateWorld, scores: np.ndarray, seed: int, candidates: bool = True
) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Log, candidates and a target file with marginal and inclusion probabilities."""
    sample = world.sample(EVENTS, np.random.default_rng([seed, 23]), scores)
    rounds, candidate_table = world.log_tables(sample)
    log = folder / f"log{seed}.parquet"
    pq.write_table(rounds, log)
    if candidates:
        pq.write_table(candidate_table, folder / f"log{seed}.candidates.parquet")
    marginal = world.marginals(scores)  # (S, L, m)
    segment, position = sample["segment"], sample["position"]
    pmf = world.conditional(scores, segment, sample["free"])
    row, item = np.nonzero(pmf > 0)
    target = folder / f"target{seed}.parquet"
    pq.write_table(
        pa.table(
            {
                "event_id": rounds.column("event_id").take(pa.array(row)),
                "position": rounds.column("position").take(pa.array(row)),
                "action": action_names(world.shape[1]).take(pa.array(item)),
                "probability": pmf[row, item],
                "marginal_probability": marginal[segment[row], position[row], item],
                "inclusion_probability": marginal.sum(axis=1)[segment[row], item],
            }
        ),
        target,
    )
    return log, target, sample


def _replay(log: Path, target: Path, *extra: str) -> Result:
    return CliRunner().invoke(
        main, ["replay", "--log", str(log), "--target", str(target), "--estimators", *extra]
    )


def _pi_value(folder: Path, log: Path, target: Path) -> float:
    out = folder / "out"
    result = _replay(log, target, "pi", "--logging", "uniform", "--out", str(out))
    assert result.exit_code == 0, result.output
    return float(json.loads((out / "replay.json").read_text())["estimators"]["pi"]["value"])


@pytest.fixture(autouse=True)
def _no_png(monkeypatch: pytest.MonkeyPatch) -> None:
    """replay.json is what these tests read; drawing the PNG each time would cost seconds."""
    monkeypatch.setattr(replay_charts, "write_diagnostics_png", lambda *args: None)


def test_cli_pi_is_unbiased_on_a_uniformly_logged_additive_world(tmp_path: Path) -> None:
    world = _uniform_world()
    scores = _target_scores(world)
    truth = world.value(scores)
    values = []
    for seed in range(SEEDS):
        log, target, _ = _write(tmp_path, world, scores, seed)
        values.append(_pi_value(tmp_path, log, target))
    estimates = np.array(values)
    bias, error = estimates.mean() - truth, estimates.std(ddof=1) / np.sqrt(SEEDS)
    assert abs(bias) <= SIGMAS * error, f"pi biased by {bias:.4f} (se {error:.4f}, {truth:.4f})"
    assert error < 0.01  # the test has power: an error of a few percent would show


def test_cli_pi_is_the_textbook_pseudo_inverse(tmp_path: Path) -> None:
    world = _uniform_world()
    scores = _target_scores(world)
    log, target, sample = _write(tmp_path, world, scores, seed=0)
    s, m = world.shape
    length = world.length
    # Swaminathan et al. 2017, eq. (3): V = mean_i q_pi(x_i)^T Gamma(x_i)^+ 1_{s_i} r_i, with
    # Gamma = E_mu[1_s 1_s^T] enumerated over every slate and pinv'd numerically.
    gamma = world.gamma(world.logging_scores)  # (S, L m, L m)
    q = world.marginals(scores).reshape(s, length * m)
    indicator = np.zeros((EVENTS, length * m))
    cells = (sample["position"] * m + sample["action"]).reshape(EVENTS, length)
    np.put_along_axis(indicator, cells, 1.0, axis=1)
    segment = sample["segment"][::length]
    weight = np.array(
        [q[g] @ np.linalg.pinv(gamma[g]) @ one for g, one in zip(segment, indicator, strict=True)]
    )
    slate_reward = sample["reward"].reshape(EVENTS, length).sum(axis=1)
    textbook = float((weight * slate_reward).sum() / (EVENTS * length))
    assert _pi_value(tmp_path, log, target) == pytest.approx(textbook, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("items", "length"), [(5, 3), (6, 2), (4, 4), (5, 1)])
def test_closed_form_weight_equals_the_uniform_gamma_pseudo_inverse(
    items: int, length: int
) -> None:
    from bandit.ope.pseudo_inverse import uniform_pi_weights

    world = SlateWorld.make(segments=2, items=items, length=length, seed=3)
    world = replace(world, logging_scores=np.zeros_like(world.logging_scores))
    scores = _target_scores(world)
    sample = world.sample(50, np.random.default_rng(1), scores)
    rounds, candidates = world.log_tables(sample)
    from bandit.ope.log_format import build_log
    from bandit.ope.targets import TargetDistribution

    log = build_log(rounds, candidates)
    marginal = world.marginals(scores)
    segment, position = sample["segment"], sample["position"]
    own = marginal[segment, position, sample["action"]]
    target = TargetDistribution(
        "t",
        sample["target_probability"],
        None,
        items,
        marginal=own,
        inclusion=marginal.sum(axis=1)[segment, sample["action"]],
    )
    cells = (position * items + sample["action"]).reshape(-1, length)
    expected = slate.uniform_pi_weight(
        marginal.reshape(2, length * items)[segment[::length]], cells, items
    )
    got = uniform_pi_weights(log, target)
    np.testing.assert_allclose(got, np.repeat(expected, length), rtol=1e-9, atol=1e-12)


def _refused(result: Result, *phrases: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    for phrase in phrases:
        assert phrase in result.output, result.output


def test_pi_without_the_declaration_is_refused(tmp_path: Path) -> None:
    world = _uniform_world()
    log, target, _ = _write(tmp_path, world, _target_scores(world), seed=0)
    _refused(_replay(log, target, "pi"), "pi needs the logging policy's", "--logging uniform")


def test_a_log_that_was_not_uniform_is_refused_naming_file_row_and_column(
    tmp_path: Path,
) -> None:
    world = SlateWorld.make(segments=2, items=5, length=3, seed=1)  # informative logging
    log, target, _ = _write(tmp_path, world, _target_scores(world), seed=0)
    _refused(
        _replay(log, target, "sips,pi", "--logging", "uniform"),
        str(log),
        "row 1, column propensity",
        "1/(m - k + 1) = 1/5",
    )


def test_a_slate_with_a_missing_position_is_refused(tmp_path: Path) -> None:
    world = _uniform_world()
    log, target, _ = _write(tmp_path, world, _target_scores(world), seed=0)
    candidates = log.with_name(log.stem + ".candidates.parquet")
    for path in (log, target, candidates):  # event e0 keeps positions 0 and 2 only
        table = pq.read_table(path)
        gap = pc.and_(pc.equal(table["event_id"], "e0"), pc.equal(table["position"], 1))
        pq.write_table(table.filter(pc.invert(gap)), path)
    _refused(
        _replay(log, target, "pi", "--logging", "uniform"),
        str(log),
        "row 1, column position: event 'e0'",
    )


def test_a_uniform_declaration_needs_the_candidates_table(tmp_path: Path) -> None:
    world = _uniform_world()
    log, target, _ = _write(tmp_path, world, _target_scores(world), seed=0, candidates=False)
    _refused(_replay(log, target, "pi", "--logging", "uniform"), str(log), "candidates table")


def test_a_target_without_its_marginals_is_refused(tmp_path: Path) -> None:
    world = _uniform_world()
    log, target, _ = _write(tmp_path, world, _target_scores(world), seed=0)
    table = pq.read_table(target)
    pq.write_table(table.drop_columns(["marginal_probability"]), target)
    _refused(_replay(log, target, "pi", "--logging", "uniform"), "marginal_probability")
    pq.write_table(table.drop_columns(["inclusion_probability"]), target)
    _refused(_replay(log, target, "pi", "--logging", "uniform"), "inclusion_probability")


def test_pi_prints_its_assumption_and_an_unknown_logging_policy_is_a_usage_error(
    tmp_path: Path,
) -> None:
    world = _uniform_world()
    log, target, _ = _write(tmp_path, world, _target_scores(world), seed=0)
    result = _replay(log, target, "rips,pi", "--logging", "uniform")
    assert result.exit_code == 0, result.output
    assert "pi " in result.output and "additive slate reward" in result.output
    bad = _replay(log, target, "pi", "--logging", "epsilon-greedy")
    assert bad.exit_code == 2 and "--logging" in bad.output
