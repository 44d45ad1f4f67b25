"""Checks written with every replay: are the weights sane, where does the value come from, is
the reward model calibrated? Numbers only; curation_app draws them (PNG) and writes the JSON.

- Mean-weight check: under the logging policy the slate weight W has mean exactly 1 when the
  propensities are right and the target only picks items the logging policy could pick
  (E_mu[W] = sum_s mu(s) pi(s) / mu(s) = 1). A mean more than 3 standard errors from 1 means
  wrong propensities or a target outside the logging support.
- Weight histogram: counts of the weights in logarithmic bins.
- Values per position and per segment: the `rips` (cascade IPS) terms averaged by position and
  by a context column, so a surprising total can be traced.
- Calibration: the reward model's out-of-fold prediction for the logged item in ten bins
  against the observed mean reward (DM and DR lean on it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bandit.ope.slate import SlateArrays, SlateWeights

MEAN_WEIGHT_SIGMAS = 3.0
CALIBRATION_BINS = 10
MAX_SEGMENTS = 30


def mean_weight_check(weight_per_event: np.ndarray) -> dict[str, Any]:
    """Mean of the per-event weight, its standard error and whether it is consistent with 1."""
    mean = float(weight_per_event.mean())
    se = (
        float(weight_per_event.std(ddof=1) / np.sqrt(weight_per_event.size))
        if weight_per_event.size > 1
        else 0.0
    )
    return _mean_weight_verdict(mean, se)


def mean_weight_of_sums(events: float, total: float, squares: float) -> dict[str, Any]:
    """`mean_weight_check` from the event count and the sums of the weights and their squares
    (what the partitions of a log add up)."""
    mean = total / events
    variance = max(squares - events * mean * mean, 0.0) / (events - 1) if events > 1 else 0.0
    return _mean_weight_verdict(mean, float(np.sqrt(variance / events)) if events > 1 else 0.0)


def _mean_weight_verdict(mean: float, se: float) -> dict[str, Any]:
    ok = abs(mean - 1.0) <= MEAN_WEIGHT_SIGMAS * se + 1e-9 or abs(mean - 1.0) < 0.01
    return {"mean": mean, "standard_error": se, "consistent_with_1": bool(ok)}


def weight_histogram(weight: np.ndarray) -> dict[str, Any]:
    """Counts of weights in log-spaced bins from 1e-3 to the largest weight, plus exact zeros."""
    positive = weight[weight > 0]
    top = max(float(positive.max()) if positive.size else 1.0, 1.0)
    edges = np.geomspace(1e-3, top * 1.0001, 25)
    counts, _ = np.histogram(np.clip(positive, 1e-3, None), bins=edges)
    return {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "zeros": int(weight.size - positive.size),
        "max": float(weight.max()),
    }


def grouped_means(terms: np.ndarray, group: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
    """Mean of the terms per group code, with the row count."""
    sums = np.bincount(group, weights=terms, minlength=len(names))
    counts = np.bincount(group, minlength=len(names))
    return [
        {"group": names[g], "value": float(sums[g] / counts[g]), "rows": int(counts[g])}
        for g in range(len(names))
        if counts[g] > 0
    ]


def equal_count_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin of each value: `np.array_split` of the stable ascending order into `bins` parts.

    Without sorting all values (seconds on 10M rows): the values at the bins' first ranks come
    from one `np.partition`, and only rows tied with one of them need their exact rank, which
    the stable order gives by row index.
    """
    n = values.size
    sizes = np.full(bins, n // bins)
    sizes[: n % bins] += 1
    starts = np.cumsum(sizes)[:-1]  # rank of each later bin's first value
    edges = np.partition(values, starts)[starts] if starts.size else starts.astype(float)
    # Rows not tied with an edge lie strictly between edges: their bin is how many edges
    # are below them.
    out = np.searchsorted(edges, values, side="left")
    for edge in np.unique(edges):
        tied = np.flatnonzero(values == edge)
        rank = np.count_nonzero(values < edge) + np.arange(tied.size)
        out[tied] = np.searchsorted(starts, rank, side="right")
    return out


def calibration(predicted: np.ndarray, reward: np.ndarray) -> list[dict[str, float]]:
    """Predicted against observed mean reward in equal-count bins of the prediction."""
    bins = min(CALIBRATION_BINS, predicted.size)
    which = equal_count_bins(predicted, bins)
    counts = np.bincount(which, minlength=bins)
    predicted_sums = np.bincount(which, weights=predicted, minlength=bins)
    observed_sums = np.bincount(which, weights=reward, minlength=bins)
    return [
        {
            "predicted": float(predicted_sums[b] / counts[b]),
            "observed": float(observed_sums[b] / counts[b]),
            "rows": int(counts[b]),
        }
        for b in range(bins)
        if counts[b]
    ]


def diagnostics(
    arrays: SlateArrays,
    weights: SlateWeights,
    segment: tuple[str, np.ndarray, list[str]] | None = None,
) -> dict[str, Any]:
    """The diagnostics document; `segment` is (column name, code per row, names of codes)."""
    counts = np.bincount(arrays.event)
    present = counts > 0
    per_event = np.bincount(arrays.event, weights=weights.slate)[present] / counts[present]
    terms = weights.prefix * arrays.reward
    positions = int(arrays.position.max()) + 1
    document: dict[str, Any] = {
        "mean_weight": mean_weight_check(per_event),
        "weight_histogram": weight_histogram(per_event),
        "per_position": grouped_means(terms, arrays.position, [str(p) for p in range(positions)]),
    }
    if segment is not None and len(segment[2]) <= MAX_SEGMENTS:
        name, codes, names = segment
        document["per_segment"] = {"column": name, "values": grouped_means(terms, codes, names)}
    if arrays.q_logged is not None:
        document["calibration"] = calibration(arrays.q_logged, arrays.reward)
    return document
