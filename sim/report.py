"""`hitl simulate`: every run of a scenario, the report and its plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sim.plots import write_plots
from sim.runs import plans_for, simulate_run, world_for
from sim.scenario import Scenario
from sim.trust_study import run_study, study_findings, write_study_plots

REPORT_BINS = 10
BASELINES = ("uniform_random", "greedy", "never_review", "always_review")


def simulate(
    scenario: Scenario,
    rounds: int,
    seed: int,
    out: Path,
    server_url: str | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> dict[str, Any]:
    """Run the scenario, its baselines and the noise sweep; write report.json and the PNGs."""
    world = world_for(scenario, seed)
    runs: dict[str, dict[str, Any]] = {}
    for plan in plans_for(scenario, rounds):
        on_step = progress(plan.name, plan.rounds) if progress else None
        measures = simulate_run(plan, scenario, world, seed, server_url, on_step)
        runs[plan.name] = {
            **measures.summary(REPORT_BINS),
            "policy": plan.policy.to_document(),
            "curators": [asdict(c) for c in plan.curators],
        }
    report = {
        "seed": seed,
        "rounds": rounds,
        "backend": "postgresql" if server_url and server_url.startswith("postgres") else "sqlite",
        "world": asdict(scenario.world),
        "runs": runs,
        "baselines": list(BASELINES),
        "noise": [
            {"accuracy": accuracy, **_headline(runs[f"noise_{accuracy:g}"])}
            for accuracy in scenario.noise_accuracies
        ],
        "findings": findings(runs),
    }
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out)
    if scenario.trust.enabled:
        study = run_study(scenario, rounds, seed, server_url)
        study["findings"] = study_findings(study)
        report["study"] = study
        plots += write_study_plots(study, out)
    report["plots"] = [path.name for path in plots]
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def _headline(run: dict[str, Any]) -> dict[str, float]:
    keys = (
        "reward_per_decision",
        "cumulative_regret",
        "automation_rate",
        "curator_minutes_per_1000",
    )
    return {key: run[key] for key in keys}


def findings(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The comparisons a product team reads first, as numbers."""
    policy, always = runs["policy"], runs["always_review"]
    automation = policy["series"]["automation_rate"]
    reward = policy["series"]["reward_per_1000"]
    minutes_ratio = always["curator_minutes_per_1000"] / max(
        policy["curator_minutes_per_1000"], 1e-9
    )
    reward_ratio = always["reward_per_decision"] / max(policy["reward_per_decision"], 1e-9)
    return {
        "automation_first_bin": automation[0],
        "automation_last_bin": automation[-1],
        "reward_per_1000_first_bin": reward[0],
        "reward_per_1000_last_bin": reward[-1],
        "always_review_minutes_ratio": minutes_ratio,
        "always_review_reward_ratio": reward_ratio,
        "regret_vs_uniform": policy["cumulative_regret"]
        / max(runs["uniform_random"]["cumulative_regret"], 1e-9),
    }
