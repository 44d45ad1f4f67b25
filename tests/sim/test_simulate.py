"""`hitl simulate` and the simulated world: curators that tire, favour and pace themselves,
customers who answer late, and a report with baselines measured against the truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, Decision, Outcome, ReviewTask
from bandit.engine.config import PolicyConfig
from bandit.services import configs
from bandit.services.runtime import EngineRuntime
from curation_app.cli import main
from sim.curators import SimulatedCurator
from sim.demo_data import generate_catalog
from sim.loop import LoopSettings, customer_received, run_loop
from sim.runs import RunPlan, plans_for, simulate_run, world_for
from sim.scenario import Scenario, scenario_from_mapping
from sim.world import TrueRewardModel
from tests.conftest import POSTGRES_ADMIN_URL, DemoCatalog

SMALL_SCENARIO = """
[world]
items = 200
customers = 40
outcome_delay = 5
learn_every = 10

[policy]
candidate_count = 20
slate_size = 3
auto_threshold = 0.5
review_threshold = 0.25

[[curators]]
name = "sim-tired"
accuracy = 0.95
fatigue_per_hour = 0.2
tasks_per_hour = 120

[[curators]]
name = "sim-partial"
accuracy = 0.85
favored_categories = ["coat", "jacket"]
bias = 0.5

[noise]
accuracies = [0.6, 1.0]
rounds = 15
"""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "small.toml"
    path.write_text(SMALL_SCENARIO, encoding="utf-8")
    return path


def _scratch_databases() -> set[str]:
    engine = create_engine(POSTGRES_ADMIN_URL)
    with engine.connect() as connection:
        query = text("SELECT datname FROM pg_database WHERE datname LIKE 'hitl_sim_%'")
        names = connection.execute(query).scalars().all()
    engine.dispose()
    return set(names)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_simulate_writes_a_report_with_baselines_and_plots(
    scenario_file: Path, tmp_path: Path, backend: str
) -> None:
    server = ["--database-url", POSTGRES_ADMIN_URL] if backend == "postgresql" else []
    before = _scratch_databases()
    arguments = ["simulate", "--config", str(scenario_file), "--rounds", "30", "--seed", "5"]

    result = CliRunner().invoke(main, [*arguments, "--out", str(tmp_path), *server])

    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["backend"] == backend
    runs = report["runs"]
    expected_runs = {"policy", "uniform_random", "greedy", "never_review", "always_review"}
    assert expected_runs | {"noise_0.6", "noise_1"} == set(runs)
    for name, run in runs.items():
        assert run["decisions"] == (15 if name.startswith("noise") else 30)
        assert run["cumulative_regret"] >= 0  # nothing beats the oracle
        assert 0 < run["reward_per_decision"] <= run["oracle_per_decision"]
    assert runs["never_review"]["automation_rate"] == 1.0
    assert runs["never_review"]["curator_minutes_per_1000"] == 0.0
    assert runs["always_review"]["automation_rate"] == 0.0
    assert runs["always_review"]["curator_minutes_per_1000"] > 0
    assert [row["accuracy"] for row in report["noise"]] == [0.6, 1.0]
    for name in report["plots"]:
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    assert len(report["plots"]) == 5
    assert "policy" in result.output and "always_review" in result.output
    assert not _scratch_databases() - before  # this run's scratch databases are dropped


def test_the_same_seed_gives_the_same_run() -> None:
    scenario = scenario_from_mapping({"world": {"items": 120, "customers": 20, "learn_every": 10}})
    plan = plans_for(scenario, 25)[0]
    world = world_for(scenario, 3)

    first = simulate_run(plan, scenario, world, 3, None)
    second = simulate_run(plan, scenario, world, 3, None)

    np.testing.assert_allclose(first.reward, second.reward)
    np.testing.assert_array_equal(first.automated, second.automated)


BAD_SCENARIOS = {
    "unknown-section": ("[weather]\nsunny = true\n", "weather: unknown field"),
    "unknown-world-field": ("[world]\nplanets = 3\n", "world.planets: unknown field"),
    "items-as-text": ('[world]\nitems = "many"\n', "world.items"),
    "too-few-items": ("[world]\nitems = 3\n", "world.items"),
    "bad-policy": ('[policy]\nalgorithm = "thompson"\n', "policy.algorithm"),
    "thresholds-reversed": (
        "[policy]\nauto_threshold = 0.2\nreview_threshold = 0.6\n",
        "policy.review_threshold",
    ),
    "accuracy-above-one": (
        '[[curators]]\nname = "x"\naccuracy = 1.5\n',
        "curators[0].accuracy",
    ),
    "curator-without-name": ("[[curators]]\naccuracy = 0.9\n", "curators[0].name"),
    "duplicate-curators": ('[[curators]]\nname = "a"\n[[curators]]\nname = "a"\n', "curators"),
    "noise-accuracy-low": ("[noise]\naccuracies = [0.2]\n", "noise.accuracies"),
    "not-toml": ("world = [", "cannot read it as TOML"),
    "trust-target-too-high": ("[trust]\ntargets = [0.7]\n", "trust.targets"),
    "trust-unknown-field": ("[trust]\nhope = true\n", "trust.hope: unknown field"),
    "override-target-zero": ("[policy]\nmax_override_rate = 0\n", "policy.max_override_rate"),
    "audit-share-high": ("[policy]\naudit_share = 0.9\n", "policy.audit_share"),
    "confidence-too-high": ("[policy]\nconfidence_level = 1.0\n", "policy.confidence_level"),
}


@pytest.mark.parametrize(("content", "message"), BAD_SCENARIOS.values(), ids=list(BAD_SCENARIOS))
def test_a_bad_scenario_is_refused_by_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")

    result = CliRunner().invoke(
        main, ["simulate", "--config", str(path), "--out", str(tmp_path / "out")]
    )

    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def truth() -> TrueRewardModel:
    return TrueRewardModel.from_catalog(generate_catalog(200, 11), 11)


def test_a_curator_tires_over_a_shift_and_recovers(truth: TrueRewardModel) -> None:
    curator = SimulatedCurator(
        "tired",
        accuracy=0.95,
        seconds_per_item=60.0,
        rng=np.random.default_rng(0),
        fatigue_per_hour=0.2,
    )
    slate, spare = list(truth.item_index)[:5], list(truth.item_index)[5:20]
    profile = {
        "segment": "student",
        "preferred_style": "casual",
        "favorite_categories": ["top"],
        "budget": 60,
    }
    for _ in range(12):  # about an hour of review work
        curator.review(truth, profile, slate, spare)
    assert curator.current_accuracy() < 0.95 - 0.1
    curator.start_shift()
    assert curator.current_accuracy() == 0.95


def test_a_biased_curator_keeps_favoured_categories_more_often(truth: TrueRewardModel) -> None:
    items = list(truth.item_index)
    coats = [i for i in items if truth.categories_of([i])[0] == "coat"][:5]
    others = [i for i in items if truth.categories_of([i])[0] != "coat"][:40]
    profile = {
        "segment": "student",
        "preferred_style": "casual",
        "favorite_categories": ["top"],
        "budget": 60,
    }

    def kept_share(bias: float) -> float:
        curator = SimulatedCurator(
            "c",
            accuracy=0.9,
            seconds_per_item=1.0,
            rng=np.random.default_rng(1),
            favored_categories=("coat",),
            bias=bias,
        )
        kept = [
            v.verdict == "keep"
            for _ in range(200)
            for v in curator.review(truth, profile, coats, others)[0]
        ]
        return float(np.mean(kept))

    assert kept_share(0.6) > kept_share(0.0) + 0.3


def test_paced_curators_review_at_their_hourly_capacity_and_outcomes_arrive_late(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, truth: TrueRewardModel
) -> None:
    with session_factory() as session:
        configs.save_config(session, PolicyConfig(routing_mode="review_before"), "t", True)
        session.commit()
    rng = np.random.default_rng(4)
    # One task an hour every 2 decisions: 60 tasks an hour, a decision every 30 s.
    curator = SimulatedCurator("paced", 0.9, 5.0, rng, tasks_per_hour=60.0)
    settings = LoopSettings(
        decisions=40, learn_every=10, reward_share=1.0, outcome_delay=6, seconds_per_decision=30
    )

    run_loop(
        session_factory, EngineRuntime(rng), truth, demo_catalog.customers, [curator], settings, rng
    )

    with session_factory() as session:
        reviewed = session.scalar(select(func.count(func.distinct(CuratorAction.task_id))))
        answered = session.scalar(select(func.count(func.distinct(Outcome.decision_id)))) or 0
        last_answered = session.scalar(
            select(func.max(Decision.id)).where(Decision.id.in_(select(Outcome.decision_id)))
        )
        last_reviewed = session.scalar(select(func.max(CuratorAction.decision_id)))
    assert reviewed == 20
    # Reviews go oldest first; a slate reviewed at step s is answered at step s + 6.
    assert 0 < answered < reviewed
    assert last_answered is not None and last_reviewed is not None
    assert last_answered < last_reviewed


def test_a_second_opinion_does_not_deliver_the_slate_again(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, truth: TrueRewardModel
) -> None:
    """Under double review, the customer answers once: when the first review delivered it."""
    with session_factory() as session:
        policy = PolicyConfig(routing_mode="review_before", double_review_share=1.0)
        configs.save_config(session, policy, "t", True)
        session.commit()
    rng = np.random.default_rng(12)
    curators = [SimulatedCurator(name, 0.7, 5.0, rng) for name in ("first", "second")]
    settings = LoopSettings(decisions=30, learn_every=10, reward_share=1.0, tasks_per_step=4)

    run_loop(
        session_factory, EngineRuntime(rng), truth, demo_catalog.customers, curators, settings, rng
    )

    with session_factory() as session:
        second_rounds = session.scalar(
            select(func.count())
            .select_from(ReviewTask)
            .where(ReviewTask.review_round == 2, ReviewTask.status == "done")
        )
        per_decision = dict(
            session.execute(
                select(Outcome.decision_id, func.count()).group_by(Outcome.decision_id)
            ).all()
        )
        received = {
            decision.id: len(customer_received(decision))
            for decision in session.scalars(select(Decision).where(Decision.id.in_(per_decision)))
        }
    assert second_rounds and second_rounds >= 5
    assert len(per_decision) >= 20
    assert per_decision == received  # one answer per item the customer got, none twice


def test_the_default_scenario_is_valid() -> None:
    assert scenario_from_mapping({}) == Scenario()


STUDY_KEYS = {
    "target",
    "reward_per_decision",
    "curator_minutes_per_1000",
    "reward_per_decision_last_10pct",
    "curator_minutes_per_1000_last_10pct",
    "automation_rate_last_10pct",
    "true_override_rate_auto",
    "measured_override_bound_last",
}


def test_the_trust_study_reports_its_exact_keys_per_run(tmp_path: Path) -> None:
    from sim.trust_study import run_study

    scenario = scenario_from_mapping(
        {
            "world": {"items": 120, "customers": 20, "learn_every": 10, "outcome_delay": 2},
            "policy": {"candidate_count": 12, "slate_size": 3},
            "trust": {"enabled": True, "targets": [0.05], "workers": 1},
        }
    )
    study = run_study(scenario, 30, 3, None)
    runs = study["runs"]
    assert set(runs) == {"trust_always_review", "trust_partial", "trust_risk_0.05"}
    for name, run in runs.items():
        assert STUDY_KEYS <= set(run), name
        assert run["decisions"] == 30
    assert runs["trust_risk_0.05"]["target"] == 0.05
    assert runs["trust_always_review"]["target"] is None
    # 30 decisions are far too little evidence: the risk-controlled run automates nothing.
    assert runs["trust_risk_0.05"]["automation_rate"] == 0.0
    assert runs["trust_risk_0.05"]["logged_rounds_by_source"]
    # No run calibrated an approval model in 30 decisions, so no bound was measured (the
    # baselines never log an approval score); it read 1.0 before.
    assert all(run["measured_override_bound_last"] is None for run in runs.values())
    for name, run in runs.items():
        assert run["auto_delivered"] == round(run["automation_rate"] * run["decisions"]), name


def test_audited_slates_are_not_counted_as_auto_deliveries() -> None:
    from sim.measure import RunMeasures
    from sim.trust_study import study_measures

    count = 20
    automated = np.arange(count) < 8
    audit = (np.arange(count) >= 8) & (np.arange(count) < 10)
    override = np.where(automated, 0.1, np.where(audit, 0.5, np.nan))
    zeros = np.zeros(count)
    measures = RunMeasures(
        reward=zeros,
        oracle=zeros,
        automated=automated,
        curator_seconds=zeros,
        held=np.zeros(count, dtype=bool),
        confidence=zeros,
        true_override=override,
        audit=audit,
        bound=np.full(count, np.nan),
    )
    run = study_measures(measures, 0.05)
    assert run["auto_delivered"] == 8 and run["audits"] == 2
    assert run["true_override_rate_auto"] == pytest.approx(0.1)
    assert run["true_override_rate_audited"] == pytest.approx(0.5)
    assert run["measured_override_bound_last"] is None


def _study_run(
    target: float | None, reward: float, minutes: float, auto: int, rate: float | None
) -> dict[str, float | int | None]:
    return {
        "target": target,
        "reward_per_decision_last_10pct": reward,
        "curator_minutes_per_1000_last_10pct": minutes,
        "auto_delivered": auto,
        "true_override_rate_auto": rate,
    }


def test_findings_call_a_run_that_automated_nothing_vacuous_and_check_the_reward_minutes_bar() -> (
    None
):
    from sim.trust_study import study_findings

    study = {
        "runs": {
            "trust_always_review": _study_run(None, 4.0, 500.0, 0, None),
            "nothing_automated": _study_run(0.05, 4.0, 500.0, 0, None),
            "kept_and_cheap": _study_run(0.05, 3.95, 90.0, 800, 0.03),
            "broke_the_promise": _study_run(0.05, 3.99, 90.0, 800, 0.08),
            "too_expensive": _study_run(0.05, 4.0, 120.0, 500, 0.02),
        }
    }
    findings = study_findings(study)
    assert "trust_always_review" not in findings
    vacuous = findings["nothing_automated"]
    assert vacuous["automated"] is False and vacuous["true_override_within_target"] is None
    assert vacuous["reward_and_minutes_target_met"] is False
    kept = findings["kept_and_cheap"]
    assert kept["true_override_within_target"] is True and kept["reward_and_minutes_target_met"]
    assert kept["reward_ratio_last_10pct"] == pytest.approx(3.95 / 4.0)
    assert findings["broke_the_promise"]["true_override_within_target"] is False
    assert findings["too_expensive"]["reward_and_minutes_target_met"] is False


def test_a_stopped_trust_study_resumes_with_only_the_runs_it_lacks() -> None:
    from sim.trust_study import run_study

    scenario = scenario_from_mapping(
        {
            "world": {"items": 120, "customers": 20, "learn_every": 10, "outcome_delay": 2},
            "policy": {"candidate_count": 12, "slate_size": 3},
            "trust": {"enabled": True, "targets": [0.05], "workers": 1, "sweep_seeds": 2,
                      "sweep_rounds": 20},
        }
    )  # fmt: skip
    first = run_study(scenario, 20, 3, None)
    assert len(first["seed_sweep"]["seeds"]) == 2
    # 20 decisions automate nothing: the sweep says its promise was kept only vacuously.
    assert first["seed_sweep"]["share_of_seeds_within_target"] == 1.0
    assert first["seed_sweep"]["seeds_that_automated"] == 0
    assert first["seed_sweep"]["share_within_target_of_seeds_that_automated"] is None
    stopped = {
        "runs": {k: v for k, v in first["runs"].items() if k != "trust_partial"},
        "seed_sweep": {**first["seed_sweep"], **{
            key: first["seed_sweep"][key][:1]
            for key in ("seeds", "true_override_rate_auto", "automation_rate")
        }},
    }  # fmt: skip
    resumed = run_study(scenario, 20, 3, None, finished=stopped)
    assert list(resumed["runs"]) == list(first["runs"])
    # Kept runs are the stored records, not runs made again.
    assert resumed["runs"]["trust_always_review"] is first["runs"]["trust_always_review"]
    assert resumed["seed_sweep"]["seeds"] == first["seed_sweep"]["seeds"]
    assert resumed["runs"]["trust_partial"]["decisions"] == 20


@pytest.mark.slow
def test_a_seeded_risk_controlled_run_repeats_exactly() -> None:
    from sim.trust_study import TrustPlan, _one, risk_policy, run_name

    scenario = scenario_from_mapping(
        {
            "world": {"items": 300, "customers": 40, "learn_every": 25, "outcome_delay": 5},
            "curators": [{"name": "sim-steady", "accuracy": 1.0, "tasks_per_hour": 400}],
        }
    )
    plan = RunPlan(run_name(0.05), risk_policy(scenario, 0.05), scenario.curators, 300)
    first, second = (_one(TrustPlan(plan, 0.05, 5), scenario, None) for _ in range(2))
    # The bound exists only once the approval model is calibrated: the run got that far.
    assert first["measured_override_bound_last"] is not None
    assert first == second
