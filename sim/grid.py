"""Tuning by simulation: each candidate policy config runs the scenario's loop, so reward and
curator workload are measured, not estimated, for the trade-off a team has to choose on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bandit.engine.config import PolicyConfig
from sim.runs import RunPlan, simulate_run, world_for
from sim.scenario import Scenario


def simulate_configs(
    configs: Sequence[PolicyConfig],
    scenario: Scenario,
    rounds: int,
    seed: int,
    server_url: str | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> list[dict[str, Any]]:
    """Simulated reward and workload of each config, in the given order, on one world."""
    world = world_for(scenario, seed)
    results = []
    for index, config in enumerate(configs):
        name = f"point_{index}"
        plan = RunPlan(name, replace(config, name=config.name), scenario.curators, rounds)
        on_step = progress(name, rounds) if progress else None
        summary = simulate_run(plan, scenario, world, seed, server_url, on_step).summary(1)
        results.append(
            {
                key: summary[key]
                for key in (
                    "reward_per_decision",
                    "cumulative_regret",
                    "automation_rate",
                    "curator_minutes_per_1000",
                )
            }
        )
    return results
