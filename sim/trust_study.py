"""The `trust` study: one world under always-review, the old partial routing and
risk-controlled routing at several targets, run in parallel processes, with its plots."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bandit.engine.vocabulary import RoutingMode
from sim.measure import RunMeasures
from sim.plots import save_figure, subplots
from sim.runs import RunPlan, simulate_run, world_for
from sim.scenario import Scenario

ALWAYS = "trust_always_review"
PARTIAL = "trust_partial"


@dataclass(frozen=True)
class TrustPlan:
    """One run of the study and its target (None for the baselines)."""

    plan: RunPlan
    target: float | None
    seed: int


def study_plans(scenario: Scenario, rounds: int, seed: int) -> list[TrustPlan]:
    """Always-review, the scenario's partial routing, and risk control at each target."""
    settings = scenario.trust
    rounds = settings.rounds or rounds
    policy, curators = scenario.policy, scenario.curators
    plans = [
        TrustPlan(
            RunPlan(ALWAYS, replace(policy, routing_mode="review_before"), curators, rounds),
            None,
            seed,
        ),
        TrustPlan(
            RunPlan(PARTIAL, replace(policy, routing_mode="partial"), curators, rounds), None, seed
        ),
    ]
    for target in settings.targets:
        plans.append(
            TrustPlan(
                RunPlan(run_name(target), risk_policy(scenario, target), curators, rounds),
                target,
                seed,
            )
        )
    return plans


def seed_plans(scenario: Scenario, seed: int) -> list[TrustPlan]:
    """The seed sweep at the reference target (shorter runs, one per seed)."""
    settings = scenario.trust
    target = settings.sweep_target
    return [
        TrustPlan(
            RunPlan(
                f"{run_name(target)}_seed_{seed + i}",
                risk_policy(scenario, target),
                scenario.curators,
                settings.sweep_rounds,
            ),
            target,
            seed + i,
        )
        for i in range(settings.sweep_seeds)
    ]


def run_name(target: float) -> str:
    """The study's name for a risk-controlled run."""
    return f"trust_risk_{target:g}"


def risk_policy(scenario: Scenario, target: float) -> Any:
    """The scenario's policy with risk-controlled routing at `target`.

    Everything not automated waits for a curator (review_threshold 1.0): only a curated slate
    reaches the customer improved, so review-after would save latency but not reward.
    """
    return replace(
        scenario.policy,
        routing_mode=RoutingMode.RISK_CONTROLLED,
        max_override_rate=target,
        review_threshold=1.0,
        auto_threshold=1.0,
    )


def run_study(
    scenario: Scenario,
    rounds: int,
    seed: int,
    server_url: str | None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    finished: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every study run (and the seed sweep), `scenario.trust.workers` at a time.

    `on_result` gets the study so far after each run, so a long study leaves its finished
    runs behind even if it is stopped; passing that study back as `finished` runs only what
    it lacks. The baselines, the run at the sweep's target and the sweep go first, so a study
    stopped early still answers the headline question.
    """
    plans = study_plans(scenario, rounds, seed)
    sweep = seed_plans(scenario, seed)
    study: dict[str, Any] = {
        "targets": list(scenario.trust.targets),
        "confidence_level": scenario.policy.confidence_level,
        "audit_share": scenario.policy.audit_share,
        "runs": dict(finished["runs"]) if finished else {},
        "seed_sweep": _sweep_summary([], scenario.trust.sweep_target, scenario.trust.sweep_rounds),
    }
    swept = _swept_runs(finished["seed_sweep"]) if finished else []
    done_seeds = {run["seed"] for run in swept}
    if swept:
        study["seed_sweep"] = _sweep_summary(
            swept, scenario.trust.sweep_target, scenario.trust.sweep_rounds
        )
    to_run = [p for p in plans if p.plan.name not in study["runs"]]
    to_run += [p for p in sweep if p.seed not in done_seeds]
    with ProcessPoolExecutor(max_workers=scenario.trust.workers) as pool:
        futures = {
            pool.submit(_one, p, scenario, server_url): p
            for p in sorted(to_run, key=lambda p: _priority(p, plans, scenario))
        }
        for future in as_completed(futures):
            plan = futures[future]
            if plan in plans:
                study["runs"][plan.plan.name] = future.result()
            else:
                swept.append(future.result())
                study["seed_sweep"] = _sweep_summary(
                    sorted(swept, key=lambda r: r["seed"]),
                    scenario.trust.sweep_target,
                    scenario.trust.sweep_rounds,
                )
            if on_result is not None:
                on_result(study)
    order = [p.plan.name for p in plans]
    study["runs"] = {name: study["runs"][name] for name in order if name in study["runs"]}
    return study


def _priority(plan: TrustPlan, plans: list[TrustPlan], scenario: Scenario) -> tuple[int, int]:
    if plan in plans:
        headline = plan.target is None or plan.target == scenario.trust.sweep_target
        return (0 if headline else 2, plans.index(plan))
    return (1, plan.seed)


def _swept_runs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-seed figures a stored sweep summary keeps, as run records."""
    return [
        {"seed": seed, "true_override_rate_auto": rate, "automation_rate": automation}
        for seed, rate, automation in zip(
            summary["seeds"],
            summary["true_override_rate_auto"],
            summary["automation_rate"],
            strict=True,
        )
    ]


def _one(plan: TrustPlan, scenario: Scenario, server_url: str | None) -> dict[str, Any]:
    world = world_for(scenario, plan.seed)
    measures = simulate_run(plan.plan, scenario, world, plan.seed, server_url)
    return {"seed": plan.seed, **study_measures(measures, plan.target)}


def study_measures(measures: RunMeasures, target: float | None) -> dict[str, Any]:
    """The study's keys for one run (see docs/simulation.md)."""
    count = measures.reward.size
    tail = slice(count - max(1, count // 10), count)
    override = (
        measures.true_override if measures.true_override is not None else np.full(count, np.nan)
    )
    # The chance a curator would change the slate is known for every slate sent out with no
    # review first: the auto deliveries, and the audits (reviewed after delivery).
    audited = measures.audit if measures.audit is not None else np.zeros(count, dtype=bool)
    auto = np.isfinite(override) & measures.automated
    audit = np.isfinite(override) & audited
    bound = measures.bound if measures.bound is not None else np.full(count, np.nan)
    finite_bound = bound[np.isfinite(bound)]
    summary = measures.summary(10)
    return {
        "target": target,
        "decisions": count,
        "reward_per_decision": float(measures.reward.mean()),
        "curator_minutes_per_1000": float(measures.curator_seconds.sum() / 60 / count * 1000),
        "reward_per_decision_last_10pct": float(measures.reward[tail].mean()),
        "curator_minutes_per_1000_last_10pct": float(
            measures.curator_seconds[tail].sum() / 60 / measures.reward[tail].size * 1000
        ),
        "automation_rate_last_10pct": float(measures.automated[tail].mean()),
        "automation_rate": float(measures.automated.mean()),
        "true_override_rate_auto": float(override[auto].mean()) if auto.any() else None,
        "true_override_rate_auto_last_10pct": (
            float(override[tail][auto[tail]].mean()) if auto[tail].any() else None
        ),
        "auto_delivered": int(auto.sum()),
        # Audits are a random draw from the auto-eligible slates: the same rate, measured apart.
        "true_override_rate_audited": float(override[audit].mean()) if audit.any() else None,
        "audits": int(measures.audit.sum()) if measures.audit is not None else 0,
        "measured_override_bound_last": float(finite_bound[-1]) if finite_bound.size else None,
        "series": summary["series"],
        "logged_rounds_by_source": summary["logged_rounds_by_source"],
    }


def _sweep_summary(runs: list[dict[str, Any]], target: float, rounds: int) -> dict[str, Any]:
    rates = [r["true_override_rate_auto"] for r in runs]
    kept = [rate is None or rate <= target for rate in rates]
    # A seed that automated nothing keeps the promise vacuously; say how many did not.
    tested = [rate <= target for rate in rates if rate is not None]
    return {
        "target": target,
        "rounds": rounds,
        "seeds": [r["seed"] for r in runs],
        "true_override_rate_auto": rates,
        "automation_rate": [r["automation_rate"] for r in runs],
        "share_of_seeds_within_target": float(np.mean(kept)) if kept else None,
        "seeds_that_automated": len(tested),
        "share_within_target_of_seeds_that_automated": (float(np.mean(tested)) if tested else None),
    }


# The bar over the last tenth of a run: nearly always-review's customer reward at a
# fifth of its curator minutes.
REWARD_RATIO_TARGET = 0.98
MINUTES_RATIO_TARGET = 0.2


def study_findings(study: dict[str, Any]) -> dict[str, Any]:
    """Ratios against always-review over the last tenth, per risk-controlled run.

    `true_override_within_target` is null for a run that delivered no slate automatically:
    it kept the promise only vacuously, which `automated` says.
    """
    runs = study["runs"]
    out: dict[str, Any] = {}
    always = runs.get(ALWAYS)
    if always is None:
        return out
    for name, run in runs.items():
        if run["target"] is None:
            continue
        reward_ratio = run["reward_per_decision_last_10pct"] / max(
            always["reward_per_decision_last_10pct"], 1e-9
        )
        minutes_ratio = run["curator_minutes_per_1000_last_10pct"] / max(
            always["curator_minutes_per_1000_last_10pct"], 1e-9
        )
        rate = run["true_override_rate_auto"]
        out[name] = {
            "reward_ratio_last_10pct": reward_ratio,
            "minutes_ratio_last_10pct": minutes_ratio,
            "automated": bool(run["auto_delivered"]),
            "true_override_within_target": None if rate is None else rate <= run["target"],
            "reward_and_minutes_target_met": reward_ratio >= REWARD_RATIO_TARGET
            and minutes_ratio <= MINUTES_RATIO_TARGET,
        }
    return out


def write_study_plots(study: dict[str, Any], out: Path) -> list[Path]:
    """The bootstrapping curve (automation and bound over time) and reward/minutes per run."""
    runs = study["runs"]
    figure, (share, bound) = subplots(2, figsize=(7, 6.5))
    for name, run in runs.items():
        series = run["series"]
        share.plot(
            series["decision_end"], series["automation_rate"], marker="o", markersize=3, label=name
        )
        if run["target"] is not None:
            values = [np.nan if v is None else v for v in series.get("override_bound", [])]
            line = bound.plot(series["decision_end"], values, marker="o", markersize=3, label=name)[
                0
            ]
            bound.axhline(run["target"], color=line.get_color(), linestyle="--", linewidth=0.8)
    share.set(
        title="Bootstrapping: share of decisions delivered automatically", ylabel="automated share"
    )
    bound.set(
        title="Upper bound on the auto override rate (dashed: targets)",
        xlabel="decisions",
        ylabel="bound in force",
    )
    for axes in (share, bound):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:  # the bound panel is empty until a risk run ends
            axes.legend(fontsize=7)
    curve = save_figure(figure, out / "trust_bootstrapping.png")
    figure, (reward, minutes) = subplots(2, figsize=(7, 6.5))
    names = list(runs)
    positions = np.arange(len(names))
    reward.bar(positions, [runs[n]["reward_per_decision_last_10pct"] for n in names])
    minutes.bar(positions, [runs[n]["curator_minutes_per_1000_last_10pct"] for n in names])
    reward.set(title="Customer reward per decision, last tenth", ylabel="expected items kept")
    minutes.set(title="Curator minutes per 1,000 decisions, last tenth", ylabel="minutes")
    for axes in (reward, minutes):
        axes.set_xticks(positions, names, rotation=20, fontsize=7)
        axes.grid(alpha=0.3, axis="y")
    bars = save_figure(figure, out / "trust_reward_minutes.png")
    return [curve, bars]
