"""Replay over a partitioned log: per-partition sums that add up to the whole log's estimate.

A partitioned log is a set of rounds files (one per day from `hitl export --partitioned`), each
with its optional `.candidates` / `.items` siblings, and every event entirely inside one file.
Every estimator here is a ratio of row sums, V = sum_i a_i / sum_i b_i:

- IPS: a = w r, b = 1;   SNIPS: a = w r, b = w;
- DM: a = qbar, b = 1;   DR: a = qbar + w (r - q), b = 1.

Its interval is the cluster-robust one of `bandit.ope.estimators` on the linearised terms
(a_i - V b_i) n / sum b. With A_g, B_g an event's sums of a and b, the events' centred sums
are S_g = (n / sum b)(A_g - V B_g), so sum_g S_g^2 needs only sum A_g^2, sum A_g B_g and
sum B_g^2: each partition returns those, n, the event count and sum m_g, sum m_g^2 with m_g
an event's mean weight (for the ESS, in slates as on one machine), and adding partitions is
adding numbers. IPS and SNIPS are therefore the single-process
numbers up to float rounding.

DM and DR need a reward model. Here it is cross-fitted inside each partition (K folds of that
partition's events), so no row's prediction saw its own reward, as in the single-process
path; but each partition's model is fit on that partition only, so DM/DR differ from the
single-process numbers by the difference of the reward models (DR stays unbiased when the
propensities are right). Policy-config targets replay a VW policy through the log in time
order and cannot be split; use them without --dask.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandit.ope.estimators import NEEDS_REWARD_MODEL, Estimate, normal_quantile
from bandit.ope.log_format import (
    LogFormatError,
    LogPaths,
    ReplayLog,
    build_log,
    check_distribution,
    load_log,
    read_table,
)
from bandit.ope.replay import ReplayReport, replay_arrays
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.targets import (
    TARGET_COLUMNS,
    TargetDistribution,
    TargetError,
    from_support,
    logged_target,
    uniform_target,
)

SIBLING_SUFFIXES = (".candidates", ".items", ".target")
STEM = "{stem}"


def partition_files(pattern: str) -> list[Path]:
    """The rounds files a pattern names (a glob, `**` allowed, or a directory), sorted."""
    path = Path(pattern)
    if path.is_dir():
        pattern = str(path / "**" / "*.parquet")
    found = sorted(
        Path(p)
        for p in glob.glob(pattern, recursive=True)
        if Path(p).is_file() and Path(p).with_suffix("").suffix not in SIBLING_SUFFIXES
    )
    if not found:
        raise LogFormatError(f"log: no rounds file matches {pattern!r}")
    return found


def load_partitioned(files: list[Path]) -> ReplayLog:
    """The partitions as one log, in file order (the single-process path)."""
    if len(files) == 1:
        return load_log(files[0])
    tables: dict[str, list[pa.Table]] = {"rounds": [], "candidates": [], "items": []}
    for file in files:
        paths = LogPaths.for_file(file)
        tables["rounds"].append(read_table(paths.rounds, f"log {file.name}"))
        for kind in ("candidates", "items"):
            sibling = getattr(paths, kind)
            if sibling.exists():
                dictionary = ("action",) if kind == "candidates" else ()
                tables[kind].append(read_table(sibling, f"{kind} {sibling.name}", dictionary))
    if tables["candidates"] and len(tables["candidates"]) != len(files):
        raise LogFormatError("candidates: some partitions have a candidates table, others not")
    return build_log(
        _concat(tables["rounds"]),
        _concat(tables["candidates"]) if tables["candidates"] else None,
        _concat(tables["items"]) if tables["items"] else None,
    )


def _concat(tables: list[pa.Table]) -> pa.Table:
    # Partitions may differ in context columns (absent ones become null) and in dictionary
    # encoding; "permissive" unifies both.
    plain = [t.cast(_decoded(t.schema)) for t in tables]
    return pa.concat_tables(plain, promote_options="permissive")


def _decoded(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
    )


def target_for(
    log: ReplayLog, spec: str, files: list[Path], filter_to_log: bool = False
) -> TargetDistribution:
    """`uniform`, `logged`, or a distribution file for the log made of `files`.

    `{stem}` in the file's path stands for each partition's file stem (one target file per
    partition); a single target file is filtered to the log's events when `filter_to_log`.
    """
    if spec == "uniform":
        return uniform_target(log)
    if spec == "logged":
        return logged_target(log)
    if Path(spec).suffix in (".toml", ".json"):
        raise TargetError(
            f"target {Path(spec).name}: a policy-config target replays the log in time order "
            "and cannot be split into partitions; run it without --dask"
        )
    paths = [Path(spec.replace(STEM, f.with_suffix("").name)) for f in files]
    if STEM not in spec:
        paths = paths[:1]
    table = _concat([read_table(p, "target", dictionary=("action",)) for p in dict.fromkeys(paths)])
    missing = [c for c in TARGET_COLUMNS if c not in table.column_names]
    if missing:
        raise LogFormatError(f"target: missing column(s) {', '.join(missing)}")
    if STEM not in spec and filter_to_log:
        table = table.filter(pc.is_in(table.column("event_id"), value_set=log.event_ids))
    support, vocabulary = log.rows_for(table, "target", allow_new_actions=True)
    check_distribution(support, log.rows, "target", "probability")
    return from_support(Path(spec).name, log, support, len(vocabulary))


@dataclass(frozen=True)
class RatioSums:
    """The sums one estimator needs from a partition (see the module docstring)."""

    rows: float = 0.0
    events: float = 0.0
    a: float = 0.0
    b: float = 0.0
    aa: float = 0.0  # sum over events of A_g^2
    ab: float = 0.0
    bb: float = 0.0
    w: float = 0.0  # sum over events of m_g, the event's mean weight
    ww: float = 0.0  # sum over events of m_g^2

    def __add__(self, other: RatioSums) -> RatioSums:
        return RatioSums(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, event: np.ndarray, w: np.ndarray) -> RatioSums:
        """The sums of per-row terms a, b clustered by event code."""
        a_g = np.bincount(event, weights=a)
        b_g = np.bincount(event, weights=b)
        counts = np.bincount(event)
        present = counts > 0
        m_g = np.bincount(event, weights=w)[present] / counts[present]
        return cls(
            rows=float(a.size),
            events=float(np.count_nonzero(present)),
            a=float(a_g.sum()),
            b=float(b_g.sum()),
            aa=float(a_g @ a_g),
            ab=float(a_g @ b_g),
            bb=float(b_g @ b_g),
            w=float(m_g.sum()),
            ww=float(m_g @ m_g),
        )

    def estimate(self, name: str, level: float, ess_is_events: bool = False) -> Estimate:
        """The estimate with its cluster-robust interval, as the single-process estimator;
        its ESS in slates (the event count itself when `ess_is_events`, as for DM)."""
        n = int(self.rows)
        kish = 0.0 if self.ww == 0 else self.w * self.w / self.ww
        ess = self.events if ess_is_events else kish
        if self.b == 0.0:
            nan = float("nan")
            return Estimate(name, nan, nan, nan, 0.0, n)
        value = self.a / self.b
        scale = self.rows / self.b
        squares = max(self.aa - 2 * value * self.ab + value * value * self.bb, 0.0)
        correction = self.events / max(self.events - 1, 1)
        se = math.sqrt(correction * scale * scale * squares) / self.rows
        z = normal_quantile(0.5 + level / 2)
        return Estimate(name, value, value - z * se, value + z * se, ess, n)


def partition_sums(
    file: Path,
    target: str,
    estimators: tuple[str, ...],
    settings: RewardModelSettings,
) -> dict[str, RatioSums]:
    """Each estimator's sums over one partition (runs on a Dask worker)."""
    log = load_log(file)
    distribution = target_for(log, target, [file], filter_to_log=True)
    arrays = replay_arrays(
        log, distribution, any(n in NEEDS_REWARD_MODEL for n in estimators), settings
    )
    w = arrays.weight
    r = arrays.reward
    ones = np.ones_like(r)
    sums = {}
    for name in estimators:
        if name == "ips":
            sums[name] = RatioSums.of(w * r, ones, log.event, w)
        elif name == "snips":
            sums[name] = RatioSums.of(w * r, w, log.event, w)
        elif name == "dm":
            assert arrays.q_target is not None
            sums[name] = RatioSums.of(arrays.q_target, ones, log.event, w)
        elif name == "dr":
            assert arrays.q_target is not None and arrays.q_logged is not None
            terms = arrays.q_target + w * (r - arrays.q_logged)
            sums[name] = RatioSums.of(terms, ones, log.event, w)
        else:
            raise ValueError(f"estimators: {name!r} has no partitioned form")
    return sums


def combine(parts: list[dict[str, RatioSums]], target: str, level: float) -> ReplayReport:
    """The whole log's report from its partitions' sums."""
    names = list(parts[0])
    totals = {name: sum((p[name] for p in parts), RatioSums()) for name in names}
    estimates = {
        name: totals[name].estimate(name, level, ess_is_events=name == "dm") for name in names
    }
    return ReplayReport(int(totals[names[0]].rows), target, estimates)


def target_name(spec: str) -> str:
    """The name a report gives the target (as the single-process path names it)."""
    return spec if spec in ("uniform", "logged") else Path(spec).name


def count_rows(files: list[Path]) -> int:
    """Rows of the partitions, from Parquet metadata where possible (no data read)."""
    total = 0
    for file in files:
        if file.suffix == ".parquet":
            total += pq.ParquetFile(file).metadata.num_rows
        else:
            total += read_table(file, f"log {file.name}").num_rows
    return total
