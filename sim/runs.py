"""One simulated run: a scratch database, the demo world, the real loop, the measures."""

from __future__ import annotations

import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from bandit.db import migrate
from bandit.db.session import make_engine, make_session_factory
from bandit.engine.config import PolicyConfig
from bandit.engine.native_threads import one_blas_thread
from bandit.services import catalog_store, configs
from bandit.services.runtime import EngineRuntime
from sim.curators import SimulatedCurator
from sim.demo_data import DemoWorld, generate
from sim.loop import LoopSettings, run_loop
from sim.measure import RunMeasures, measure_run
from sim.scenario import CuratorSettings, Scenario
from sim.world import TrueRewardModel


@dataclass(frozen=True)
class RunPlan:
    """What one run changes from the scenario."""

    name: str
    policy: PolicyConfig
    curators: tuple[CuratorSettings, ...]
    rounds: int


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """A new, empty database for one run, removed afterwards.

    Without a server URL it is an SQLite file in a temporary folder; with a PostgreSQL URL it
    is a new database on that server (the one the URL names is never touched).
    """
    if server_url is None or server_url.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="hitl-sim-") as folder:
            yield f"sqlite:///{Path(folder) / 'simulation.sqlite3'}"
        return
    name = f"hitl_sim_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def simulate_run(
    plan: RunPlan,
    scenario: Scenario,
    world: DemoWorld,
    seed: int,
    server_url: str | None,
    on_step: Callable[[int], None] | None = None,
) -> RunMeasures:
    """Drive the real loop for `plan.rounds` decisions and measure them against the truth."""
    one_blas_thread()  # runs go in parallel processes, one per core
    truth = TrueRewardModel.from_catalog(world.catalog, seed)
    rng = np.random.default_rng([seed, _stable_number(plan.name)])
    curators = [
        SimulatedCurator(
            c.name,
            accuracy=c.accuracy,
            seconds_per_item=c.seconds_per_item,
            rng=rng,
            fatigue_per_hour=c.fatigue_per_hour,
            favored_categories=c.favored_categories,
            bias=c.bias,
            tasks_per_hour=c.tasks_per_hour,
        )
        for c in plan.curators
    ]
    settings = LoopSettings(
        decisions=plan.rounds,
        learn_every=scenario.world.learn_every,
        reward_share=scenario.world.outcome_share,
        outcome_delay=scenario.world.outcome_delay,
        seconds_per_decision=scenario.world.seconds_per_decision,
        shift_hours=scenario.world.shift_hours,
    )
    with scratch_database(server_url) as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        if url.startswith("sqlite"):
            _skip_fsync(engine)
        sessions = make_session_factory(engine)
        try:
            with sessions() as session:
                catalog_store.upsert_items(session, catalog_store.rows_from_frame(world.catalog))
                configs.save_config(session, plan.policy, created_by="simulator", activate=True)
                session.commit()
            stats = run_loop(
                sessions,
                EngineRuntime(rng),
                truth,
                world.customers,
                curators,
                settings,
                rng,
                on_step=on_step,
            )
            with sessions() as session:
                return measure_run(session, truth, world.catalog, stats)
        finally:
            engine.dispose()


def _skip_fsync(engine: Engine) -> None:
    # A scratch database dies with the run: durability would only cost time.
    @event.listens_for(engine, "connect")
    def _no_sync(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous = OFF")


def plans_for(scenario: Scenario, rounds: int) -> list[RunPlan]:
    """The scenario's own run, the policy and review baselines, and the curator-noise sweep.

    Policy baselines keep the scenario's routing, so differences come from the policy;
    review baselines keep its policy, so differences come from routing.
    """
    policy, curators = scenario.policy, scenario.curators
    never_review = replace(policy, routing_mode="partial", auto_threshold=0.0, review_threshold=0.0)
    plans = [
        RunPlan("policy", policy, curators, rounds),
        RunPlan(
            "uniform_random",
            replace(policy, algorithm="epsilon_greedy", epsilon=1.0),
            curators,
            rounds,
        ),
        RunPlan(
            "greedy",
            replace(policy, algorithm="epsilon_greedy", epsilon=0.0, exploration_slot_share=0.0),
            curators,
            rounds,
        ),
        RunPlan("never_review", never_review, curators, rounds),
        RunPlan("always_review", replace(policy, routing_mode="review_before"), curators, rounds),
    ]
    noise_rounds = scenario.noise_rounds or rounds
    for accuracy in scenario.noise_accuracies:
        steady = tuple(
            replace(c, accuracy=accuracy, fatigue_per_hour=0.0, bias=0.0) for c in curators
        )
        plans.append(RunPlan(f"noise_{accuracy:g}", policy, steady, noise_rounds))
    return plans


def _stable_number(name: str) -> int:
    # Python's hash() of a string changes between processes; runs must be reproducible.
    return zlib.crc32(name.encode())


def world_for(scenario: Scenario, seed: int) -> DemoWorld:
    """The scenario's catalog and customers for a seed."""
    return generate(scenario.world.items, scenario.world.customers, seed)
