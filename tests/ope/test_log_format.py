"""The log and target formats: bad inputs are refused naming the column and the first bad row."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bandit.ope.log_format import LogFormatError, build_log, load_log, write_log
from bandit.ope.policy_target import resolve_target
from bandit.ope.synthetic import SyntheticWorld
from bandit.ope.targets import TargetError, file_target
from curation_app.cli import main


def _good_log() -> tuple[pa.Table, pa.Table, np.ndarray, SyntheticWorld]:
    world = SyntheticWorld.make(segments=2, actions=3, seed=1)
    rounds, candidates, segment = world.sample(6, np.random.default_rng(0), positions=2)
    return rounds, candidates, segment, world


def _with(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.column_names.index(column)
    return table.set_column(index, column, pa.array(values))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.drop_columns(["propensity"]), "missing column.*propensity"),
        (lambda t: t.drop_columns(["reward", "action"]), "missing column.*action, reward"),
        (lambda t: _with(t, "propensity", 3, 0.0), r"propensity must be in \(0, 1\].*row 4"),
        (lambda t: _with(t, "propensity", 2, -0.5), r"propensity.*row 3"),
        (lambda t: _with(t, "propensity", 5, 1.5), r"propensity.*row 6"),
        (
            lambda t: _with(
                t.set_column(4, "reward", t.column("reward").cast(pa.string())), "reward", 7, "yes"
            ),
            "reward must hold finite numbers; first bad row 8: 'yes'",
        ),
        (lambda t: _with(t, "reward", 1, float("nan")), "reward.*row 2"),
        (lambda t: _with(t, "position", 4, -1), "position must hold whole numbers.*row 5"),
        (lambda t: _with(t, "position", 1, 0), r"\(event_id, position\) must be unique; row 2"),
        (lambda t: t.slice(0, 0), "no rows"),
    ],
)
def test_bad_logs_are_refused_naming_column_and_row(change, match: str) -> None:
    rounds, candidates, _, _ = _good_log()
    with pytest.raises(LogFormatError, match=match):
        build_log(change(rounds))


def test_bad_timestamps_name_the_row() -> None:
    rounds, _, _, _ = _good_log()
    as_text = rounds.set_column(1, "timestamp", pa.array(["2025-01-01T00:00:00Z"] * 12))
    with pytest.raises(LogFormatError, match="timestamp.*row 5: 'soon'"):
        build_log(_with(as_text, "timestamp", 4, "soon"))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: _with(t, "propensity", 0, 0.9), "candidates: propensity of log row 1.*sums to"),
        (lambda t: _with(t, "event_id", 2, "nobody"), "candidates: row 3.*does not join"),
        (lambda t: t.slice(3), "candidates: no rows for log row 1"),
    ],
)
def test_bad_candidate_tables_are_refused(change, match: str) -> None:
    rounds, candidates, _, _ = _good_log()
    with pytest.raises(LogFormatError, match=match):
        build_log(rounds, change(candidates))


def _target_file(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "target.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda t: _with(t, "probability", 0, 0.5),
            "target: probability of log row 1.*sums to 1.16667, not 1",
        ),
        (
            lambda t: _with(t, "position", 4, 7),
            r"target: row 5 \(event_id 'e0', position 7\) does not join",
        ),
        (lambda t: _with(t, "event_id", 0, "e99"), "target: row 1.*event_id not in the log"),
        (lambda t: t.slice(3), "target: no rows for log row 1"),
        (lambda t: t.drop_columns(["probability"]), "target: missing column.*probability"),
        (lambda t: _with(t, "probability", 1, -0.2), r"probability must be in \[0, 1\].*row 2"),
    ],
)
def test_bad_target_files_are_refused(tmp_path: Path, change, match: str) -> None:
    rounds, candidates, segment, world = _good_log()
    log = build_log(rounds, candidates)
    uniform = np.full(world.shape, 1 / 3)
    table = world.distribution_table(rounds, segment, uniform, "probability")
    with pytest.raises(LogFormatError, match=match):
        file_target(log, _target_file(tmp_path, change(table)))


def test_targets_that_need_candidates_say_so() -> None:
    rounds, _, _, _ = _good_log()
    log = build_log(rounds)
    with pytest.raises(TargetError, match="candidates table"):
        resolve_target(log, "uniform")
    with pytest.raises(TargetError, match="use uniform, logged"):
        resolve_target(log, "best-guess")


def test_csv_and_parquet_logs_load_the_same(tmp_path: Path) -> None:
    rounds, candidates, _, _ = _good_log()
    items = pa.table({"item_id": ["a0", "a1", "a2"], "category": ["x", "y", "x"]})
    write_log(rounds, candidates, items, tmp_path / "log.parquet")
    write_log(rounds, candidates, items, tmp_path / "log.csv")
    from_parquet = load_log(tmp_path / "log.parquet")
    from_csv = load_log(tmp_path / "log.csv")
    np.testing.assert_array_equal(from_parquet.reward, from_csv.reward)
    np.testing.assert_allclose(from_parquet.propensity, from_csv.propensity)
    assert from_csv.candidates is not None and from_csv.items is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "uniform"], "give either --log FILE or --database-url URL"),
        (["--log", "LOG", "--target", "uniform", "--estimators", "sips,magic"], "unknown magic"),
        (["--log", "BAD", "--target", "logged"], "propensity must be in (0, 1]"),
        (["--log", "NOPE", "--target", "logged"], "does not exist"),
        (["--log", "LOG", "--target", "TARGET"], "sums to"),
        (["--log", "EMPTY", "--target", "logged"], "no rows"),
    ],
)
def test_replay_cli_refuses_bad_input_without_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    rounds, candidates, segment, world = _good_log()
    write_log(rounds, candidates, pa.table({"item_id": ["a0"]}), tmp_path / "log.parquet")
    pq.write_table(_with(rounds, "propensity", 2, 0.0), tmp_path / "bad.parquet")
    pq.write_table(rounds.slice(0, 0), tmp_path / "empty.parquet")
    bad_target = world.distribution_table(rounds, segment, np.full(world.shape, 0.2), "probability")
    pq.write_table(bad_target, tmp_path / "target.parquet")
    names = {
        "LOG": "log.parquet",
        "BAD": "bad.parquet",
        "NOPE": "nope.parquet",
        "TARGET": "target.parquet",
        "EMPTY": "empty.parquet",
    }
    argv = [str(tmp_path / names[a]) if a in names else a for a in args]
    result = CliRunner().invoke(main, ["replay", *argv])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
