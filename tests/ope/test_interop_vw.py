"""Vowpal Wabbit, in process, reads our DSJSON as it reads our text format, and its
`--explore_eval` gives the numbers `hitl replay --explore-eval` gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from vowpalwabbit import Workspace

from bandit.engine import vw_format
from bandit.engine.config import config_from_mapping
from bandit.engine.policy import vw_arguments
from bandit.ope import interop
from bandit.ope.log_format import build_log, write_log
from bandit.ope.policy_target import catalog_rows, context_dicts, explore_eval_target
from bandit.ope.replay import ReplayOptions, evaluate
from bandit.ope.slate_world import SlateWorld
from bandit.ope.synthetic import SyntheticWorld, action_names
from curation_app.cli import main

# Keys VW's JSON parser would drop as metadata, odd characters, lists and numbers.
ITEMS = pa.table(
    {
        "item_id": action_names(4),
        "category": ["c", "d", "c", "e"],
        "price": [1.0, 2.0, 3.0, 4.0],
        "_flag": ["y", "n", "y", "n"],
        "~tilde": [1.0, 2.0, 3.0, 4.0],
        "style": [" boho", "x y", "z", "w"],
    }
)


def _log(events: int = 300):
    world = SyntheticWorld.make(segments=3, actions=4, seed=8, temperature=3.0)
    rounds, candidates, _ = world.sample(events, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    rounds = rounds.append_column("context__private", pa.array(rng.normal(size=events)))
    rounds = rounds.append_column("context_ odd key", pa.array(["x y"] * events))
    return build_log(rounds, candidates, ITEMS)


def _text_features(log, row: int) -> list[int]:
    items = catalog_rows(log.items)
    shared = vw_format.shared_line(context_dicts(log.context_frame())[row])
    offered = log.candidates.action[log.candidates.row == row]
    lines = [shared] + [vw_format.action_line(items[log.actions[a].as_py()]) for a in offered]
    workspace = Workspace("--cb_explore_adf --quiet -q UI")
    try:
        examples = workspace.parse("\n".join(lines))
        return [e.get_feature_number() for e in examples]
    finally:
        workspace.finish()


def test_strict_dsjson_sees_every_feature_of_the_text_format() -> None:
    log = _log(20)
    workspace = Workspace("--cb_explore_adf --dsjson --strict_parse --quiet -q UI")
    try:
        for row, line in enumerate(interop.dsjson_lines(log)):
            examples = workspace.parse(line)
            from_json = [e.get_feature_number() for e in examples]
            workspace.finish_example(examples)
            assert from_json == _text_features(log, row), row
    finally:
        workspace.finish()


def test_slate_logs_are_ccb_dsjson_that_vw_parses_strictly(tmp_path: Path) -> None:
    world = SlateWorld.make()
    sample = world.sample(40, np.random.default_rng(0), world.logging_scores)
    rounds, candidates = world.log_tables(sample)
    items = pa.table({"item_id": action_names(5), "_hidden": [1.0, 2.0, 3.0, 4.0, 5.0]})
    log = build_log(rounds, candidates, items)
    lines = list(interop.dsjson_lines(log))
    assert len(lines) == 40  # one line per slate
    assert log.items is not None
    catalog = catalog_rows(log.items)
    text = Workspace("--cb_explore_adf --quiet")
    parsed = text.parse(
        "\n".join(["shared |U x"] + [vw_format.action_line(catalog[f"a{i}"]) for i in range(5)])
    )
    text_counts = [e.get_feature_number() for e in parsed[1:]]
    text.finish_example(parsed)
    text.finish()
    workspace = Workspace("--ccb_explore_adf --dsjson --strict_parse --quiet -q UI")
    try:
        for line in lines:
            document = json.loads(line)
            assert len(document["c"]["_slots"]) == len(document["_outcomes"]) == world.length
            examples = workspace.parse(line)
            # shared, 5 actions, 3 slots; every action keeps its escaped `_hidden` feature.
            assert len(examples) == 1 + 5 + world.length
            assert [e.get_feature_number() for e in examples[1:6]] == text_counts
            workspace.learn(examples)
            workspace.finish_example(examples)
    finally:
        workspace.finish()


@pytest.mark.parametrize("epsilon", [0.05, 0.5])
def test_explore_eval_matches_vw_reading_the_exported_dsjson(epsilon: float) -> None:
    log = _log(400)
    config = config_from_mapping(
        {"name": "e", "epsilon": epsilon, "candidate_count": 4, "slate_size": 1}
    )
    target = explore_eval_target(log, config, seed=0)
    ours = evaluate(log, target, ("ips",), options=ReplayOptions(estimand="position"))
    workspace = Workspace(
        f"{vw_arguments(config)} --explore_eval --random_seed 0 --dsjson --strict_parse"
    )
    try:
        for line in interop.dsjson_lines(log):
            examples = workspace.parse(line)
            workspace.learn(examples)
            workspace.finish_example(examples)
        vw_value = -workspace.get_sum_loss() / workspace.get_weighted_examples()
    finally:
        workspace.finish()
    assert abs(ours.estimates["ips"].value - vw_value) <= 1e-6


def test_explore_eval_values_exploration_settings_differently(tmp_path: Path) -> None:
    """The progressive replay's value is linear in epsilon; explore_eval's is not."""
    log = _log(600)
    values = {}
    for epsilon in (0.0, 0.5, 1.0):
        config = config_from_mapping(
            {"name": "e", "epsilon": epsilon, "candidate_count": 4, "slate_size": 1}
        )
        target = explore_eval_target(log, config, seed=0)
        values[epsilon] = evaluate(log, target, ("ips",)).estimates["ips"].value
    midpoint = (values[0.0] + values[1.0]) / 2
    assert abs(values[0.5] - midpoint) > 1e-3, values


def test_dsjson_import_round_trips_a_slate_log(tmp_path: Path) -> None:
    world = SlateWorld.make()
    sample = world.sample(50, np.random.default_rng(3), world.logging_scores)
    rounds, candidates = world.log_tables(sample)
    items = pa.table({"item_id": action_names(5), "category": ["a", "b", "a", "b", "c"]})
    write_log(rounds, candidates, items, tmp_path / "log.parquet")
    runner = CliRunner()
    exported = runner.invoke(
        main,
        [
            "export",
            "--format",
            "dsjson",
            "--log",
            str(tmp_path / "log.parquet"),
            "--out",
            str(tmp_path / "log.json"),
        ],
    )
    assert exported.exit_code == 0, exported.output
    imported = runner.invoke(
        main, ["import", str(tmp_path / "log.json"), "--out", str(tmp_path / "back.parquet")]
    )
    assert imported.exit_code == 0, imported.output
    replays = [
        runner.invoke(
            main,
            [
                "replay",
                "--log",
                str(tmp_path / name),
                "--target",
                "uniform",
                "--out",
                str(tmp_path / name.split(".")[0]),
            ],
        )
        for name in ("log.parquet", "back.parquet")
    ]
    for result in replays:
        assert result.exit_code == 0, result.output
    first, second = (
        json.loads((tmp_path / d / "replay.json").read_text()) for d in ("log", "back")
    )
    # The original also has marginal_propensity (so iips); DSJSON carries no marginals.
    assert set(second["estimators"]) == {"sips", "rips", "cascade-dr"}
    for name, estimate in second["estimators"].items():
        assert first["estimators"][name]["value"] == pytest.approx(estimate["value"], abs=1e-9)


def test_personalizer_style_dsjson_imports(tmp_path: Path) -> None:
    line = {
        "_label_cost": -1.0,
        "_label_probability": 0.8,
        "_label_Action": 2,
        "_labelIndex": 1,
        "Timestamp": "2021-02-01T10:00:00.1234567Z",
        "Version": "1",
        "EventId": "abc",
        "a": [2, 1],
        "c": {
            "GUser": {"id": "mk", "major": "psychology"},
            "_multi": [{"TAction": {"topic": "Ski"}}, {"TAction": {"topic": "Garden"}}],
        },
        "p": [0.8, 0.2],
        "VWState": {"m": "N/A"},
    }
    unlabelled = {k: v for k, v in line.items() if not k.startswith("_label")}
    source = tmp_path / "aps.json"
    source.write_text(json.dumps(line) + "\n" + json.dumps({**unlabelled, "EventId": "x"}) + "\n")
    result = CliRunner().invoke(main, ["import", str(source), "--out", str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    assert "1 unlabelled lines skipped" in result.output
    replay = CliRunner().invoke(
        main, ["replay", "--log", str(tmp_path / "l.csv"), "--target", "logged"]
    )
    assert replay.exit_code == 0, replay.output
    assert " 1.0000" in replay.output
