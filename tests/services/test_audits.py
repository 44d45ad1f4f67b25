"""Random audits: drawn with the logged probability, blinded to curators; routing evidence."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from scipy import stats
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, ReviewTask, utcnow
from bandit.engine.approval import ApprovalModel
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.vocabulary import Overflow, Route
from bandit.services import accounts, configs, decisions, model_store, review, trust
from bandit.services.runtime import EngineRuntime
from tests.conftest import CURATOR_PASSWORD, DemoCatalog
from tests.curation_app.test_console import login

AUDIT_SHARE = 0.2
EVENTS = 300


def trusted_model(
    sessions: sessionmaker[Session], threshold: float | None, **settings: Any
) -> PolicyConfig:
    """Activate risk-controlled routing and a model version whose approval model is
    calibrated (every item 0.95) with `threshold` in force."""
    defaults: dict[str, Any] = {"audit_share": AUDIT_SHARE, "review_threshold": 0.5}
    config = PolicyConfig(routing_mode="risk_controlled", slate_size=3, **(defaults | settings))
    with sessions() as session:
        row = configs.save_config(session, config, created_by="test", activate=True)
        previous = model_store.latest_model(session)
        saved = model_store.save_model(session, VWPolicy.fresh(config), row, 0, previous, "test")
        approval = ApprovalModel.fresh()
        saved.approval_bytes = approval.to_bytes()
        approval.close()
        saved.approval_state = {
            "calibration": {"edges": [1.0], "values": [0.95]},
            "threshold": threshold,
        }
        session.commit()
    return config


def test_audits_are_drawn_with_their_logged_probability(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    trusted_model(session_factory, threshold=0.5)
    runtime = EngineRuntime(np.random.default_rng(4))
    for index in range(EVENTS):
        with session_factory() as session:
            context = demo_catalog.customers[index % len(demo_catalog.customers)]
            decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()
    with session_factory() as session:
        logged = session.scalars(select(Decision)).all()
    # Every slate is auto-eligible (0.95 ** 3 >= 0.5): each carries the audit probability.
    assert {d.audit_probability for d in logged} == {AUDIT_SHARE}
    assert all(d.approval_probability == np.float64(0.95) ** 3 for d in logged)
    audits = sum(d.audit for d in logged)
    assert {d.route for d in logged if d.audit} == {Route.REVIEW_AFTER}
    assert {d.route for d in logged if not d.audit} == {Route.AUTO}
    expected = [EVENTS * AUDIT_SHARE, EVENTS * (1 - AUDIT_SHARE)]
    p_value = stats.chisquare([audits, EVENTS - audits], expected).pvalue
    print(f"{audits} audits of {EVENTS} (expected {expected[0]:.0f}); chi-square p = {p_value:.3f}")
    assert p_value > 0.001


def test_without_a_threshold_nothing_is_automated_or_audited(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    trusted_model(session_factory, threshold=None)
    runtime = EngineRuntime(np.random.default_rng(5))
    with session_factory() as session:
        for context in demo_catalog.customers[:20]:
            decisions.rank(session, runtime, decisions.RankRequest(context=context))
        session.commit()
        logged = session.scalars(select(Decision)).all()
    assert {d.route for d in logged} == {Route.REVIEW_AFTER}  # 0.857 >= review_threshold 0.5
    assert not any(d.audit for d in logged)
    assert {d.auto_threshold for d in logged} == {None}


def test_an_audit_looks_like_any_other_review_after_task_to_the_curator(
    client: FlaskClient,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
) -> None:
    trusted_model(session_factory, threshold=0.5)
    runtime = EngineRuntime(np.random.default_rng(6))
    with session_factory() as session:
        while True:
            decision, _ = decisions.rank(
                session, runtime, decisions.RankRequest(context=demo_catalog.customers[0])
            )
            session.commit()
            if decision.audit:
                break
        token = accounts.create_token(session, "labeler", curator_username=curator_account[0])
        session.commit()
    claimed = client.post("/api/v1/review/claim", headers={"Authorization": f"Bearer {token}"})
    task = claimed.get_json()["task"]
    assert task["event_id"] == decision.event_id
    assert "audit" not in claimed.get_data(as_text=True).lower()
    login(client, curator_account[0], CURATOR_PASSWORD)
    page = client.get(f"/tasks/{task['task_id']}").get_data(as_text=True).lower()
    assert decision.proposed[0].item_id.lower() in page
    assert "audit" not in page


def test_a_curators_token_cannot_read_the_audit_flag_from_the_event_document(
    client: FlaskClient,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
) -> None:
    """The review API hands the curator the event id; the event document's routing block
    says whether the decision is an audit, so a curator-bound token must not read it."""
    trusted_model(session_factory, threshold=0.5)
    runtime = EngineRuntime(np.random.default_rng(7))
    with session_factory() as session:
        # An audit share of 20% (when auto-deliverable): 500 tries all missing one is beyond chance.
        for _ in range(500):
            decision, _ = decisions.rank(
                session, runtime, decisions.RankRequest(context=demo_catalog.customers[1])
            )
            session.commit()
            if decision.audit:
                break
        else:
            pytest.fail("no audit among 500 decisions")
        token = accounts.create_token(session, "labeler", curator_username=curator_account[0])
        client_token = accounts.create_token(session, "shop")
        session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    task = client.post("/api/v1/review/claim", headers=headers).get_json()["task"]
    assert task["event_id"] == decision.event_id
    answer = client.get(f"/api/v1/events/{task['event_id']}", headers=headers)
    assert answer.status_code == 403
    assert "audit" not in answer.get_data(as_text=True).lower()
    # The client that ranked it (and admins' tokens) still see why it was routed.
    shop = client.get(
        f"/api/v1/events/{decision.event_id}", headers={"Authorization": f"Bearer {client_token}"}
    )
    assert shop.status_code == 200 and shop.get_json()["routing"]["audit"] is True


@pytest.mark.parametrize("first_verdict", ["keep", "remove"])
def test_the_bound_reads_the_latest_reviews_however_many_slates_went_out_unreviewed(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, first_verdict: str
) -> None:
    config = trusted_model(session_factory, threshold=0.5, risk_window=50)
    runtime = EngineRuntime(np.random.default_rng(6))
    with session_factory() as session:
        curator = accounts.add_curator(session, "auditor", CURATOR_PASSWORD).id
        for index in range(EVENTS):
            context = demo_catalog.customers[index % len(demo_catalog.customers)]
            decisions.rank(session, runtime, decisions.RankRequest(context=context))
        reviewed = 0
        while (task := review.claim_next(session, curator)) is not None:
            verdicts = [
                review.ItemVerdict(p.position, first_verdict if p.position == 0 else "keep")
                for p in task.decision.proposed
            ]
            review.submit_review(session, task.id, curator, task.lease_token or "", verdicts, 2.0)
            reviewed += 1
        session.commit()
        choice = trust.choose_auto_threshold(session, config)
    # About 80% went out unreviewed, so the latest 50 reviews span about 250 decisions.
    assert reviewed > 50
    assert choice.evidence == 50
    # Every slate scores 0.95 ** 3, so the first test covers all 50; one changed item
    # makes a changed slate.
    assert choice.tests[0].n == 50
    assert choice.tests[0].overrides == (50 if first_verdict == "remove" else 0)


def _rank_until(
    sessions: sessionmaker[Session], runtime: EngineRuntime, context: dict[str, Any], audit: bool
) -> Decision:
    """Rank `context` until a decision with `audit` comes out (an audit is drawn at 20%)."""
    for _ in range(500):
        with sessions() as session:
            decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()
        if decision.audit == audit:
            return decision
    pytest.fail(f"no decision with audit={audit} among 500")


def test_with_review_threshold_one_a_curator_still_cannot_tell_an_audit(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
) -> None:
    """review_threshold = 1.0 (what the docs recommend) sends every slate below the automatic
    threshold to review before delivery, so every first-round review-after task is an audit:
    whatever tells review-after from review-before tells the curator which tasks are audits."""
    runtime = EngineRuntime(np.random.default_rng(8))
    customer = demo_catalog.customers[2]
    # No threshold in force: nothing is auto-eligible, the slate (0.857 < 1.0) waits for review.
    trusted_model(session_factory, threshold=None, review_threshold=1.0)
    before = _rank_until(session_factory, runtime, customer, audit=False)
    assert before.route == Route.REVIEW_BEFORE
    trusted_model(session_factory, threshold=0.5, review_threshold=1.0)
    audit = _rank_until(session_factory, runtime, customer, audit=True)
    assert audit.route == Route.REVIEW_AFTER
    with session_factory() as session:
        accounts.add_curator(session, "second", CURATOR_PASSWORD)
        accounts.add_curator(session, "lead", CURATOR_PASSWORD, role="admin")
        tokens = [
            accounts.create_token(session, f"tool-{name}", curator_username=name)
            for name in (curator_account[0], "second")
        ]
        session.commit()
    # What a curator is told of each task, through the review API and the console.
    told: dict[str, dict[str, Any]] = {}
    for name, token in zip((curator_account[0], "second"), tokens, strict=True):
        client = app.test_client()
        document = client.post(
            "/api/v1/review/claim", headers={"Authorization": f"Bearer {token}"}
        ).get_json()["task"]
        login(client, name, CURATOR_PASSWORD)
        page = client.get(f"/tasks/{document['task_id']}").get_data(as_text=True)
        badge = page.split('class="route-badge">', 1)[1].split("<", 1)[0]
        told[document["event_id"]] = {
            "route": document["route"],
            "already_delivered": document["already_delivered"],
            "badge": badge,
            "delivered notice": 'id="delivered-notice"' in page,
            # The same customer's other task: an audit already out would be listed as past.
            "no past slates": "No earlier slates for this customer." in page,
        }
    assert set(told) == {before.event_id, audit.event_id}
    assert told[audit.event_id] == told[before.event_id]
    assert "after" not in str(told[audit.event_id]).lower()
    # Past the SLA under `hold`, "held" would name the slate still waiting, "check overdue"
    # the one already out.
    with session_factory() as session:
        for decision, label in ((before, Overflow.HELD), (audit, Overflow.CHECK_OVERDUE)):
            task = session.scalars(
                select(ReviewTask).where(ReviewTask.decision_id == decision.id)
            ).one()
            task.overflow, task.due_at = label, utcnow() - timedelta(minutes=1)
        session.commit()
    client = app.test_client()
    login(client, curator_account[0], CURATOR_PASSWORD)
    queue = client.get("/").get_data(as_text=True)
    assert "review after" not in queue and "review before" not in queue
    assert queue.count(">overdue</span>") == 2
    assert re.search(r'id="count-overdue"[^>]*>2<', queue)
    assert "check_overdue" not in queue and 'id="count-held"' not in queue
    # The dashboard's counts, which curators open too, merge them the same way.
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert re.search(r'id="dash-overdue"[^>]*>2<', dashboard)
    assert 'id="dash-held"' not in dashboard and 'id="dash-checks-overdue"' not in dashboard
    # A route filter written into the address must not single the audits out either.
    for route in (Route.REVIEW_AFTER, Route.REVIEW_BEFORE):
        filtered = client.get(f"/?route={route}").get_data(as_text=True)
        assert audit.event_id[:10] not in filtered and before.event_id[:10] not in filtered
    # Admins still see every route: audits are theirs to measure.
    client = app.test_client()
    login(client, "lead", CURATOR_PASSWORD)
    admin_queue = client.get(f"/?route={Route.REVIEW_AFTER}").get_data(as_text=True)
    assert audit.event_id[:10] in admin_queue and before.event_id[:10] not in admin_queue
    assert "review after" in admin_queue


def test_a_slate_held_at_a_full_queue_is_not_marked_before_its_sla_passes(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
) -> None:
    """Under `hold`, a review-before task arriving at a full queue is labelled held at once,
    a review-after one only when its SLA passes: an "overdue" mark before the SLA would pick
    out the tasks that are not audits."""
    settings = {
        "overflow_policy": "hold",
        "curator_capacity_per_hour": 1,
        "review_sla_seconds": 3600,
    }
    runtime = EngineRuntime(np.random.default_rng(8))
    customer = demo_catalog.customers[2]
    trusted_model(session_factory, threshold=None, review_threshold=1.0, **settings)
    filler = _rank_until(session_factory, runtime, demo_catalog.customers[5], audit=False)
    before = _rank_until(session_factory, runtime, customer, audit=False)
    trusted_model(session_factory, threshold=0.5, review_threshold=1.0, **settings)
    audit = _rank_until(session_factory, runtime, customer, audit=True)
    with session_factory() as session:
        labels = {task.decision_id: task.overflow for task in session.scalars(select(ReviewTask))}
    assert labels[before.id] == Overflow.HELD and labels[audit.id] is None  # the world's rule
    client = app.test_client()
    login(client, curator_account[0], CURATOR_PASSWORD)
    queue = client.get("/").get_data(as_text=True)
    rows = {
        decision.event_id: re.search(
            rf"<tr[^>]*>(?:(?!</tr>).)*{decision.event_id[:10]}(?:(?!</tr>).)*</tr>", queue, re.S
        )
        for decision in (filler, before, audit)
    }
    assert all(rows.values())
    assert not any("overdue" in row.group(0) for row in rows.values() if row)
    assert re.search(r'id="count-overdue"[^>]*>0<', queue)
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert re.search(r'id="dash-overdue"[^>]*>0<', dashboard)
