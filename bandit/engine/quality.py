"""Curator quality statistics: agreement on double-reviewed tasks, per-curator rates, drift.

Pure functions over plain records (numpy only), so the console and notebooks compute the
same numbers. Verdicts are per slate position: "kept", "removed" or "swapped".

Drift is measured inside shifts: a curator's tasks, in the order they were submitted, start
a new shift wherever `SHIFT_GAP` (2 hours) or more passed without a submit. The first third of
every shift is pooled and compared with the pooled last third of every shift; a shift of fewer
than `MIN_SHIFT_TASKS` tasks has no distinct first and last third and is left out of drift
(its tasks still count in every other rate).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from bandit.engine.vocabulary import CuratorVerdict

VERDICT_LABELS = tuple(CuratorVerdict)
NAN = float("nan")
# No submit for this long ends a curator's shift: longer than a meal break, shorter than the
# night between two working days.
SHIFT_GAP = timedelta(hours=2)
# A shift needs this many tasks to have a first and a last third that are not the same task.
MIN_SHIFT_TASKS = 3


def cohens_kappa(
    first: Sequence[str], second: Sequence[str], labels: Sequence[str] = VERDICT_LABELS
) -> float:
    """Cohen's kappa between two raters' labels of the same items.

    kappa = (p_o - p_e) / (1 - p_e), where p_o is the observed share of agreement and
    p_e = sum_k p1(k) p2(k) the agreement expected by chance from each rater's own label
    frequencies (Cohen 1960, "A coefficient of agreement for nominal scales").
    NaN when there is nothing to compare or chance agreement is already certain (p_e = 1).
    """
    if len(first) != len(second):
        raise ValueError("first and second must rate the same items (equal lengths)")
    unknown = (set(first) | set(second)) - set(labels)
    if unknown:
        raise ValueError(f"labels not in {list(labels)}: {sorted(unknown)}")
    if not first:
        return NAN
    table = confusion_table(first, second, labels)
    total = table.sum()
    observed = np.trace(table) / total
    chance = float(table.sum(axis=1) @ table.sum(axis=0)) / total**2
    if math.isclose(chance, 1.0):
        return NAN
    return float((observed - chance) / (1.0 - chance))


def confusion_table(
    first: Sequence[str], second: Sequence[str], labels: Sequence[str] = VERDICT_LABELS
) -> np.ndarray:
    """Counts of (first label, second label), rows for the first rater."""
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)), dtype=float)
    for a, b in zip(first, second, strict=True):
        table[index[a], index[b]] += 1
    return table


@dataclass(frozen=True)
class ReviewRecord:
    """One finished review task: who, when, how long, and the verdict per position."""

    task_id: int
    decision_id: int
    review_round: int
    curator: str
    completed_at: datetime
    seconds: float
    verdicts: dict[int, str]
    # Verify-after reviews only: True when the curator overturned the delivered slate.
    overturned: bool | None = None


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of two curators over the decisions both of them reviewed."""

    curators: tuple[str, str]
    tasks: int
    positions: int
    observed: float
    kappa: float


@dataclass(frozen=True)
class CuratorStats:
    """One curator's rates, speed, and drift from the first to the last third of their shifts.

    The `*_first_third` and `*_last_third` fields pool those thirds over the
    `shifts_compared` shifts of at least `MIN_SHIFT_TASKS` tasks, out of `shifts` in all.
    """

    curator: str
    tasks: int
    positions: int
    acceptance_rate: float
    swap_rate: float
    removal_rate: float
    override_rate: float
    median_seconds: float
    shifts: int
    shifts_compared: int
    acceptance_first_third: float
    acceptance_last_third: float
    seconds_first_third: float
    seconds_last_third: float
    agreement_first_third: float
    agreement_last_third: float


def double_reviewed_pairs(records: Sequence[ReviewRecord]) -> list[tuple[ReviewRecord, ...]]:
    """(first review, second review) of each decision reviewed in both rounds."""
    by_decision: dict[int, dict[int, ReviewRecord]] = defaultdict(dict)
    for record in records:
        by_decision[record.decision_id][record.review_round] = record
    return [
        (rounds[1], rounds[2])
        for _, rounds in sorted(by_decision.items())
        if 1 in rounds and 2 in rounds
    ]


def _aligned(pairs: Sequence[tuple[ReviewRecord, ...]]) -> tuple[list[str], list[str]]:
    first: list[str] = []
    second: list[str] = []
    for one, two in pairs:
        for position in sorted(set(one.verdicts) & set(two.verdicts)):
            first.append(one.verdicts[position])
            second.append(two.verdicts[position])
    return first, second


def agreement(pairs: Sequence[tuple[ReviewRecord, ...]]) -> tuple[int, float, float]:
    """(positions compared, observed agreement share, Cohen's kappa) over the pairs."""
    first, second = _aligned(pairs)
    if not first:
        return 0, NAN, NAN
    observed = float(np.mean([a == b for a, b in zip(first, second, strict=True)]))
    return len(first), observed, cohens_kappa(first, second)


def agreement_by_pair(records: Sequence[ReviewRecord]) -> list[PairAgreement]:
    """Agreement per unordered pair of curators, most compared pairs first."""
    grouped: dict[tuple[str, str], list[tuple[ReviewRecord, ...]]] = defaultdict(list)
    for one, two in double_reviewed_pairs(records):
        a, b = sorted((one.curator, two.curator))
        grouped[(a, b)].append((one, two))
    result = []
    for curators, pairs in grouped.items():
        positions, observed, kappa = agreement(pairs)
        result.append(PairAgreement(curators, len(pairs), positions, observed, kappa))
    return sorted(result, key=lambda p: (-p.positions, p.curators))


def _share(verdicts: Sequence[str], label: str) -> float:
    return float(np.mean([v == label for v in verdicts])) if verdicts else NAN


def split_shifts(
    own: Sequence[ReviewRecord], gap: timedelta = SHIFT_GAP
) -> list[list[ReviewRecord]]:
    """One curator's tasks, in submit order, cut into shifts wherever `gap` or more passes."""
    shifts: list[list[ReviewRecord]] = []
    for record in own:
        if not shifts or record.completed_at - shifts[-1][-1].completed_at >= gap:
            shifts.append([])
        shifts[-1].append(record)
    return shifts


def _shift_thirds(
    shifts: Sequence[Sequence[ReviewRecord]],
) -> tuple[list[ReviewRecord], list[ReviewRecord]]:
    # Pooled over shifts, so a long shift weighs more than a short one, as its tasks do.
    first: list[ReviewRecord] = []
    last: list[ReviewRecord] = []
    for shift in shifts:
        if len(shift) < MIN_SHIFT_TASKS:
            continue
        chunks = np.array_split(np.arange(len(shift)), 3)
        first.extend(shift[i] for i in chunks[0])
        last.extend(shift[i] for i in chunks[-1])
    return first, last


def _acceptance(records: Sequence[ReviewRecord]) -> float:
    return _share([v for r in records for v in r.verdicts.values()], CuratorVerdict.KEPT)


def _median_seconds(records: Sequence[ReviewRecord]) -> float:
    return float(np.median([r.seconds for r in records])) if records else NAN


def _agreement_share(records: Sequence[ReviewRecord], partner: dict[int, ReviewRecord]) -> float:
    # Only the double-reviewed tasks among `records` have a partner to agree with.
    matches = [
        record.verdicts[p] == partner[record.task_id].verdicts.get(p)
        for record in records
        if record.task_id in partner
        for p in record.verdicts
    ]
    return float(np.mean(matches)) if matches else NAN


def curator_stats(records: Sequence[ReviewRecord]) -> list[CuratorStats]:
    """Per curator: verdict rates, override rate, median seconds per task, and shift drift."""
    partner: dict[int, ReviewRecord] = {}
    for one, two in double_reviewed_pairs(records):
        partner[one.task_id], partner[two.task_id] = two, one
    by_curator: dict[str, list[ReviewRecord]] = defaultdict(list)
    for record in records:
        by_curator[record.curator].append(record)
    stats = []
    for curator, own in sorted(by_curator.items()):
        own.sort(key=lambda r: (r.completed_at, r.task_id))
        verdicts = [v for r in own for v in r.verdicts.values()]
        verified = [r.overturned for r in own if r.overturned is not None]
        shifts = split_shifts(own)
        first, last = _shift_thirds(shifts)
        stats.append(
            CuratorStats(
                curator=curator,
                tasks=len(own),
                positions=len(verdicts),
                acceptance_rate=_share(verdicts, CuratorVerdict.KEPT),
                swap_rate=_share(verdicts, CuratorVerdict.SWAPPED),
                removal_rate=_share(verdicts, CuratorVerdict.REMOVED),
                override_rate=float(np.mean(verified)) if verified else NAN,
                median_seconds=_median_seconds(own),
                shifts=len(shifts),
                shifts_compared=sum(len(shift) >= MIN_SHIFT_TASKS for shift in shifts),
                acceptance_first_third=_acceptance(first),
                acceptance_last_third=_acceptance(last),
                seconds_first_third=_median_seconds(first),
                seconds_last_third=_median_seconds(last),
                agreement_first_third=_agreement_share(first, partner),
                agreement_last_third=_agreement_share(last, partner),
            )
        )
    return stats
