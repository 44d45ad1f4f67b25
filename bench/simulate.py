"""Simulator benchmark: decisions per second of `hitl simulate` through the real service layer.

Run by hand (not part of `make test`):

    .venv/bin/python bench/simulate.py [--json] [--rounds 300] [--jobs N] [--database-url URL]

It runs the built-in scenario (its main run, four baselines and the noise sweep: independent
runs, each on its own scratch database) with `--jobs` processes at once, and in the same
session the main run alone in this process, so both rates come from the same machine state.
`decisions_per_s` is the whole study's decisions over its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.report import simulate  # noqa: E402
from sim.runs import plans_for, simulate_run, world_for  # noqa: E402
from sim.scenario import Scenario  # noqa: E402

SEED = 7


def main() -> None:
    """Time one run alone, then the whole study in parallel processes; print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--database-url", default=None, help="PostgreSQL server (else SQLite)")
    args = parser.parse_args()
    scenario = Scenario()
    plan = plans_for(scenario, args.rounds)[0]
    started = time.perf_counter()
    simulate_run(plan, scenario, world_for(scenario, SEED), SEED, args.database_url)
    single = plan.rounds / (time.perf_counter() - started)
    timing: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hitl-bench-sim-") as out:
        report = simulate(
            scenario, args.rounds, SEED, Path(out), args.database_url, None, args.jobs, timing
        )
    result = {
        "decisions_per_s": round(timing["decisions_per_s"], 1),
        "decisions": int(timing["decisions"]),
        "seconds": round(timing["seconds"], 1),
        "runs": len(report["runs"]),
        "jobs": args.jobs,
        "single_run_decisions_per_s": round(single, 1),
        "rounds": args.rounds,
        "backend": report["backend"],
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
