"""Target policies to evaluate: `uniform`, `logged`, a distribution file, or a policy config.

A target is its distribution at every log row, held as (row, action, probability) triples, so
estimators only ever see arrays. Built-in targets choose among the candidates the logging
policy had at each position (the `.candidates` table); a file may name any action.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from bandit.ope.log_format import (
    KeyedRows,
    LogFormatError,
    ReplayLog,
    check_distribution,
    read_table,
)

TARGET_COLUMNS = ("event_id", "position", "action", "probability")
MARGINAL_PROBABILITY = "marginal_probability"
INCLUSION_PROBABILITY = "inclusion_probability"


class TargetError(ValueError):
    """A target cannot be built for this log."""


@dataclass(frozen=True)
class TargetDistribution:
    """The target's probability of each logged action, and its full support when known."""

    name: str
    logged_probability: np.ndarray  # pi(a_i | x_i) per log row
    support: KeyedRows | None  # every (row, action, probability) with mass, when known
    vocabulary_size: int
    # pi(the logged item at its position | context), whatever came before: for `iips`.
    marginal: np.ndarray | None = None
    # pi(the logged item anywhere in the target's slate | context): for `pi` on partial slates.
    inclusion: np.ndarray | None = None

    def require_support(self, why: str) -> KeyedRows:
        """The full support, or a TargetError saying why it is needed."""
        if self.support is None:
            raise TargetError(
                f"target {self.name!r}: {why} needs its whole distribution, which needs the "
                "log's candidates table (FILE.candidates.parquet or .csv)"
            )
        return self.support


def from_support(
    name: str, log: ReplayLog, support: KeyedRows, vocabulary: int
) -> TargetDistribution:
    """A target from its (row, action, probability) triples."""
    match = support.action == log.action[support.row]
    logged = np.bincount(support.row[match], weights=support.probability[match], minlength=log.rows)
    return TargetDistribution(name, logged, support, vocabulary)


def logged_target(log: ReplayLog) -> TargetDistribution:
    """The logging policy itself (its value is the logged mean reward, a sanity check)."""
    if log.candidates is None:
        target = TargetDistribution("logged", log.propensity.copy(), None, len(log.actions))
    else:
        target = from_support("logged", log, log.candidates, len(log.actions))
    return replace(target, marginal=log.marginal_propensity)


def uniform_target(log: ReplayLog) -> TargetDistribution:
    """Uniformly at random among the candidates available at each position."""
    if log.candidates is None:
        raise TargetError(
            "target 'uniform' chooses among each position's candidates: the log needs its "
            "candidates table (FILE.candidates.parquet or .csv)"
        )
    counts = np.bincount(log.candidates.row, minlength=log.rows)
    support = KeyedRows(log.candidates.row, log.candidates.action, 1.0 / counts[log.candidates.row])
    # A uniformly random slate puts every item of the event at every position with the same
    # chance: one over the most candidates any of its positions had (its first).
    per_event = np.zeros(int(log.event.max()) + 1)
    np.maximum.at(per_event, log.event, counts.astype(float))
    marginal = 1.0 / per_event[log.event]
    target = from_support("uniform", log, support, len(log.actions))
    length = np.bincount(log.event)[log.event]
    return replace(target, marginal=marginal, inclusion=length * marginal)


def file_target(log: ReplayLog, path: Path) -> TargetDistribution:
    """A target given as a file of (event_id, position, action, probability) rows."""
    table = read_table(path, "target", dictionary=("action",))
    try:
        return _target_from(log, table, path.name)
    except LogFormatError as error:
        raise LogFormatError(f"{path}: {error}") from error


def _target_from(log: ReplayLog, table: pa.Table, name: str) -> TargetDistribution:
    missing = [c for c in TARGET_COLUMNS if c not in table.column_names]
    if missing:
        raise LogFormatError(f"target: missing column(s) {', '.join(missing)}")
    support, vocabulary = log.rows_for(table, "target", allow_new_actions=True)
    check_distribution(support, log.rows, "target", "probability")
    target = from_support(name, log, support, len(vocabulary))
    names = table.column_names
    return replace(
        target,
        marginal=_logged_values(table, MARGINAL_PROBABILITY, support, log)
        if MARGINAL_PROBABILITY in names
        else None,
        inclusion=_logged_values(table, INCLUSION_PROBABILITY, support, log)
        if INCLUSION_PROBABILITY in names
        else None,
    )


def _logged_values(table: pa.Table, column: str, support: KeyedRows, log: ReplayLog) -> np.ndarray:
    """A per-(row, action) column of a target file, read at each log row's logged action."""
    values = table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
    match = support.action == log.action[support.row]
    return np.bincount(support.row[match], weights=values[match], minlength=log.rows)
