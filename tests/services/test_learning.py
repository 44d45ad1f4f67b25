"""Learning: a real learning curve, exactly-once processing, swap-ins kept out of VW."""

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CuratorAction, Decision, ModelVersion, Outcome, PolicyConfigRow
from bandit.engine import vw_format
from bandit.engine.config import ConfigError, PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.records import LoggedRound
from bandit.services import configs, decisions, learning, model_store, review, rewards, rounds
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from sim.curators import SimulatedCurator
from sim.loop import LoopSettings, run_loop
from sim.world import TrueRewardModel
from tests.conftest import DemoCatalog
from tests.engine_helpers import CONTEXT, small_catalog


def test_proposals_contain_preferred_items_more_often_as_the_loop_runs(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> None:
    from sim.demo_data import generate_catalog

    seed = 11
    truth = TrueRewardModel.from_catalog(generate_catalog(200, seed), seed)
    rng = np.random.default_rng(21 if database_url.startswith("sqlite") else 22)
    curators = [SimulatedCurator("sim-a", accuracy=0.9, seconds_per_item=5.0, rng=rng)]
    settings = LoopSettings(decisions=300, learn_every=20, tasks_per_step=2)
    history = run_loop(
        session_factory, EngineRuntime(rng), truth, demo_catalog.customers, curators, settings, rng
    )
    preferred = np.array([s.preferred_share for s in history])
    trend = stats.linregress(np.arange(preferred.size), preferred)
    fifths = [chunk.mean() for chunk in np.array_split(preferred, 5)]
    print(f"preferred share by fifth: {np.round(fifths, 3)}; slope {trend.slope:.5f}")
    assert trend.slope > 0 and trend.pvalue < 1e-3
    assert fifths[-1] > fifths[0] + 0.1
    with session_factory() as session:
        assert model_store.latest_version_number(session) >= 300 // 20


def _reviewed_event(
    session: Session, runtime: EngineRuntime, context: dict, curator_id: int, swap_to: str | None
) -> str:
    decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
    session.commit()
    task = review.claim_next(session, curator_id)
    session.commit()
    assert task is not None and task.decision_id == decision.id
    verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
    if swap_to is not None:
        verdicts[0] = ItemVerdict(0, "swap", swap_to, "customer asked for it")
    review.submit_review(session, task.id, curator_id, task.lease_token or "", verdicts, 30.0)
    session.commit()
    return decision.event_id


@pytest.fixture
def reviewed_events(
    session: Session, demo_catalog: DemoCatalog, curator_account: tuple[str, str]
) -> tuple[EngineRuntime, list[str], str]:
    from bandit.services.accounts import find_curator

    runtime = EngineRuntime(np.random.default_rng(0))
    curator = find_curator(session, curator_account[0])
    assert curator is not None
    context = demo_catalog.customers[0]
    first = _reviewed_event(session, runtime, context, curator.id, None)
    decision = decisions.find_decision(session, first)
    assert decision is not None
    outsider = next(
        i for i in demo_catalog.item_ids if i not in {c["item_id"] for c in decision.candidates}
    )
    second = _reviewed_event(session, runtime, context, curator.id, outsider)
    return runtime, [first, second], outsider


def test_each_signal_is_learned_exactly_once(
    session: Session, reviewed_events: tuple[EngineRuntime, list[str], str]
) -> None:
    _, events, _ = reviewed_events
    rewards.record_reward(session, events[0], 1.0, None, "client:test")
    session.commit()
    first = learning.learn_pending(session)
    session.commit()
    assert first.verdicts == 10 and first.rewards == 1
    assert first.model_version == 1
    again = learning.learn_pending(session)
    session.commit()
    assert again.rounds_learned == 0 and again.model_version is None
    assert session.scalar(select(func.count()).select_from(ModelVersion)) == 1


def test_a_crash_mid_learning_loses_and_repeats_nothing(
    session: Session,
    reviewed_events: tuple[EngineRuntime, list[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(model_store, "save_model", crash)
        with pytest.raises(RuntimeError):
            learning.learn_pending(session)
            session.commit()
    session.rollback()
    pending = (
        select(func.count()).select_from(CuratorAction).where(CuratorAction.learned_at.is_(None))
    )
    assert session.scalar(pending) == 10
    report = learning.learn_pending(session)
    session.commit()
    # Verdicts are approval labels; only the swapped-out item (never delivered) is a proxy round.
    assert report.verdicts == 10 and report.rounds_learned == 1
    assert session.scalar(pending) == 0


# PostgreSQL only: SQLite's BEGIN IMMEDIATE lets no reward commit while a pass runs.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_reward_committed_while_a_pass_runs_is_learned_once_by_the_next_pass(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with session_factory() as session:
        configs.save_config(session, PolicyConfig(routing_mode="review_after"), "test", True)
        session.commit()
        runtime = EngineRuntime(np.random.default_rng(0))
        request = decisions.RankRequest(context=demo_catalog.customers[0])
        event_id = decisions.rank(session, runtime, request)[0].event_id
        session.commit()
        decision = decisions.find_decision(session, event_id)
        assert decision is not None
        first, second = (p.item_id for p in decision.proposed[:2])
        rewards.record_reward(session, event_id, 1.0, first, "client:test")
        session.commit()
    resolve = rounds.resolve_decisions
    passes: list[int] = []

    def resolve_while_the_client_reports_the_second_item(
        session: Session, in_order: Sequence[Decision], *, pending_only: bool = False
    ) -> list[rounds.ResolvedRound]:
        if not passes:
            # Committed after the pass read the pending outcomes, before it builds the rounds.
            with session_factory() as client:
                rewards.record_reward(client, event_id, 1.0, second, "client:test")
                client.commit()
        passes.append(1)
        return resolve(session, in_order, pending_only=pending_only)

    monkeypatch.setattr(
        rounds, "resolve_decisions", resolve_while_the_client_reports_the_second_item
    )
    reports = []
    for _ in range(3):
        with session_factory.begin() as session:
            reports.append(learning.learn_pending(session))
    fed = [Counter(r.chosen_item_id for r in report.rounds) for report in reports]
    assert fed == [Counter({first: 1}), Counter({second: 1}), Counter()]
    with session_factory() as session:
        stored = session.scalars(select(Outcome).order_by(Outcome.id)).all()
        assert [(o.item_key, o.fed_to_policy, o.learned_at is not None) for o in stored] == [
            (first, True, True),
            (second, True, True),
        ]


def test_rewards_on_swapped_in_items_are_kept_but_never_fed_to_the_policy(
    session: Session, reviewed_events: tuple[EngineRuntime, list[str], str]
) -> None:
    _, events, outsider = reviewed_events
    rewards.record_reward(session, events[1], 1.0, outsider, "client:test")
    session.commit()
    report = learning.learn_pending(session)
    session.commit()
    assert report.rewards == 1 and report.rewards_not_fed == 1
    # The swapped-out item is a curator-proxy 0; its swap-in's reward is no bandit round.
    assert report.rounds_learned == 1
    outcome = session.scalars(select(Outcome)).one()
    assert outcome.fed_to_policy is False and outcome.learned_at is not None


def test_serving_picks_up_new_model_versions_and_a_restart_keeps_them(
    session: Session,
    reviewed_events: tuple[EngineRuntime, list[str], str],
    demo_catalog: DemoCatalog,
) -> None:
    runtime, _, _ = reviewed_events
    assert runtime.serving(session).model_version == 0
    learning.learn_pending(session)
    session.commit()
    assert runtime.serving(session).model_version == 1
    restarted = EngineRuntime(np.random.default_rng(1))
    assert restarted.serving(session).model_version == 1


def test_policy_config_change_reaches_serving_without_restart(
    session: Session,
    reviewed_events: tuple[EngineRuntime, list[str], str],
    demo_catalog: DemoCatalog,
) -> None:
    runtime, _, _ = reviewed_events
    learning.learn_pending(session)
    session.commit()
    configs.save_config(session, PolicyConfig(name="wide", epsilon=0.5), "test", activate=True)
    session.commit()
    serving = runtime.serving(session)
    assert serving.recommender.config.epsilon == 0.5 and serving.model_version == 1
    proposal = serving.recommender.propose(demo_catalog.customers[0])
    first_pmf = np.asarray(proposal.position_pmfs[0])
    # Epsilon-greedy spreads epsilon evenly: every candidate gets at least epsilon / K.
    assert first_pmf.min() >= 0.5 / first_pmf.size - 1e-9
    assert np.isclose(first_pmf.sum(), 1.0)


@pytest.mark.parametrize(
    "change",
    [{"algorithm": "cover"}, {"algorithm": "squarecb"}, {"vw_bits": 20}, {"bag_size": 7}],
    ids=lambda change: next(iter(change)) + "=" + str(next(iter(change.values()))),
)
def test_a_trained_model_refuses_settings_its_reductions_cannot_change(
    session: Session, reviewed_events: tuple[EngineRuntime, list[str], str], change: dict
) -> None:
    runtime, _, _ = reviewed_events
    if "bag_size" in change:
        configs.save_config(session, PolicyConfig(algorithm="bag"), "test", activate=True)
    learning.learn_pending(session)
    session.commit()
    before_row, before = configs.active_config(session)
    stored = session.scalar(select(func.count()).select_from(PolicyConfigRow))
    with pytest.raises(ConfigError, match=f"^{next(iter(change))}: model version 1"):
        configs.save_config(session, replace(before, **change), "test", activate=True)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(PolicyConfigRow)) == stored
    assert configs.active_config(session)[0].id == before_row.id
    assert runtime.serving(session).recommender.config == before


def test_apply_rounds_learns_as_the_policy_does_from_each_rounds_own_text() -> None:
    """The learner's path: rounds over items gone from the catalog learn over the items left,
    a round whose chosen item is gone is skipped, and rounds sharing one context object (a
    decision's positions, formatted once) learn as if each had its own copy, to the last bit."""
    items = small_catalog(12)
    gone = {"item-2", "item-5", "item-9"}
    catalog = {row.item_id: row for row in items.rows if row.item_id not in gone}
    contexts: list[Mapping[str, object]] = [
        CONTEXT,
        {**CONTEXT, "preferred_style": "sporty", "budget": 30.0},
    ]
    draw = np.random.default_rng(3)
    logged = []
    for n in range(60):
        offered = tuple(f"item-{i}" for i in draw.choice(12, size=6, replace=False))
        logged.append(
            LoggedRound(
                str(n // 3),
                contexts[n // 3 % 2],  # three positions per decision share its context
                offered,
                offered[int(draw.integers(6))],
                n % 3,
                float(draw.uniform(0.1, 1.0)),
                float(draw.uniform()),
                "customer",
            )
        )
    assert any(r.chosen_item_id in gone for r in logged)
    assert any(set(r.offered_item_ids) & gone and r.chosen_item_id not in gone for r in logged)
    config = PolicyConfig()
    learner, reference = VWPolicy.fresh(config), VWPolicy.fresh(config)
    assert learning.apply_rounds(learner, logged, catalog) == sum(
        r.chosen_item_id not in gone for r in logged
    )
    for r in logged:
        if r.chosen_item_id in gone:
            continue
        kept = [i for i in r.offered_item_ids if i not in gone]
        reference.learn(
            vw_format.shared_line(dict(r.context)),
            [vw_format.action_line(catalog[i]) for i in kept],
            kept.index(r.chosen_item_id),
            r.reward,
            r.probability,
        )
    shared = vw_format.shared_line(CONTEXT)
    actions = [vw_format.action_line(row) for row in catalog.values()]
    assert np.array_equal(learner.score(shared, actions)[1], reference.score(shared, actions)[1])
    assert len(set(np.round(reference.score(shared, actions)[1], 6))) > 1  # it learned
