"""Webhooks end to end against a real local receiver: signatures, at-least-once delivery after
downtime, duplicates only under one delivery id, replay, and rank untouched by a hung receiver."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, EventChange, WebhookAttempt, WebhookDelivery
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs, decisions, review, rewards, webhooks
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from bandit.services.webhook_sender import PassReport, run_worker, send_due_webhooks
from curation_app.event_schemas import WebhookMessage
from tests import webhook_receiver
from tests.conftest import DemoCatalog

FAST = webhooks.WebhookSettings(
    first_retry_seconds=0.05, max_retry_seconds=0.2, timeout_seconds=2.0, retry_for_seconds=60
)
ALL_KINDS = ["delivered", "corrected", "rewarded"]


@pytest.fixture
def receiver() -> Iterator[tuple[webhook_receiver.Receiver, str]]:
    """A running receiver and its URL."""
    state = webhook_receiver.Receiver()
    server = webhook_receiver.start(state)
    yield state, f"http://127.0.0.1:{server.server_port}/hooks"
    if state.hang is not None:
        state.hang.set()
    webhook_receiver.stop(server)


def _setup(sessions: sessionmaker[Session], routing_mode: str, url: str) -> str:
    with sessions() as session:
        configs.save_config(session, PolicyConfig(routing_mode=routing_mode), "t", activate=True)
        endpoint = webhooks.add_endpoint(session, url, ALL_KINDS, "test")
        session.commit()
        return endpoint.secret


def _rank(sessions: sessionmaker[Session], demo_catalog: DemoCatalog, n: int = 1) -> list[str]:
    runtime = EngineRuntime(np.random.default_rng(5))
    event_ids = []
    with sessions() as session:
        for i in range(n):
            context = demo_catalog.customers[i % len(demo_catalog.customers)]
            decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()
            event_ids.append(decision.event_id)
    return event_ids


def _pass_until(
    sessions: sessionmaker[Session], done: Any, seconds: float = 15.0
) -> list[PassReport]:
    reports = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reports.append(send_due_webhooks(sessions, settings=FAST, rng=np.random.default_rng(1)))
        if done():
            return reports
        time.sleep(0.05)
    raise AssertionError(f"not done after {seconds} s: {reports[-3:]}")


def test_a_review_before_event_is_announced_signed_when_the_curator_submits(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    receiver: tuple[webhook_receiver.Receiver, str],
) -> None:
    state, url = receiver
    state.secret = _setup(session_factory, "review_before", url)
    [event_id] = _rank(session_factory, demo_catalog)
    assert send_due_webhooks(session_factory, settings=FAST).attempted == 0  # nothing went out
    with session_factory() as session:
        curator = accounts.add_curator(session, "hook-curator", "long-enough-pw")
        session.commit()
        task = review.claim_next(session, curator.id)
        session.commit()
        assert task is not None
        verdicts = [ItemVerdict(p.position, "keep") for p in task.decision.proposed]
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 4.0)
        session.commit()
        delivered = session.scalars(select(Decision).where(Decision.event_id == event_id)).one()
        slate = [dict(e) for e in delivered.delivered_slate or []]

    _pass_until(session_factory, lambda: len(state.received) == 1)
    [message] = state.received
    assert message.signature_valid and message.event_type == "delivered"
    assert message.body["event_id"] == event_id and message.body["type"] == "delivered"
    assert message.body["delivery_id"] == message.delivery_id
    assert message.body["data"]["delivered_slate"] == slate
    WebhookMessage.model_validate(message.body)

    with session_factory() as session:
        rewards.record_reward(session, event_id, 1.0, None, "client:test")
        session.commit()
    _pass_until(session_factory, lambda: len(state.received) == 2)
    assert state.received[1].event_type == "rewarded" and state.received[1].signature_valid
    assert state.received[1].body["data"]["value"] == 1.0


def test_deliveries_survive_receiver_downtime_and_duplicates_share_their_delivery_id(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    port = webhook_receiver.free_port()
    state = webhook_receiver.Receiver(fail_first=True)
    state.secret = _setup(session_factory, "review_after", f"http://127.0.0.1:{port}/hooks")
    event_ids = _rank(session_factory, demo_catalog, n=4)
    with session_factory() as session:
        # Rank wrote exactly one outbox row per decision, in its own transaction.
        assert session.scalar(select(func.count()).select_from(EventChange)) == 4

    down_until = time.monotonic() + 1.0
    while time.monotonic() < down_until:  # the receiver is down: every attempt fails
        send_due_webhooks(session_factory, settings=FAST, rng=np.random.default_rng(2))
        time.sleep(0.05)
    with session_factory() as session:
        failed_attempts = session.scalar(
            select(func.count()).select_from(WebhookAttempt).where(WebhookAttempt.error != "")
        )
        statuses = set(session.scalars(select(WebhookDelivery.status)))
    assert failed_attempts and failed_attempts >= 8 and statuses == {"pending"}

    server = webhook_receiver.start(state, port)
    try:

        def all_delivered() -> bool:
            with session_factory() as session:
                return set(session.scalars(select(WebhookDelivery.status))) == {"delivered"}

        _pass_until(session_factory, all_delivered)
    finally:
        webhook_receiver.stop(server)
    assert all(r.signature_valid for r in state.received)
    by_change: dict[int, set[str]] = defaultdict(set)
    for message in state.received:
        by_change[message.body["change_id"]].add(message.delivery_id)
    # Every change arrived, more than once (the first answer was a 500), always with one id.
    assert sorted(m.body["event_id"] for m in state.received if m.answered == 204) == sorted(
        event_ids
    )
    assert all(len(ids) == 1 for ids in by_change.values()) and len(by_change) == 4
    assert len(state.received) >= 8
    with session_factory() as session:
        attempts = session.scalars(select(WebhookDelivery.attempts)).all()
    assert min(attempts) >= 3  # down at least once, then a 500, then delivered


def test_a_failed_delivery_is_replayed_with_the_same_delivery_id(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    port = webhook_receiver.free_port()
    state = webhook_receiver.Receiver()
    state.secret = _setup(session_factory, "review_after", f"http://127.0.0.1:{port}/hooks")
    short = webhooks.WebhookSettings(
        first_retry_seconds=0.05, max_retry_seconds=0.1, retry_for_seconds=0.3, timeout_seconds=1
    )
    _rank(session_factory, demo_catalog)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if send_due_webhooks(session_factory, settings=short).failed:
            break
        time.sleep(0.05)
    with session_factory() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert delivery.status == "failed" and delivery.last_error
        delivery_id = delivery.delivery_id
        with pytest.raises(webhooks.DeliveryNotFound):
            webhooks.replay(session, "no-such-delivery", FAST, delivery.created_at)
        webhooks.replay(session, delivery_id, FAST, delivery.created_at)
        session.commit()
        with pytest.raises(webhooks.NotReplayable, match="pending"):
            webhooks.replay(session, delivery_id, FAST, delivery.created_at)
    server = webhook_receiver.start(state, port)
    try:
        _pass_until(session_factory, lambda: len(state.received) == 1)
    finally:
        webhook_receiver.stop(server)
    assert state.received[0].delivery_id == delivery_id and state.received[0].signature_valid


def test_rank_never_waits_for_a_hung_receiver(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    receiver: tuple[webhook_receiver.Receiver, str],
) -> None:
    state, url = receiver
    state.secret = _setup(session_factory, "review_after", url)
    state.hang = threading.Event()
    _rank(session_factory, demo_catalog)
    slow = webhooks.WebhookSettings(timeout_seconds=20.0)
    worker = threading.Thread(
        target=send_due_webhooks, args=(session_factory,), kwargs={"settings": slow}, daemon=True
    )
    worker.start()
    assert state.hanging.wait(10), "the worker never reached the receiver"
    # While the worker is stuck in its HTTP request, rank goes on: every call returns, and
    # the worker is still stuck afterwards (its request only ends when the hang is released).
    event_ids = _rank(session_factory, demo_catalog, n=5)
    assert worker.is_alive() and len(event_ids) == 5
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(EventChange)) == 6
    state.hang.set()
    worker.join(25)
    assert not worker.is_alive()


@pytest.mark.parametrize(
    ("url", "events", "field"),
    [
        ("ftp://example.com/x", ["delivered"], "url"),
        ("http:///no-host", ["delivered"], "url"),
        ("https://example.com/a b", ["delivered"], "url"),
        ("https://example.com/x", [], "events"),
        ("https://example.com/x", ["delivered", "shipped"], "events"),
    ],
)
def test_bad_endpoints_are_refused_naming_the_field(
    session: Session, url: str, events: list[str], field: str
) -> None:
    with pytest.raises(webhooks.WebhookError, match=f"^{field}:"):
        webhooks.add_endpoint(session, url, events, "test")


def test_the_watch_loop_runs_upkeep_and_sends_until_told_to_stop(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    receiver: tuple[webhook_receiver.Receiver, str],
) -> None:
    state, url = receiver
    state.secret = _setup(session_factory, "review_after", url)
    _rank(session_factory, demo_catalog, n=2)
    upkeeps: list[int] = []
    deadline = time.monotonic() + 15

    def should_stop() -> bool:
        return len(state.received) >= 2 or time.monotonic() > deadline

    run_worker(session_factory, FAST, 0.05, should_stop, upkeep=lambda s: upkeeps.append(1))
    assert len(state.received) == 2 and all(r.signature_valid for r in state.received)
    assert upkeeps  # fallbacks and SLAs are served by the same loop
