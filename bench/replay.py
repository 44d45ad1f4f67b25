"""Replay benchmark, run by hand: `python bench/replay.py [--rows 1000000,10000000]`.

1. Rows per second of IPS, SNIPS and DR (`bandit.ope.estimators`, value + cluster-robust 95%
   interval + ESS) against a bare reference in plain numpy computing the same numbers from the
   same arrays, in the same run (best of three each).
2. End to end: `hitl replay --log LOG.parquet --target TARGET.parquet` on 1M- and 10M-row
   logs of two-position slates in a fresh process (loading, validation, target join, reward
   model, estimation, diagnostics), wall time and peak RSS, for every estimator: the slate
   estimators (sips, rips, cascade-dr, switch-dr) and the per-position ones
   (--estimand position: ips, snips, dm, dr).
3. `--dask`: `hitl replay --log 'DIR/*.parquet' --target 'DIR/{stem}.target.parquet' --dask
   ADDRESS` on a partitioned log generated on disk (default 100M rows in 50 day files) against
   a local cluster of N worker processes: wall time, peak RSS of each worker and of the `hitl`
   process; as the reference, the same command without --dask on the first partitions only
   (what one process can hold), in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bandit.ope.estimators import DR, IPS, SNIPS, ReplayArrays  # noqa: E402
from bandit.ope.synthetic import SyntheticWorld  # noqa: E402

Z = 1.959963984540054

# Runs a command and prints its peak RSS (KB). The command is forked from this small launcher:
# a child forked straight from this (large) benchmark process would report this process's
# high-water RSS, which Linux carries across fork and exec.
PEAK_LAUNCHER = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(done.returncode)"
)


def _clustered_se(terms: np.ndarray, cluster: np.ndarray) -> float:
    sums = np.bincount(cluster, weights=terms - terms.mean())
    groups = np.count_nonzero(np.bincount(cluster))
    return float(np.sqrt(groups / (groups - 1) * (sums @ sums)) / terms.size)


def _slate_ess(w, c):  # type: ignore[no-untyped-def]
    m = np.bincount(c, weights=w) / np.bincount(c)  # every event code is present here
    return m.sum() ** 2 / (m @ m)


def reference_ips(r, p, t, c, q, qt):  # type: ignore[no-untyped-def]
    w = t / p
    terms = w * r
    v, se = terms.mean(), _clustered_se(terms, c)
    return v, v - Z * se, v + Z * se, _slate_ess(w, c)


def reference_snips(r, p, t, c, q, qt):  # type: ignore[no-untyped-def]
    w = t / p
    v = (w @ r) / w.sum()
    se = _clustered_se(w * (r - v) * (w.size / w.sum()), c)
    return v, v - Z * se, v + Z * se, _slate_ess(w, c)


def reference_dr(r, p, t, c, q, qt):  # type: ignore[no-untyped-def]
    w = t / p
    terms = qt + w * (r - q)
    v, se = terms.mean(), _clustered_se(terms, c)
    return v, v - Z * se, v + Z * se, _slate_ess(w, c)


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """Shortest wall time of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def estimator_throughput(rows: int) -> list[tuple[str, int, float, float]]:
    """(estimator, rows, ours rows/s, reference rows/s) on generated arrays."""
    rng = np.random.default_rng(1)
    reward = (rng.random(rows) < 0.4).astype(float)
    propensity = rng.uniform(0.05, 1.0, rows)
    target = rng.uniform(0.0, 1.0, rows)
    cluster = np.arange(rows) // 2  # two positions per event
    q_logged, q_target = rng.uniform(0, 1, rows), rng.uniform(0, 1, rows)
    arrays = ReplayArrays(reward, propensity, target, cluster, q_logged, q_target)
    args = (reward, propensity, target, cluster, q_logged, q_target)
    results = []
    for name, ours, reference in (
        ("ips", IPS(), reference_ips),
        ("snips", SNIPS(), reference_snips),
        ("dr", DR(), reference_dr),
    ):
        mine = ours.estimate(arrays)
        expected = reference(*args)
        assert np.allclose([mine.value, mine.ci_low, mine.ci_high, mine.ess], expected)
        ours_time = best_of(3, lambda ours=ours: ours.estimate(arrays))  # type: ignore[misc]
        reference_time = best_of(3, lambda reference=reference: reference(*args))  # type: ignore[misc]
        results.append((name, rows, rows / ours_time, rows / reference_time))
    return results


def end_to_end(rows: int, folder: Path, arguments: str) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of `hitl replay` on a generated Parquet log."""
    log, target = folder / f"log{rows}.parquet", folder / f"target{rows}.parquet"
    if not log.exists():
        world = SyntheticWorld.make(segments=8, actions=5, seed=2)
        rounds, _, segment = world.sample(rows // 2, np.random.default_rng(3), positions=2)
        # A target that mixes each segment's best and second-best actions: two rows per row.
        order = np.argsort(-world.mean_reward, axis=1)
        policy = np.zeros(world.shape)
        policy[np.arange(world.shape[0]), order[:, 0]] = 0.8
        policy[np.arange(world.shape[0]), order[:, 1]] = 0.2
        pq.write_table(rounds, log)
        pq.write_table(world.distribution_table(rounds, segment, policy, "probability"), target)
    hitl = str(Path(sys.executable).with_name("hitl"))
    command = [hitl, "replay", "--log", str(log), "--target", str(target)]
    launcher = [sys.executable, "-c", PEAK_LAUNCHER]
    start = time.perf_counter()
    done = subprocess.run([*launcher, *command, *arguments.split()], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr or done.stdout)
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    return seconds, peak_mb, done.stdout


def write_partitioned(folder: Path, rows: int, partitions: int) -> list[Path]:
    """A day-partitioned log of `rows` rows (two positions per event) with one target file per
    partition; generated a partition at a time, so memory stays at one partition's size."""
    import pyarrow as pa
    import pyarrow.compute as pc

    folder.mkdir(parents=True, exist_ok=True)
    world = SyntheticWorld.make(segments=8, actions=5, seed=2)
    order = np.argsort(-world.mean_reward, axis=1)
    policy = np.zeros(world.shape)
    policy[np.arange(world.shape[0]), order[:, 0]] = 0.8
    policy[np.arange(world.shape[0]), order[:, 1]] = 0.2
    files = []
    for part in range(partitions):
        stem = f"day-{part:04d}"
        path = folder / f"{stem}.parquet"
        files.append(path)
        if path.exists():
            continue
        rounds, _, segment = world.sample(
            rows // partitions // 2, np.random.default_rng([3, part]), positions=2
        )
        ids = pc.binary_join_element_wise(pa.scalar(f"p{part}-"), rounds.column("event_id"), "")
        rounds = rounds.set_column(0, "event_id", ids)
        target = world.distribution_table(rounds, segment, policy, "probability")
        pq.write_table(target, folder / f"{stem}.target.parquet")
        pq.write_table(rounds, path)
    return files


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dask_replay(rows: int, partitions: int, workers: int, folder: Path, estimators: str) -> None:
    """Part 3: the partitioned log on a local cluster, and the one-process reference."""
    import os

    from distributed import Client, LocalCluster

    start = time.perf_counter()
    files = write_partitioned(folder, rows, partitions)
    print(
        f"generated {rows:,} rows in {partitions} partitions: {time.perf_counter() - start:.0f} s"
    )
    hitl = str(Path(sys.executable).with_name("hitl"))
    launcher = [sys.executable, "-c", PEAK_LAUNCHER]
    pattern, target = str(folder / "*.parquet"), str(folder / "{stem}.target.parquet")
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            death_timeout=300,
            host="127.0.0.1",
        ) as cluster,
        Client(cluster) as client,
    ):
        command = [
            hitl,
            "replay",
            "--log",
            pattern,
            "--target",
            target,
            "--estimators",
            estimators,
            "--dask",
            cluster.scheduler_address,
        ]
        start = time.perf_counter()
        done = subprocess.run([*launcher, *command], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(done.stderr or done.stdout)
        peaks = client.run(_peak_rss_mb)
    print(
        f"\nhitl replay --dask ({workers} worker processes, 1 thread each), {rows:,} rows, "
        f"--estimators {estimators}: {seconds:.1f} s wall, {rows / seconds / 1e6:.2f}M rows/s"
    )
    print("peak RSS per worker: " + ", ".join(f"{mb:,.0f} MB" for mb in peaks.values()))
    print(f"peak RSS of the hitl (client) process: {int(done.stderr.split()[-1]) / 1024:,.0f} MB")
    print(done.stdout)
    # Reference: one process on as many partitions as hold 10M rows.
    few = max(1, min(partitions, partitions * 10_000_000 // rows))
    reference = folder / "reference"
    reference.mkdir(exist_ok=True)
    for file in files[:few]:
        for sibling in (file, file.with_name(file.stem + ".target.parquet")):
            link = reference / sibling.name
            if not link.exists():
                os.symlink(sibling, link)
    command = [
        hitl,
        "replay",
        "--log",
        str(reference / "*.parquet"),
        "--target",
        str(reference / "{stem}.target.parquet"),
        "--estimators",
        estimators,
    ]
    start = time.perf_counter()
    done = subprocess.run([*launcher, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr or done.stdout)
    ref_rows = rows // partitions * few
    print(
        f"reference, one process without --dask, {ref_rows:,} rows ({few} partitions): "
        f"{seconds:.1f} s wall, {ref_rows / seconds / 1e6:.2f}M rows/s, peak RSS "
        f"{int(done.stderr.split()[-1]) / 1024:,.0f} MB"
    )


def main() -> None:
    """Run both parts and print a Markdown table of each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dask", action="store_true", help="Run part 3 only.")
    parser.add_argument("--dask-rows", type=int, default=100_000_000)
    parser.add_argument("--dask-partitions", type=int, default=50)
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--dask-estimators", default="ips,snips")
    parser.add_argument("--dask-dir", type=Path, help="Keep the generated log here (reused).")
    parser.add_argument("--rows", default="1000000,10000000")
    parser.add_argument("--end-to-end-rows", default="1000000,10000000")
    parser.add_argument(
        "--end-to-end-arguments",
        default="--estimators sips,rips,cascade-dr,switch-dr;"
        "--estimand position --estimators ips,snips,dm,dr",
    )
    options = parser.parse_args()
    if options.dask:
        with tempfile.TemporaryDirectory() as scratch:
            folder = options.dask_dir or Path(scratch)
            dask_replay(
                options.dask_rows,
                options.dask_partitions,
                options.dask_workers,
                folder,
                options.dask_estimators,
            )
        return
    print("| estimator | rows | ours (rows/s) | plain numpy (rows/s) | ours / numpy |")
    print("|---|---:|---:|---:|---:|")
    for rows in (int(r) for r in options.rows.split(",")):
        for name, n, ours, reference in estimator_throughput(rows):
            print(
                f"| {name} | {n:,} | {ours / 1e6:.1f}M | {reference / 1e6:.1f}M | "
                f"{ours / reference:.2f}x |"
            )
    with tempfile.TemporaryDirectory() as folder:
        for rows in (int(r) for r in options.end_to_end_rows.split(",")):
            for arguments in options.end_to_end_arguments.split(";"):
                seconds, peak, output = end_to_end(rows, Path(folder), arguments)
                print(
                    f"\nhitl replay, {rows:,} rows, {arguments}: "
                    f"{seconds:.1f} s wall, peak RSS {peak:,.0f} MB"
                )
                print(output)


if __name__ == "__main__":
    main()
