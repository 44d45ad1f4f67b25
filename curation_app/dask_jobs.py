"""Replay, tuning and simulation sweeps on a Dask cluster (`--dask ADDRESS|local[:N]`).

- replay: one task per partition file returns its estimator sums (bandit.ope.partitioned); the
  client adds them up, and fetches per-event sums only where the bootstrap needs them. Workers
  read their own partitions, so no process holds the whole log.
- tune: one task per distinct exploration setting of the grid; each replays a VW policy over
  the whole log in time order (that replay is sequential), so each worker loads the log.
- simulate: one task per seed, each a complete `hitl simulate` run in its own folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster

from bandit.ope.partitioned import (
    EventSums,
    PartitionSums,
    combine,
    load_partitioned,
    partition_sums,
    target_name,
)
from bandit.ope.replay import ReplayOptions, ReplayReport
from bandit.ope.reward_model import RewardModelSettings
from bandit.ope.tuning import Grid, TunedPoint, exploration_key, tune

LOCAL = "local"
# A worker process imports numpy, pandas, pyarrow and VW: on a loaded machine that is slow.
WORKER_START_SECONDS = 300


class DaskSpecError(ValueError):
    """The --dask value is neither a scheduler address nor local[:N]."""


def local_workers(spec: str) -> int | None:
    """N of `local:N` (the machine's cores for `local`), None for a scheduler address."""
    if spec == LOCAL:
        return os.cpu_count() or 1
    if spec.startswith(LOCAL + ":"):
        count = spec.split(":", 1)[1]
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise DaskSpecError(f"--dask: {spec!r}: N in local:N must be 1 to 256")
        return int(count)
    if "://" not in spec and ":" not in spec:
        raise DaskSpecError(
            f"--dask: {spec!r} is not a scheduler address (tcp://HOST:PORT) or local[:N]"
        )
    return None


@contextmanager
def dask_client(spec: str) -> Iterator[Client]:
    """A client on the named scheduler, or on a local cluster of N single-threaded processes."""
    workers = local_workers(spec)
    if workers is None:
        with Client(spec, timeout="30s") as client:
            yield client
        return
    # One thread per worker process: numpy and VW release the GIL only in parts.
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # any free port (None means the default 8787)
            death_timeout=WORKER_START_SECONDS,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def replay(
    client: Client,
    files: list[Path],
    target: str,
    estimators: tuple[str, ...] | None,
    settings: RewardModelSettings,
    options: ReplayOptions | None = None,
    reward: str = "customer",
    blend_weight: float = 0.5,
) -> ReplayReport:
    """Estimate the target over every partition on the cluster (`estimators` None: the log's
    defaults). The partitions' per-event sums stay on the workers and are gathered only for
    the estimators whose interval is a bootstrap (ESS below 1,000)."""
    futures = client.map(
        partition_sums,
        files,
        target=target,
        estimators=estimators,
        settings=settings,
        options=options,
        reward=reward,
        blend_weight=blend_weight,
        pure=False,
    )
    summaries = client.gather(client.map(_summary, futures, pure=False))

    def fetch(names: tuple[str, ...]) -> list[dict[str, EventSums]]:
        return list(client.gather(client.map(_event_sums, futures, names=names, pure=False)))

    return combine(summaries, target_name(target), options, estimators, fetch)


def _summary(part: PartitionSums) -> PartitionSums:
    return part.summary()


def _event_sums(part: PartitionSums, names: tuple[str, ...]) -> dict[str, EventSums]:
    return {name: part.events[name] for name in names}


def _tune_group(
    files: list[Path], grid: Grid, settings: RewardModelSettings | None
) -> list[TunedPoint]:
    return tune(load_partitioned(files), grid, settings)[0]


def tune_on(
    client: Client, files: list[Path], grid: Grid, settings: RewardModelSettings | None = None
) -> tuple[list[TunedPoint], TunedPoint | None]:
    """`bandit.ope.tuning.tune` with each exploration setting's replay on its own worker."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, config in enumerate(grid.points):
        groups.setdefault(exploration_key(config), []).append(index)
    futures = [
        client.submit(
            _tune_group,
            files,
            Grid(tuple(grid.points[i] for i in indices), grid.objective),
            settings,
            pure=False,
        )
        for indices in groups.values()
    ]
    by_index: dict[int, TunedPoint] = {}
    for indices, points in zip(groups.values(), client.gather(futures), strict=True):
        # `tune` ranks its group; put each point back at its place in the grid by its config.
        remaining = list(points)
        for i in indices:
            match = next(p for p in remaining if p.config == grid.points[i])
            remaining.remove(match)
            by_index[i] = match
    return rank_points([by_index[i] for i in range(len(grid.points))])


def rank_points(points: list[TunedPoint]) -> tuple[list[TunedPoint], TunedPoint | None]:
    """The same order and recommendation as `tune`: best value first, then less review."""

    def value(point: TunedPoint) -> float:
        return -math.inf if math.isnan(point.estimate.value) else point.estimate.value

    ranked = sorted(points, key=lambda p: (-value(p), p.workload.review_share))
    allowed = [p for p in ranked if p.feasible]
    return ranked, (allowed[0] if allowed else None)


def simulate_seed(
    scenario: Any, rounds: int, seed: int, out: Path, server_url: str | None
) -> dict[str, Any]:
    from sim.plots import MAIN_RUNS
    from sim.report import simulate

    report = simulate(scenario, rounds, seed, out, server_url)
    return {
        "seed": seed,
        "out": str(out),
        "runs": {
            name: {
                key: report["runs"][name][key]
                for key in (
                    "reward_per_decision",
                    "cumulative_regret",
                    "automation_rate",
                    "curator_minutes_per_1000",
                )
            }
            for name in MAIN_RUNS
        },
    }


def simulate_seeds(
    client: Client,
    scenario: Any,
    rounds: int,
    seeds: list[int],
    out: Path,
    server_url: str | None,
) -> list[dict[str, Any]]:
    """One complete simulation per seed on the cluster, each written to OUT/seed-N/.

    Each run makes its own scratch database (SQLite files, or one PostgreSQL database per run
    on `server_url`), so the runs share nothing but the scenario.
    """
    futures = [
        client.submit(
            simulate_seed, scenario, rounds, seed, out / f"seed-{seed}", server_url, pure=False
        )
        for seed in seeds
    ]
    return list(client.gather(futures))


def sweep_summary(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per run and measure: mean and standard deviation across the seeds."""
    import numpy as np

    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name in results[0]["runs"]:
        summary[name] = {}
        for measure in results[0]["runs"][name]:
            values = np.array([r["runs"][name][measure] for r in results], dtype=float)
            sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
            summary[name][measure] = {"mean": float(values.mean()), "sd": sd}
    return summary
