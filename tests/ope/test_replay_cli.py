"""`hitl replay`, `export` and `import` as a user meets them: estimand and assumption named,
options that change the numbers, diagnostics written, OBP's input rules met, errors not
tracebacks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bandit.ope.log_format import build_log, write_log
from bandit.ope.reward_choice import choose_reward, per_source
from bandit.ope.slate_world import SlateWorld
from bandit.ope.synthetic import action_names
from curation_app.cli import main

HEADER = "event_id,timestamp,position,action,reward,propensity,context_x\n"
ROW = "e{0},2025-01-01T00:00:00Z,0,a,1,0.5,ok\n"


def _slate_log(tmp_path: Path, events: int = 400, far: bool = False) -> Path:
    world = SlateWorld.make(seed=2, interaction="cascade")
    scale = 3.0 if far else 0.5
    scores = world.logging_scores + np.random.default_rng(1).normal(
        scale=scale, size=world.logging_scores.shape
    )
    sample = world.sample(events, np.random.default_rng(4), scores)
    rounds, candidates = world.log_tables(sample)
    source = np.where(np.arange(rounds.num_rows) % 5 == 0, "curator_proxy", "customer")
    # Every other event was reviewed by a curator, who kept what the customer kept, mostly.
    reviewed = sample["event"] % 2 == 0
    curator = np.where(reviewed, np.maximum(sample["reward"], sample["position"] == 0), np.nan)
    rounds = rounds.append_column("reward_source", pa.array(source))
    rounds = rounds.append_column("curator_reward", pa.array(curator, from_pandas=True))
    items = pa.table({"item_id": action_names(5), "category": world.category.astype(str)})
    path = tmp_path / "log.parquet"
    write_log(rounds, candidates, items, path)
    pmf = world.conditional(scores, sample["segment"], sample["free"])
    row, item = np.nonzero(pmf > 0)
    pq.write_table(
        pa.table(
            {
                "event_id": rounds.column("event_id").take(pa.array(row)),
                "position": rounds.column("position").take(pa.array(row)),
                "action": action_names(5).take(pa.array(item)),
                "probability": pmf[row, item],
            }
        ),
        tmp_path / "target.parquet",
    )
    return path


def _run(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_replay_names_the_estimand_and_writes_diagnostics(tmp_path: Path) -> None:
    log = _slate_log(tmp_path)
    out = tmp_path / "out"
    result = _run(
        "replay",
        "--log",
        str(log),
        "--target",
        str(tmp_path / "target.parquet"),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "estimand: reward per position of the target's own slates (3 positions)" in result.output
    assert "default estimator: cascade-dr (assumes the cascade" in result.output
    assert "from customer" in result.output and "from curator_proxy" in result.output
    document = json.loads((out / "replay.json").read_text())
    assert document["estimand"] == "slate" and document["headline"] == "cascade-dr"
    split = document["per_source"]
    total = sum(s["contribution"] for s in split.values())
    assert total == pytest.approx(document["estimators"]["cascade-dr"]["value"], abs=1e-12)
    checks = json.loads((out / "diagnostics.json").read_text())
    assert abs(checks["mean_weight"]["mean"] - 1) < 0.2
    assert [p["group"] for p in checks["per_position"]] == ["0", "1", "2"]
    assert checks["per_segment"]["column"] == "context_segment"
    assert len(checks["calibration"]) == 10
    assert (out / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"


def test_per_position_estimand_only_when_named(tmp_path: Path) -> None:
    log = _slate_log(tmp_path)
    refused = _run("replay", "--log", str(log), "--target", "uniform", "--estimators", "dr")
    assert refused.exit_code != 0 and "--estimand position" in refused.output
    named = _run(
        "replay",
        "--log",
        str(log),
        "--target",
        "uniform",
        "--estimators",
        "dr",
        "--estimand",
        "position",
    )
    assert named.exit_code == 0 and "NOT the value of the target's own slates" in named.output


def test_clip_and_small_ess_warning(tmp_path: Path) -> None:
    log = _slate_log(tmp_path, events=150, far=True)
    target = str(tmp_path / "target.parquet")
    plain = _run(
        "replay",
        "--log",
        str(log),
        "--target",
        target,
        "--estimators",
        "sips",
        "--out",
        str(tmp_path / "a"),
    )
    clipped = _run(
        "replay",
        "--log",
        str(log),
        "--target",
        target,
        "--estimators",
        "sips",
        "--clip",
        "2",
        "--out",
        str(tmp_path / "b"),
    )
    assert plain.exit_code == 0 and clipped.exit_code == 0
    assert "warning: sips: effective sample size" in plain.output
    a, b = (json.loads((tmp_path / d / "replay.json").read_text()) for d in ("a", "b"))
    assert a["estimators"]["sips"]["interval"] == "bootstrap+normal"
    assert a["estimators"]["sips"]["value"] != b["estimators"]["sips"]["value"]
    for document in (a, b):  # intervals stay inside the reward range [0, 1]
        assert 0.0 <= document["estimators"]["sips"]["ci_low"]
        assert document["estimators"]["sips"]["ci_high"] <= 1.0


def test_reward_choice_curator_uses_reviewed_events_only(tmp_path: Path) -> None:
    log = _slate_log(tmp_path)
    customer = _run(
        "replay", "--log", str(log), "--target", "uniform", "--out", str(tmp_path / "c")
    )
    curator = _run(
        "replay",
        "--log",
        str(log),
        "--target",
        "uniform",
        "--reward",
        "curator",
        "--out",
        str(tmp_path / "k"),
    )
    blend = _run(
        "replay",
        "--log",
        str(log),
        "--target",
        "uniform",
        "--reward",
        "blend",
        "--out",
        str(tmp_path / "b"),
    )
    for result in (customer, curator, blend):
        assert result.exit_code == 0, result.output
    rows = {d: json.loads((tmp_path / d / "replay.json").read_text())["rows"] for d in "ckb"}
    assert rows["k"] < rows["c"] == rows["b"]
    # The split says whose judgement the replayed rewards are, not what the round logged.
    assert re.findall(r"^  from (\S+) ", curator.output, re.M) == ["curator"]
    assert f"of the cascade-dr value ({rows['k']} rows)" in curator.output
    assert re.findall(r"^  from (\S+) ", blend.output, re.M) == [
        "curator_proxy",  # unreviewed events: the logged reward alone
        "curator_proxy+curator",
        "customer",
        "customer+curator",
    ]


def test_a_late_customer_outcome_is_split_as_the_customers() -> None:
    rounds = pa.table(
        {
            "event_id": ["a", "b", "c"],
            "timestamp": ["2025-01-01T00:00:00Z"] * 3,
            "position": [0, 0, 0],
            "action": ["x", "y", "x"],
            "reward": [1.0, 0.0, 0.0],
            "propensity": [0.5, 0.5, 0.5],
            "reward_source": ["customer", "default", "default"],
            "late_reward": [None, 1.0, None],
        }
    )
    log = choose_reward(build_log(rounds), "customer")
    assert log.reward.tolist() == [1.0, 1.0, 0.0]
    assert per_source(log, log.reward).keys() == {"customer", "customer (late)", "default"}


def test_obp_export_meets_obp_input_rules(tmp_path: Path) -> None:
    """OBP 0.5.7's `obp.utils.check_ope_inputs` and `check_array` rules, restated here (they
    cannot be imported: OBP 0.5.7 needs Python < 3.11): action_dist 3-d and every
    action_dist[i, :, k] sums to 1 (np.allclose); position and action non-negative integer
    arrays below len_list / n_actions; pscore 1-d and > 0; and the file loads without pickle.
    bench/obp_check.py runs the real OBP on such a file (docs/replay.md has its numbers)."""
    log = _slate_log(tmp_path)
    out = tmp_path / "log.npz"
    result = _run(
        "export",
        "--format",
        "obp",
        "--log",
        str(log),
        "--target",
        str(tmp_path / "target.parquet"),
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    data = np.load(out, allow_pickle=False)
    action_dist = data["action_dist"]
    assert action_dist.ndim == 3 and np.allclose(action_dist.sum(axis=1), 1)
    for name, bound in (("position", action_dist.shape[2]), ("action", action_dist.shape[1])):
        values = data[name]
        assert values.ndim == 1 and np.issubdtype(values.dtype, np.integer)
        assert values.min() >= 0 and values.max() < bound
    assert data["pscore"].ndim == 1 and (data["pscore"] > 0).all()
    assert data["slate_id"].dtype == np.int64
    ids = (tmp_path / "log.ids.csv").read_text().splitlines()
    assert ids[0] == "action,item_id" and ids[1] == f"0,{data['action_ids'][0]}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (ROW.format(1) + ",2025-01-01T00:00:00Z,0,b,1,0.5,ok\n", "column event_id has an empty"),
        (ROW.format(1) + "e2,2025-01-01T00:00:00Z,0,,1,0.5,ok\n", "column action has an empty"),
        (
            ROW.format(1).encode() + b"e2,2025-01-01T00:00:00Z,0,b,1,0.5,caf\xe9\n",
            "is not UTF-8 text; first bad row 2, column context_x",
        ),
    ],
)
def test_bad_csv_cells_are_named(tmp_path: Path, body, message: str) -> None:
    path = tmp_path / "log.csv"
    data = body if isinstance(body, bytes) else body.encode()
    path.write_bytes(HEADER.encode() + data)
    result = _run("replay", "--log", str(path), "--target", "logged")
    assert result.exit_code == 1 and message in result.output, result.output


@pytest.mark.parametrize(
    "command",
    [
        ["export", "--format", "dsjson", "--log", "LOG", "--out", "missing/dir/log.json"],
        ["export", "--out", "missing/dir/log.parquet"],
        ["import", "LOG", "--out", "missing/dir/log.parquet"],
    ],
)
def test_missing_output_folders_are_refused(tmp_path: Path, command: list[str]) -> None:
    log = tmp_path / "log.csv"
    log.write_text(HEADER + ROW.format(1))
    argv = [str(log) if a == "LOG" else str(tmp_path / a) if "missing" in a else a for a in command]
    result = _run(*argv)
    assert result.exit_code == 1 and "does not exist" in result.output, result.output
