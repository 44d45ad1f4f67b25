"""Run only the `trust` study of a scenario (the same code `hitl simulate` runs when the
scenario's [trust] table is enabled) and write report.json with its `study` block and plots.

    .venv/bin/python bench/trust_study.py --config docs/simulation/scenario.toml \
        --rounds 600 --seed 7 --out docs/simulation/trust
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.scenario import load_scenario  # noqa: E402
from sim.trust_study import run_study, study_findings, write_study_plots  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sweep-seeds", type=int, default=None)
    parser.add_argument("--sweep-rounds", type=int, default=None)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Keep the runs (and sweep seeds) already in OUT/report.json and run only the rest.",
    )
    args = parser.parse_args()
    scenario = load_scenario(args.config)
    trust = scenario.trust
    if args.sweep_seeds is not None:
        trust = replace(trust, sweep_seeds=args.sweep_seeds)
    if args.sweep_rounds is not None:
        trust = replace(trust, sweep_rounds=args.sweep_rounds)
    scenario = replace(scenario, trust=trust)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    finished, earlier_seconds = (
        _earlier_study(args.out / "report.json", args) if args.resume else (None, 0.0)
    )

    def write(study: dict) -> None:
        # After every finished run, so a stopped study leaves what it measured.
        study["findings"] = study_findings(study)
        study["wall_seconds"] = earlier_seconds + time.perf_counter() - started
        plots = write_study_plots(study, args.out) if study["runs"] else []
        report = {
            "seed": args.seed,
            "rounds": args.rounds,
            "study": study,
            "plots": [p.name for p in plots],
        }
        (args.out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")

    study = run_study(scenario, args.rounds, args.seed, None, on_result=write, finished=finished)
    write(study)
    for name, run in study["runs"].items():
        print(
            name, {k: v for k, v in run.items() if k not in ("series", "logged_rounds_by_source")}
        )
    print("sweep", study["seed_sweep"])
    print("findings", study["findings"], "wall", round(study["wall_seconds"]), "s")


def _earlier_study(report: Path, args: argparse.Namespace) -> tuple[dict | None, float]:
    """The study a stopped run of this script left, if it was for the same rounds and seed."""
    if not report.exists():
        return None, 0.0
    earlier = json.loads(report.read_text(encoding="utf-8"))
    if (earlier["rounds"], earlier["seed"]) != (args.rounds, args.seed):
        sys.exit(f"{report}: made with --rounds {earlier['rounds']} --seed {earlier['seed']}")
    return earlier["study"], float(earlier["study"].get("wall_seconds", 0.0))


if __name__ == "__main__":
    main()
