"""`hitl simulate`: the whole loop against a simulated world, with baselines and plots."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
@click.option(
    "--seeds",
    help="A seed sweep, e.g. 1,2,3 or 1-20: one whole simulation per seed in OUT/seed-N/, "
    "summarised in OUT/sweep.json.",
)
@click.option(
    "--dask",
    "dask_spec",
    metavar="ADDRESS|local[:N]",
    help="With --seeds: run the seeds on a Dask cluster (an address, or N local processes).",
)
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
    seeds: str | None,
    dask_spec: str | None,
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
    if dask_spec is not None and seeds is None:
        raise click.UsageError("--dask runs a seed sweep: give --seeds too")
    if seeds is not None:
        _sweep(scenario, rounds, parse_seeds(seeds), out, database_url, dask_spec)
        return
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


def parse_seeds(text: str) -> list[int]:
    """`1,2,5` or `1-20` (or both, comma-separated) as a sorted list of distinct seeds."""
    seeds: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise click.UsageError(
                f"--seeds: {part!r} is not a seed or a range like 1-20"
            ) from None
        if last < first or last - first >= 1000:
            raise click.UsageError(f"--seeds: {part!r}: a range goes up, at most 1000 seeds")
        seeds.update(range(first, last + 1))
    if not seeds:
        raise click.UsageError("--seeds: no seed given")
    return sorted(seeds)


def _sweep(
    scenario: Any,
    rounds: int,
    seeds: list[int],
    out: Path,
    database_url: str | None,
    dask_spec: str | None,
) -> None:
    """Every seed's simulation, locally one after another or on a Dask cluster."""
    from curation_app import dask_jobs

    if dask_spec is None:
        results = [
            dask_jobs.simulate_seed(scenario, rounds, s, out / f"seed-{s}", database_url)
            for s in seeds
        ]
    else:
        try:
            dask_jobs.local_workers(dask_spec)
        except dask_jobs.DaskSpecError as error:
            raise click.UsageError(str(error)) from error
        with dask_jobs.dask_client(dask_spec) as client:
            results = dask_jobs.simulate_seeds(client, scenario, rounds, seeds, out, database_url)
    summary = dask_jobs.sweep_summary(results)
    out.mkdir(parents=True, exist_ok=True)
    document = {"rounds": rounds, "seeds": seeds, "summary": summary, "per_seed": results}
    (out / "sweep.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    for name, measures in summary.items():
        click.echo(
            f"{name:15s} reward/decision {measures['reward_per_decision']['mean']:.3f} "
            f"± {measures['reward_per_decision']['sd']:.3f}  automation "
            f"{measures['automation_rate']['mean']:.2f} ± {measures['automation_rate']['sd']:.2f}"
            f"  ({len(seeds)} seeds)"
        )
    click.echo(f"sweep: {out / 'sweep.json'}")
