"""`hitl export --partitioned`: day partitions streamed in chunks replay like the whole export."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision
from curation_app.cli import main
from tests.services.test_ope_export import EVENTS, logged_history  # noqa: F401 (fixture)


def _spread_over_days(sessions: sessionmaker[Session]) -> set[str]:
    """Move decisions back 0, 1 or 2 days, so the export has three days."""
    with sessions() as session:
        days = set()
        for decision in session.scalars(select(Decision).order_by(Decision.id)):
            decision.created_at = decision.created_at - timedelta(days=decision.id % 3)
            days.add(decision.created_at.date().isoformat())
        session.commit()
    return days


def _replay(log: str, out: Path) -> dict:
    result = CliRunner().invoke(
        main,
        [
            "replay",
            "--log",
            log,
            "--target",
            "uniform",
            "--estimand",
            "position",
            "--estimators",
            "ips,snips",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "replay.json").read_text())


def test_partitioned_export_streams_day_parts_that_replay_like_the_whole_export(
    database_url: str,
    session_factory: sessionmaker[Session],
    logged_history: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    days = _spread_over_days(session_factory)
    dataset = tmp_path / "dataset"
    streamed = CliRunner().invoke(
        main,
        [
            "export",
            "--out",
            str(dataset),
            "--partitioned",
            "--chunk",
            "4",
            "--database-url",
            database_url,
        ],
    )
    assert streamed.exit_code == 0, streamed.output
    whole = tmp_path / "whole.parquet"
    assert (
        CliRunner()
        .invoke(main, ["export", "--out", str(whole), "--database-url", database_url])
        .exit_code
        == 0
    )
    folders = sorted(p.name for p in dataset.iterdir())
    assert folders == sorted(f"day={d}" for d in days)
    parts = sorted(dataset.glob("day=*/part-*.parquet"))
    rounds = [p for p in parts if p.with_suffix("").suffix == ""]
    # 14 decisions in chunks of 4: four chunks, each split by day.
    assert len(rounds) >= -(-EVENTS // 4)
    assert all(p.with_name(p.stem + ".candidates.parquet").exists() for p in rounds)
    from_parts = _replay(str(dataset / "day=*" / "*.parquet"), tmp_path / "parts")
    from_whole = _replay(str(whole), tmp_path / "whole")
    assert from_parts["rows"] == from_whole["rows"] > 0
    for name in ("ips", "snips"):
        for field, value in from_whole["estimators"][name].items():
            assert from_parts["estimators"][name][field] == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize(
    "extra", [["--format", "dsjson"], ["--out-is-file"]], ids=["format", "file-out"]
)
def test_partitioned_export_refuses_other_formats_and_file_outputs(
    database_url: str, tmp_path: Path, extra: list[str]
) -> None:
    out = tmp_path / ("log.parquet" if extra == ["--out-is-file"] else "dataset")
    args = ["export", "--out", str(out), "--partitioned", "--database-url", database_url]
    if extra != ["--out-is-file"]:
        args += extra
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--partitioned" in result.output or "--out" in result.output
    assert not out.exists()
