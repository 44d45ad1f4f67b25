"""Every CLI command that reads a user's file names that file when it refuses it, besides the
row, column or field: replay logs and their sibling tables, target files, tuning grids,
simulation scenarios, policy configs and DSJSON imports. None of these touches a database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from curation_app.cli import main

HEADER = "event_id,timestamp,position,action,reward,propensity"
GOOD_LOG = f"{HEADER}\ne1,2026-01-01T00:00:00Z,0,a,1,0.5\ne2,2026-01-01T00:01:00Z,0,b,0,0.5\n"
FILES = {
    "log.csv": GOOD_LOG,
    "bad/log.csv": GOOD_LOG.replace(",0,b,0,0.5", ",0,b,0,-1"),
    "cands/log.csv": GOOD_LOG,
    "cands/log.candidates.csv": "event_id,position,action,propensity\ne1,0,a,0.5\ne1,0,b,0.5\n",
    "target.csv": "event_id,position,action,probability\nnope,0,a,1\n",
    "policy.toml": "epsilon = nan\n",
    "grid.toml": "[grids]\n",
    "good-grid.toml": "[grid]\nepsilon = [0.1]\n",
    "scenario.toml": "colour = 1\n",
    "log.dsjson": '{"bad": 1}\n',
}

# (arguments, the file the refusal names, other words it must contain)
CASES = {
    "replay-log": (["replay", "--log", "bad/log.csv", "--target", "uniform"], "bad/log.csv",
                   ("propensity", "row 2")),
    "replay-candidates": (["replay", "--log", "cands/log.csv", "--target", "uniform"],
                          "cands/log.candidates.csv", ("candidates", "log row 2")),
    "replay-target-file": (["replay", "--log", "log.csv", "--target", "target.csv"],
                           "target.csv", ("row 1", "event_id")),
    "replay-target-config": (["replay", "--log", "log.csv", "--target", "policy.toml"],
                             "policy.toml", ("epsilon",)),
    "export-log": (["export", "--format", "dsjson", "--log", "bad/log.csv", "--out", "x.json"],
                   "bad/log.csv", ("propensity",)),
    "tune-grid": (["tune", "--log", "log.csv", "--grid", "grid.toml"], "grid.toml", ("grids",)),
    "tune-scenario": (["tune", "--log", "log.csv", "--grid", "good-grid.toml",
                       "--sim", "scenario.toml"], "scenario.toml", ("colour",)),
    "simulate-scenario": (["simulate", "--config", "scenario.toml", "--out", "sim"],
                          "scenario.toml", ("colour",)),
    "policy-set": (["policy", "set", "policy.toml"], "policy.toml", ("epsilon", "finite")),
    "import-dsjson": (["import", "log.dsjson", "--out", "y.parquet"], "log.dsjson", ("line 1",)),
}  # fmt: skip


@pytest.mark.parametrize(("arguments", "named", "words"), CASES.values(), ids=list(CASES))
def test_a_refused_file_is_named_with_its_row_or_field(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    named: str,
    words: tuple[str, ...],
) -> None:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HITL_DATABASE_URL", raising=False)

    result = CliRunner().invoke(main, arguments)

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"{named}: " in result.output or f"{named} line" in result.output, result.output
    for word in words:
        assert word in result.output, result.output
