"""Estimates beyond the observed reward range: the value is reported clipped to it, inside its
own interval, and the report says from what (docs/replay.md, Honest intervals)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bandit.ope.intervals import IntervalSettings, mean_estimate
from bandit.ope.log_format import write_log
from curation_app.cli import main

EVENTS = 200
RARE_EVENTS = (0, 100)  # the only events where the logging policy showed the rare item


def far_target_log(folder: Path, rare_reward: float) -> tuple[Path, Path]:
    """A one-position log and a target far from its logging policy: the logging policy shows
    `common` with 0.999 and `rare` with 0.001 (twice, rewarded `rare_reward`), the target the
    reverse. Two rows then carry weight 999: IPS and DR land far outside [0, 1] (above it with
    `rare_reward` 1, DR below it with 0), as frozen models far from the log do in the gate.
    Returns the log and the target distribution file."""
    ids = [f"e{i:03d}" for i in range(EVENTS)]
    rare = np.isin(np.arange(EVENTS), RARE_EVENTS)
    rounds = pa.table(
        {
            "event_id": ids,
            "timestamp": [f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z" for i in range(EVENTS)],
            "position": np.zeros(EVENTS, dtype=np.int64),
            "action": np.where(rare, "rare", "common"),
            "reward": np.where(rare, rare_reward, np.arange(EVENTS) % 2).astype(float),
            "propensity": np.where(rare, 0.001, 0.999),
            "context_segment": np.where(np.arange(EVENTS) % 3 == 0, "a", "b"),
        }
    )
    pairs = {
        "event_id": np.repeat(ids, 2),
        "position": np.zeros(2 * EVENTS, dtype=np.int64),
        "action": np.tile(["common", "rare"], EVENTS),
    }
    candidates = pa.table({**pairs, "propensity": np.tile([0.999, 0.001], EVENTS)})
    items = pa.table({"item_id": ["common", "rare"], "category": ["tops", "shoes"]})
    log = folder / "far.parquet"
    write_log(rounds, candidates, items, log)
    target = folder / "far.target.parquet"
    pq.write_table(pa.table({**pairs, "probability": np.tile([0.001, 0.999], EVENTS)}), target)
    return log, target


def test_a_value_beyond_the_range_is_clipped_into_its_own_interval() -> None:
    terms = np.zeros(100)
    terms[:2] = 120.0  # mean 2.4, as the gate's incumbent read on the demo log
    settings = IntervalSettings(reward_low=0.0, reward_high=1.0)

    estimate = mean_estimate("cascade-dr", terms, np.arange(100), 2.0, settings)

    assert estimate.unclipped == pytest.approx(2.4)
    assert estimate.ci_low <= estimate.value == 1.0 == estimate.ci_high
    inside = mean_estimate("cascade-dr", terms / 10, np.arange(100), 2.0, settings)
    assert inside.unclipped is None and inside.value == pytest.approx(0.24)


def test_replay_reports_the_clipped_value_and_where_it_came_from(tmp_path: Path) -> None:
    log, target = far_target_log(tmp_path, rare_reward=1.0)
    out = tmp_path / "out"

    result = CliRunner().invoke(
        main, ["replay", "--log", str(log), "--target", str(target), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    ips_line = next(line for line in result.output.splitlines() if line.startswith("ips "))
    assert "1.0000" in ips_line and "(clipped from 9.9" in ips_line
    assert "warning: ips: its estimate 9.9" in result.output
    assert "reported clipped to 1.0000" in result.output
    document = json.loads((out / "replay.json").read_text())
    for name, estimate in document["estimators"].items():
        assert 0.0 <= estimate["ci_low"] <= estimate["value"] <= estimate["ci_high"] <= 1.0, name
    assert document["estimators"]["ips"]["unclipped"] == pytest.approx(9.99, abs=0.01)
    assert document["estimators"]["snips"]["unclipped"] is None  # self-normalised: in range
