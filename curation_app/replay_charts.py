"""The replay diagnostics as one PNG: weights, values per position and segment, calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def diagnostics_figure(document: dict[str, Any], title: str) -> Figure:
    """Four panels drawn from `bandit.ope.diagnostics`' numbers."""
    figure = Figure(figsize=(11, 8), layout="constrained")
    figure.suptitle(title)
    weights, positions, segments, calibration = figure.subplots(2, 2).ravel()
    histogram = document["weight_histogram"]
    edges = histogram["edges"]
    weights.stairs(histogram["counts"], edges, fill=True)
    weights.set_xscale("log")
    check = document["mean_weight"]
    weights.set_title(
        f"slate weights (mean {check['mean']:.3f} +- {check['standard_error']:.3f}, "
        f"{histogram['zeros']} zero)"
    )
    weights.set_xlabel("weight per event")
    weights.set_ylabel("events")
    rows = document["per_position"]
    positions.bar([r["group"] for r in rows], [r["value"] for r in rows])
    positions.set_title("cascade IPS value per position")
    positions.set_xlabel("position")
    segment = document.get("per_segment")
    if segment:
        values = segment["values"]
        segments.barh([v["group"] for v in values], [v["value"] for v in values])
        segments.set_title(f"cascade IPS value per {segment['column']}")
    else:
        segments.set_axis_off()
        segments.text(0.5, 0.5, "no segment column (--segment)", ha="center")
    points = document.get("calibration")
    if points:
        predicted = [p["predicted"] for p in points]
        calibration.plot(predicted, [p["observed"] for p in points], "o-", label="observed")
        calibration.plot(predicted, predicted, "--", color="grey", label="perfect")
        calibration.set_title("reward model calibration (out of fold)")
        calibration.set_xlabel("predicted reward")
        calibration.set_ylabel("observed mean reward")
        calibration.legend()
    else:
        calibration.set_axis_off()
        calibration.text(0.5, 0.5, "no reward model (no dm/dr estimator)", ha="center")
    return figure


def write_diagnostics_png(document: dict[str, Any], title: str, path: Path) -> None:
    """Draw the diagnostics and save them as PNG."""
    diagnostics_figure(document, title).savefig(path, format="png", dpi=90)
