"""The simulation report's PNG plots (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no screen on servers or in CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

MAIN_RUNS = ("policy", "uniform_random", "greedy", "never_review", "always_review")


def write_plots(report: dict[str, Any], out: Path) -> list[Path]:
    """Draw every plot of the report into `out`; returns the files written."""
    runs = report["runs"]
    drawn = [
        _lines(
            runs,
            "cumulative_regret",
            "Cumulative regret against the oracle",
            "expected items kept, oracle minus achieved",
            out / "regret.png",
        ),
        _lines(
            runs,
            "reward_per_1000",
            "Reward per 1,000 decisions",
            "expected items kept per 1,000 decisions",
            out / "reward_per_1000.png",
        ),
        _lines(
            runs,
            "automation_rate",
            "Automation rate (the bootstrapping curve)",
            "share of decisions sent out with no review",
            out / "automation_rate.png",
        ),
        _minutes(runs, out / "curator_minutes.png"),
        _noise(report["noise"], out / "curator_noise.png"),
    ]
    return drawn


def _lines(runs: dict[str, Any], key: str, title: str, ylabel: str, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4))
    for name in MAIN_RUNS:
        series = runs[name]["series"]
        axes.plot(series["decision_end"], series[key], marker="o", markersize=3, label=name)
    axes.set(title=title, xlabel="decisions", ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


def _minutes(runs: dict[str, Any], path: Path) -> Path:
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    names = list(MAIN_RUNS)
    left.bar(names, [runs[n]["curator_minutes_per_1000"] for n in names], color="tab:orange")
    left.set(title="Curator minutes per 1,000 decisions", ylabel="minutes")
    right.bar(names, [runs[n]["reward_per_decision"] for n in names], color="tab:blue")
    right.set(title="Reward per decision", ylabel="expected items kept")
    for axes in (left, right):
        axes.tick_params(axis="x", labelrotation=35, labelsize=8)
    return _save(figure, path)


def _noise(noise: list[dict[str, Any]], path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    accuracies = [row["accuracy"] for row in noise]
    axes.plot(
        accuracies,
        [row["reward_per_decision"] for row in noise],
        marker="o",
        label="reward per decision",
    )
    axes.set(
        title="Effect of curator noise",
        xlabel="curator accuracy",
        ylabel="expected items kept per decision",
    )
    twin = axes.twinx()
    twin.plot(
        accuracies,
        [row["cumulative_regret"] for row in noise],
        marker="s",
        color="tab:red",
        label="cumulative regret",
    )
    twin.set_ylabel("cumulative regret", color="tab:red")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def subplots(rows: int, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    """A figure with `rows` stacked axes (for plots drawn outside this module)."""
    figure, axes = plt.subplots(rows, 1, figsize=figsize)
    return figure, axes


def save_figure(figure: Figure, path: Path) -> Path:
    """Write and close a figure."""
    return _save(figure, path)
