"""`hitl simulate`: the whole loop against a simulated world, with baselines and plots."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click


@click.command("simulate")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Scenario TOML (world, policy, curators, noise); the built-in defaults without it.",
)
@click.option("--rounds", type=click.IntRange(10, 1_000_000), default=2000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--database-url",
    default=None,
    help="A PostgreSQL server to run on (a scratch database per run, dropped afterwards); "
    "SQLite files in a temporary folder without it.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Runs at once, each in its own process (default: the number of CPUs); the report "
    "is the same for any number.",
)
def simulate_command(
    config_path: Path | None,
    rounds: int,
    seed: int,
    out: Path,
    database_url: str | None,
    jobs: int | None,
) -> None:
    """Drive the real loop with simulated customers and curators; write report.json and PNGs."""
    from tqdm import tqdm

    from sim.plots import MAIN_RUNS
    from sim.report import simulate
    from sim.scenario import Scenario, ScenarioError, load_scenario

    try:
        scenario = load_scenario(config_path) if config_path else Scenario()
    except ScenarioError as error:
        raise click.ClickException(f"invalid scenario: {error}") from error
    bars: list[tqdm] = []

    def progress(name: str, total: int) -> Callable[[int], None]:
        for bar in bars:
            bar.close()
        bars[:] = [tqdm(total=total, desc=name, unit="decision", file=sys.stderr, leave=False)]
        return lambda _step: bars[0].update()

    jobs = jobs or os.cpu_count() or 1
    timing: dict[str, float] = {}
    report = simulate(
        scenario, rounds, seed, out, database_url, progress if jobs == 1 else None, jobs, timing
    )
    for bar in bars:
        bar.close()
    for name in MAIN_RUNS:
        run = report["runs"][name]
        click.echo(
            f"{name:15s} reward/decision {run['reward_per_decision']:.3f}  "
            f"regret {run['cumulative_regret']:9.1f}  automation {run['automation_rate']:.2f}  "
            f"curator min/1000 {run['curator_minutes_per_1000']:7.1f}"
        )
    click.echo(f"report: {out / 'report.json'}  plots: {', '.join(report['plots'])}")
    click.echo(
        f"{int(timing['decisions'])} decisions in {timing['seconds']:.1f} s: "
        f"{timing['decisions_per_s']:.1f} decisions/s ({jobs} process{'es' if jobs > 1 else ''})"
    )
