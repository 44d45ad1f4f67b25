"""The VW policy: it learns, and a save/reload does not change what it goes on to learn."""

from pathlib import Path

import numpy as np
import pylibvw
import pytest
from vowpalwabbit import Workspace

from bandit.engine import policy as policy_module
from bandit.engine import vw_format
from bandit.engine.config import ALGORITHMS, PolicyConfig
from bandit.engine.policy import VWPolicy, vw_arguments
from tests.engine_helpers import CONTEXT, small_catalog

CATALOG = small_catalog(6)
SHARED = vw_format.shared_line(CONTEXT)
ACTIONS = [vw_format.action_line(row) for row in CATALOG.rows]
BEST = 2


def _train(policy: VWPolicy, rounds: int, rng: np.random.Generator) -> None:
    for _ in range(rounds):
        pmf, _ = policy.score(SHARED, ACTIONS)
        chosen = int(rng.choice(len(ACTIONS), p=pmf))
        policy.learn(SHARED, ACTIONS, chosen, float(chosen == BEST), float(pmf[chosen]))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_learns_a_clearly_best_item(algorithm: str) -> None:
    policy = VWPolicy.fresh(PolicyConfig(algorithm=algorithm, epsilon=0.1))
    _train(policy, 300, np.random.default_rng(0))
    pmf, scores = policy.score(SHARED, ACTIONS)
    assert int(np.argmax(scores)) == BEST
    assert pmf[BEST] == pytest.approx(pmf.max())
    assert pmf.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_save_reload_then_training_matches_an_uninterrupted_run(algorithm: str) -> None:
    config = PolicyConfig(algorithm=algorithm)
    uninterrupted = VWPolicy.fresh(config)
    interrupted = VWPolicy.fresh(config)
    _train(uninterrupted, 40, np.random.default_rng(5))
    _train(interrupted, 40, np.random.default_rng(5))
    reloaded = VWPolicy.from_bytes(interrupted.to_bytes(), config)
    _train(uninterrupted, 40, np.random.default_rng(6))
    _train(reloaded, 40, np.random.default_rng(6))
    # bag and cover come back within ~1e-6 of the uninterrupted run (float state VW saves
    # rounded); a lost --save_resume state would differ by orders of magnitude more.
    assert np.allclose(
        uninterrupted.score(SHARED, ACTIONS)[1], reloaded.score(SHARED, ACTIONS)[1], atol=1e-4
    )


def test_reload_applies_the_current_exploration_setting() -> None:
    trained = VWPolicy.fresh(PolicyConfig(epsilon=0.1))
    _train(trained, 200, np.random.default_rng(1))
    wider = VWPolicy.from_bytes(trained.to_bytes(), PolicyConfig(epsilon=0.6))
    assert wider.score(SHARED, ACTIONS)[0].max() == pytest.approx(1 - 0.6 + 0.6 / len(ACTIONS))


@pytest.mark.parametrize("algorithm", ["epsilon_greedy", "squarecb"])
def test_large_action_space_mode_explores_over_few_diverse_actions_and_learns(
    algorithm: str,
) -> None:
    catalog = small_catalog(60)
    actions = [vw_format.action_line(row) for row in catalog.rows]
    config = PolicyConfig(
        algorithm=algorithm, action_space="vw_large_action_space", las_max_actions=8
    )
    policy = VWPolicy.fresh(config)
    rng = np.random.default_rng(2)
    best = 7
    for _ in range(300):
        pmf, _ = policy.score(SHARED, actions)
        chosen = int(rng.choice(len(actions), p=pmf))
        policy.learn(SHARED, actions, chosen, float(chosen == best), float(pmf[chosen]))
    pmf, scores = policy.score(SHARED, actions)
    assert pmf.sum() == pytest.approx(1.0)
    # The spanner keeps at most max_actions (+ the greedy one) with non-zero probability.
    assert 2 <= np.count_nonzero(pmf) <= config.las_max_actions + 1
    assert int(np.argmax(scores)) == best and pmf[best] == pytest.approx(pmf.max())
    reloaded = VWPolicy.from_bytes(policy.to_bytes(), config)
    assert np.allclose(reloaded.score(SHARED, actions)[1], scores, atol=1e-5)


def test_scoring_a_subset_of_parsed_actions_equals_parsing_the_subset() -> None:
    """What propose relies on to parse a request once for every slate position."""
    for algorithm in ALGORITHMS:
        policy = VWPolicy.fresh(PolicyConfig(algorithm=algorithm))
        _train(policy, 60, np.random.default_rng(3))
        subset = np.array([0, 2, 5])
        with policy.scoring(SHARED, ACTIONS) as score_subset:
            reused_pmf, reused_scores = score_subset(subset)
            full_pmf, _ = score_subset(np.arange(len(ACTIONS)))
        fresh_pmf, fresh_scores = policy.score(SHARED, [ACTIONS[i] for i in subset])
        assert np.allclose(reused_pmf, fresh_pmf) and np.allclose(reused_scores, fresh_scores)
        assert full_pmf.size == len(ACTIONS)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_same_seed_same_model_and_learning_leaves_inputs_alone(algorithm: str) -> None:
    config = PolicyConfig(algorithm=algorithm)
    first, second = VWPolicy.fresh(config), VWPolicy.fresh(config)
    actions_before = list(ACTIONS)
    _train(first, 50, np.random.default_rng(9))
    _train(second, 50, np.random.default_rng(9))
    assert ACTIONS == actions_before
    assert np.allclose(first.score(SHARED, ACTIONS)[1], second.score(SHARED, ACTIONS)[1])


def test_the_private_parser_path_matches_the_public_workspace_api(tmp_path: Path) -> None:
    """policy.py parses with pylibvw's private multi-line calls (hence the vowpalwabbit cap in
    pyproject.toml); their scores must equal the public Workspace.predict on the same text."""
    # Softmax: every probability depends on every score, so equal pmfs mean equal scores.
    policy = VWPolicy.fresh(PolicyConfig(algorithm="softmax"))
    _train(policy, 40, np.random.default_rng(5))
    pmf, _ = policy.score(SHARED, ACTIONS)
    assert len(set(np.round(pmf, 6))) > 2
    model = tmp_path / "model.vw"
    model.write_bytes(policy.to_bytes())
    public = Workspace(f"-i {model} --quiet")
    public_pmf = np.array(public.predict([SHARED, *ACTIONS]))
    public.finish()
    assert np.allclose(pmf, public_pmf)


def _text_parsed_run(
    config: PolicyConfig, requests: list[list[str]], rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The reference: every request and update parsed from text by VW, as `vw` itself would."""
    workspace = Workspace(vw_arguments(config))
    seen = []
    for actions in requests:
        examples = workspace._parse("\n".join([SHARED, *actions]))
        pylibvw.vw.predict_multi(workspace, examples)
        pmf = np.asarray(examples[0].get_action_scores(), dtype=float)
        scores = np.array([0.0 - example.get_partial_prediction() for example in examples[1:]])
        pylibvw.vw._finish_example_multi_ex(workspace, examples)
        seen.append((pmf / pmf.sum(), scores))
        chosen = int(rng.choice(len(actions), p=seen[-1][0]))
        lines = vw_format.labelled_example(
            SHARED, actions, chosen, float(chosen % 3 == 0), float(seen[-1][0][chosen])
        )
        examples = workspace._parse("\n".join(lines))
        pylibvw.vw.learn_multi(workspace, examples)
        pylibvw.vw._finish_example_multi_ex(workspace, examples)
    workspace.finish()
    return seen


def _policy_run(
    config: PolicyConfig, requests: list[list[str]], rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    policy = VWPolicy.fresh(config)
    seen = []
    for actions in requests:
        seen.append(policy.score(SHARED, actions))
        chosen = int(rng.choice(len(actions), p=seen[-1][0]))
        policy.learn(SHARED, actions, chosen, float(chosen % 3 == 0), float(seen[-1][0][chosen]))
    policy.close()
    return seen


@pytest.mark.parametrize("capacity", [2_048, 5])
@pytest.mark.parametrize(
    "config",
    [PolicyConfig(algorithm=algorithm) for algorithm in ALGORITHMS]
    + [PolicyConfig(action_space="vw_large_action_space", las_max_actions=4)],
    ids=[*ALGORITHMS, "large_action_space"],
)
def test_kept_action_examples_decide_and_learn_exactly_as_parsing_the_text(
    config: PolicyConfig, capacity: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests over changing subsets of a catalog (some lines twice in one request, some
    requests the same lines as the one before, or those and one of them again; parsed from
    text for the first 30 calls, then kept; with a capacity of 5, outgrown and parsed from
    text again) give the same pmfs and scores, to the last bit, as VW parsing every request
    and update from its text. One shared line throughout, so its example is reused too."""
    monkeypatch.setattr(policy_module, "KEPT_ACTION_EXAMPLES", capacity)
    monkeypatch.setattr(policy_module, "KEEP_AFTER_USES", 30)
    catalog = [vw_format.action_line(row) for row in small_catalog(30).rows]
    draw = np.random.default_rng(4)
    requests: list[list[str]] = []
    for n in range(120):
        size = int(draw.integers(3, 12))
        if n % 6 == 4:  # the lines of the request before, in a new list (the policy's
            requests.append(list(requests[-1]))  # last kept lines are reused as they are)
        elif n % 6 == 5:  # and those once more with one of them twice
            requests.append([*requests[-1], requests[-1][0]])
        elif n % 6 == 3:  # distinct lines, so every kind of request is kept whole
            requests.append([catalog[i] for i in draw.choice(len(catalog), size, replace=False)])
        else:
            requests.append([catalog[i] for i in draw.choice(len(catalog), size=size)])
    assert any(len(set(actions)) < len(actions) for actions in requests)
    reference = _text_parsed_run(config, requests, np.random.default_rng(8))
    kept = _policy_run(config, requests, np.random.default_rng(8))
    for (pmf, scores), (kept_pmf, kept_scores) in zip(reference, kept, strict=True):
        assert np.array_equal(pmf, kept_pmf) and np.array_equal(scores, kept_scores)
    assert len(set(np.round(reference[-1][1], 6))) > 1  # it learned something to compare


def test_kept_examples_stay_within_their_capacity_then_give_way_to_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory stays bounded: past the capacity the workspace keeps nothing and parses each
    request, with the same scores as before it gave way."""
    monkeypatch.setattr(policy_module, "KEPT_ACTION_EXAMPLES", 12)
    monkeypatch.setattr(policy_module, "KEEP_AFTER_USES", 0)
    catalog = [vw_format.action_line(row) for row in small_catalog(40).rows]
    policy = VWPolicy.fresh(PolicyConfig())
    _train(policy, 20, np.random.default_rng(1))
    before = policy.score(SHARED, catalog[:10])[1]
    assert len(policy._kept._examples) == len({*ACTIONS, *catalog[:10]})  # private: its memory
    policy.score(SHARED, catalog[10:])
    assert len(policy._kept._examples) == 0
    assert np.array_equal(policy.score(SHARED, catalog[:10])[1], before)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_model_trained_on_kept_examples_saves_and_keeps_learning_as_a_text_trained_one(
    algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept examples are never finished, so VW counts no examples for them; what a saved
    model goes on to learn after a reload must not depend on that."""
    config = PolicyConfig(algorithm=algorithm)
    scores = []
    for keep_after in (0, 10**9):  # kept from the first update / parsed from text throughout
        monkeypatch.setattr(policy_module, "KEEP_AFTER_USES", keep_after)
        trained = VWPolicy.fresh(config)
        _train(trained, 150, np.random.default_rng(1))
        monkeypatch.setattr(policy_module, "KEEP_AFTER_USES", 10**9)
        reloaded = VWPolicy.from_bytes(trained.to_bytes(), config)
        _train(reloaded, 60, np.random.default_rng(2))
        scores.append(reloaded.score(SHARED, ACTIONS)[1])
    assert np.array_equal(scores[0], scores[1])
