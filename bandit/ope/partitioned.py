"""Replay over a partitioned log: per-partition sums that add up to the whole log's report.

A partitioned log is a set of rounds files (one per day from `hitl export --partitioned`), each
with its optional `.candidates` / `.items` siblings, and every event entirely inside one file.
Every estimator but `pi` is a ratio of row sums, V = sum_i a_i / sum_i b_i, whose per-event
parts need only the event's own rows (`bandit.ope.replay.estimator_terms` gives a and b, the
same code as on one machine): b = 1 for ips, dm, dr and the slate estimators (sips, rips,
cascade-dr, switch-dr, iips, whose prefix and slate weights are products over the event's own
positions), and (a, b) = (w r, w) for SNIPS.

Its normal interval is the cluster-robust one on the linearised terms (a_i - V b_i) n / sum b.
With A_g, B_g an event's sums of a and b, the events' centred sums are
S_g = (n / sum b)(A_g - V B_g), so sum_g S_g^2 needs only sum A_g^2, sum A_g B_g and
sum B_g^2: each partition returns those, n, the event count and sum m_g, sum m_g^2 with m_g
an event's mean weight (for the ESS, in slates as on one machine), and adding partitions is
adding numbers. Where the ESS is below `BOOTSTRAP_ESS` the interval is the bootstrap over
events, which needs each event's (A_g, B_g, rows): those stay with the partition's result
(on its worker) until `combine` asks for them, in partition order, so the resampling is the
single-process one. The report (estimand, slate length, headline, warnings, mean-weight check,
split by reward source) is built by the functions `evaluate` uses.

DM, DR, cascade-DR and SWITCH-DR need a reward model. Here it is cross-fitted inside each
partition (K folds of that partition's events), so no row's prediction saw its own reward, as
in the single-process path; but each partition's model is fit on that partition only, so they
differ from the single-process numbers by the difference of the reward models (DR stays
unbiased when the propensities are right). Policy-config targets replay a VW policy through
the log in time order and cannot be split; use them without --dask.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandit.ope.diagnostics import mean_weight_of_sums
from bandit.ope.estimators import Estimate, normal_quantile
from bandit.ope.intervals import BOOTSTRAP_ESS, IntervalSettings, event_sums, in_reward_range
from bandit.ope.log_format import (
    LogFormatError,
    LogPaths,
    ReplayLog,
    build_log,
    check_distribution,
    load_log,
    read_table,
)
from bandit.ope.replay import (
    ReplayOptions,
    ReplayReport,
    defaults_for,
    estimand_of,
    estimator_terms,
    events_estimate,
    headline_of,
    parse_estimators,
    report_warnings,
    slate_length,
)
from bandit.ope.reward_choice import choose_reward
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
# Every estimator whose per-event terms need only the event's own rows (`pi` needs a declared
# logging policy; run it without --dask).
PARTITIONED_ESTIMATORS = (
    "ips",
    "snips",
    "dm",
    "dr",
    "sips",
    "rips",
    "cascade-dr",
    "switch-dr",
    "iips",
)
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

    @property
    def ess(self) -> float:
        """Kish's ESS over the events' mean weights, in slates."""
        return 0.0 if self.ww == 0 else self.w * self.w / self.ww

    def estimate(self, name: str, intervals: IntervalSettings) -> Estimate:
        """The estimate with its cluster-robust normal interval, as the single-process path
        gives it where the ESS is at least `BOOTSTRAP_ESS`."""
        n = int(self.rows)
        if self.b == 0.0:
            nan = float("nan")
            return Estimate(name, nan, nan, nan, 0.0, n)
        value = self.a / self.b
        scale = self.rows / self.b
        squares = max(self.aa - 2 * value * self.ab + value * value * self.bb, 0.0)
        correction = self.events / max(self.events - 1, 1)
        se = math.sqrt(correction * scale * scale * squares) / self.rows
        z = normal_quantile(0.5 + intervals.level / 2)
        return in_reward_range(
            Estimate(name, value, value - z * se, value + z * se, self.ess, n), intervals
        )


@dataclass(frozen=True)
class EventSums:
    """One estimator's per-event sums of a and b (None: b = 1) and row counts, in the
    partition's event order: what the bootstrap resamples."""

    a: np.ndarray
    b: np.ndarray | None
    counts: np.ndarray


@dataclass(frozen=True)
class PartitionSums:
    """Everything a report needs from one partition; `events` stays on the worker until the
    bootstrap asks for it (`summary()` drops it)."""

    sums: dict[str, RatioSums]
    events: dict[str, EventSums]
    slate_length: int
    reward_low: float
    reward_high: float
    weights: tuple[float, float, float]  # events, sum and sum of squares of slate weights W_g
    sources: dict[str, dict[str, tuple[float, int]]]  # estimator -> source -> (sum a, rows)
    modelled: bool  # the target has a full distribution (DM, DR, cascade-dr)
    marginals: bool  # the log and the target have marginal probabilities (iips)

    def summary(self) -> PartitionSums:
        """The partition without its per-event arrays (what the client gathers first)."""
        return replace(self, events={})


def _auto_names(modelled: bool, marginals: bool) -> tuple[str, ...]:
    """Every estimator `--estimators auto` could pick on some log, given the target."""
    names = ["ips", "snips", "sips", "rips"]
    if modelled:
        names += ["dm", "dr", "cascade-dr"]
    if marginals:
        names.append("iips")
    return tuple(names)


def partition_sums(
    file: Path,
    target: str,
    estimators: tuple[str, ...] | None,
    settings: RewardModelSettings,
    options: ReplayOptions | None = None,
    reward: str = "customer",
    blend_weight: float = 0.5,
) -> PartitionSums:
    """Each estimator's sums over one partition (runs on a Dask worker); `estimators` None
    computes every one the log's defaults could name."""
    options = options or ReplayOptions()
    log = choose_reward(load_log(file), reward, blend_weight)
    distribution = target_for(log, target, [file], filter_to_log=True)
    modelled = distribution.support is not None
    marginals = log.marginal_propensity is not None and distribution.marginal is not None
    names = estimators or _auto_names(modelled, marginals)
    unsplittable = [n for n in names if n not in PARTITIONED_ESTIMATORS]
    if unsplittable:
        raise ValueError(f"estimators: {', '.join(unsplittable)} has no partitioned form")
    computed = estimator_terms(log, distribution, names, settings, options)
    sums, events, sources = {}, {}, {}
    for name, terms in computed.terms.items():
        ones = np.ones_like(terms.a)
        b = ones if terms.b is None else terms.b
        w = ones if terms.ess_weight is None else terms.ess_weight
        sums[name] = RatioSums.of(terms.a, b, log.event, w)
        a_g, counts = event_sums(terms.a, log.event)
        b_g = None if terms.b is None else event_sums(terms.b, log.event)[0]
        events[name] = EventSums(a_g, b_g, counts)
        if log.reward_source is not None:
            sources[name] = {
                str(source): (
                    float(terms.a[log.reward_source == source].sum()),
                    int(np.count_nonzero(log.reward_source == source)),
                )
                for source in {str(s) for s in log.reward_source}
            }
    slate_weight = event_sums(computed.weights.slate, log.event)
    per_event = slate_weight[0] / slate_weight[1]
    return PartitionSums(
        sums,
        events,
        slate_length(log),
        float(log.reward.min()),
        float(log.reward.max()),
        (float(per_event.size), float(per_event.sum()), float(per_event @ per_event)),
        sources,
        modelled,
        marginals,
    )


def combine(
    parts: list[PartitionSums],
    target: str,
    options: ReplayOptions | None = None,
    estimators: tuple[str, ...] | None = None,
    fetch: Callable[[tuple[str, ...]], list[dict[str, EventSums]]] | None = None,
) -> ReplayReport:
    """The whole log's report from its partitions' sums, as `evaluate` gives it on the
    concatenated log; `fetch(names)` returns every partition's per-event sums of those
    estimators (in partition order) when the bootstrap needs them (default: `parts`' own)."""
    options = options or ReplayOptions()
    length = max(p.slate_length for p in parts)
    names = estimators or defaults_for(
        length, all(p.modelled for p in parts), all(p.marginals for p in parts)
    )
    parse_estimators(",".join(names), None, options.estimand, one_position=length == 1)
    totals = {name: sum((p.sums[name] for p in parts), RatioSums()) for name in names}
    intervals = IntervalSettings(
        level=options.level,
        reward_low=min(p.reward_low for p in parts),
        reward_high=max(p.reward_high for p in parts),
        seed=options.seed,
    )
    resampled = tuple(n for n in names if totals[n].ess < BOOTSTRAP_ESS and totals[n].events >= 2)
    estimates = {name: totals[name].estimate(name, intervals) for name in names}
    if resampled:
        per_part = fetch(resampled) if fetch is not None else [p.events for p in parts]
        for name in resampled:
            mine = [events[name] for events in per_part]
            a = np.concatenate([e.a for e in mine])
            counts = np.concatenate([e.counts for e in mine])
            b = (
                None
                if mine[0].b is None
                else np.concatenate([e.b for e in mine if e.b is not None])
            )
            estimates[name] = events_estimate(name, a, b, counts, totals[name].ess, intervals)
    headline = headline_of(names, options.estimand, length)
    events, total, squares = (sum(p.weights[i] for p in parts) for i in range(3))
    checks = {"mean_weight": mean_weight_of_sums(events, total, squares)}
    return ReplayReport(
        int(totals[names[0]].rows),
        target,
        estimates,
        estimand_of(options, length),
        headline,
        length,
        report_warnings(estimates, checks["mean_weight"]),
        checks,
        _per_source(parts, headline, totals[headline]),
    )


def _per_source(
    parts: list[PartitionSums], headline: str, total: RatioSums
) -> dict[str, dict[str, float]]:
    """The headline value split by reward source, as `bandit.ope.reward_choice.per_source`."""
    if not all(headline in p.sources for p in parts) or total.b == 0.0:
        return {}
    out: dict[str, dict[str, float]] = {}
    for source in sorted({s for p in parts for s in p.sources[headline]}):
        pairs = [p.sources[headline].get(source, (0.0, 0)) for p in parts]
        out[source] = {
            "contribution": sum(a for a, _ in pairs) / total.b,
            "rows": sum(rows for _, rows in pairs),
        }
    return out


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
