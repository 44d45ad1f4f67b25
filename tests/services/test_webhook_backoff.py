"""The retry backoff: first x 2^(n-1), n counted since the delivery was made or last replayed,
capped, and never an overflow however many attempts a delivery has had."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import EventChange, WebhookAttempt, WebhookDelivery, utcnow
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import WebhookStatus
from bandit.services import configs, decisions, webhooks
from bandit.services.runtime import EngineRuntime
from bandit.services.webhook_sender import SendResult, retry_delay, send_due_webhooks
from tests.conftest import DemoCatalog

SETTINGS = webhooks.WebhookSettings(
    first_retry_seconds=10.0, max_retry_seconds=3_600.0, retry_for_seconds=20_000.0
)


def _refuse(url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
    return SendResult(503, "HTTP 503")


def _one_change(sessions: sessionmaker[Session], demo_catalog: DemoCatalog, now: datetime) -> None:
    """One endpoint, then one delivered event: one delivery owed to it."""
    with sessions() as session:
        webhooks.add_endpoint(session, "http://127.0.0.1:9/hooks", ["delivered"], "test", now=now)
        config = PolicyConfig(routing_mode="partial", auto_threshold=0.0, review_threshold=0.0)
        configs.save_config(session, config, "test", activate=True)
        session.commit()
        runtime = EngineRuntime(np.random.default_rng(4))
        decisions.rank(session, runtime, decisions.RankRequest(context=demo_catalog.customers[0]))
        session.execute(update(EventChange).values(created_at=now))
        session.commit()


def _send(sessions: sessionmaker[Session], now: datetime, seed: int) -> WebhookDelivery:
    send_due_webhooks(sessions, now, SETTINGS, np.random.default_rng(seed), _refuse)
    with sessions() as session:
        return session.scalars(select(WebhookDelivery)).one()


def _last_wait(sessions: sessionmaker[Session], delivery: WebhookDelivery) -> float:
    """Seconds from the end of the delivery's last attempt to its next one."""
    with sessions() as session:
        last = session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery.id)
            .order_by(WebhookAttempt.id.desc())
        ).first()
    assert last is not None and delivery.next_attempt_at is not None
    finished = last.started_at + timedelta(milliseconds=last.duration_ms)
    return (delivery.next_attempt_at - finished).total_seconds()


def test_a_replayed_delivery_starts_its_backoff_again_and_keeps_its_attempt_log(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    start = utcnow()
    _one_change(session_factory, demo_catalog, start)
    now = start
    delivery = _send(session_factory, now, 0)
    for attempt in range(2, 10):  # nine failed attempts, the clock jumping to each retry
        assert delivery.status == WebhookStatus.PENDING and delivery.next_attempt_at
        now = max(now, delivery.next_attempt_at)
        delivery = _send(session_factory, now, attempt)
    assert delivery.attempts == 9
    assert _last_wait(session_factory, delivery) >= 0.5 * 10.0 * 2**8  # doubling so far
    with session_factory() as session:
        # Given up (as `record_attempt` does past the window), then replayed by an admin.
        session.execute(
            update(WebhookDelivery).values(status=WebhookStatus.FAILED, next_attempt_at=None)
        )
        session.commit()
        webhooks.replay(session, delivery.delivery_id, SETTINGS, now)
        session.commit()
    waits = []
    for seed in (20, 21, 22):
        delivery = _send(session_factory, now, seed)
        waits.append(_last_wait(session_factory, delivery))
        assert delivery.next_attempt_at is not None
        now = max(now, delivery.next_attempt_at)
    # 10 s doubling again from the replay: U(0.5, 1) x 10, 20, 40 seconds.
    for n, wait in enumerate(waits):
        assert 0.5 * 10.0 * 2**n <= wait <= 10.0 * 2**n + 1.0, waits
    assert delivery.attempts == 12  # the total is kept for the record
    with session_factory() as session:
        numbers = session.scalars(select(WebhookAttempt.attempt).order_by(WebhookAttempt.id))
        assert list(numbers) == list(range(1, 13))


@pytest.mark.parametrize("attempt", [1, 2, 9, 10, 1_025, 5_000, 10**9])
def test_the_delay_is_capped_and_never_overflows(attempt: int) -> None:
    rng = np.random.default_rng(0)
    ceiling = min(
        SETTINGS.max_retry_seconds, SETTINGS.first_retry_seconds * 2.0 ** min(attempt - 1, 20)
    )
    delay = retry_delay(attempt, SETTINGS, rng)
    assert 0.5 * ceiling <= delay <= ceiling


def test_a_delivery_with_thousands_of_attempts_does_not_stop_the_pass(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    start = utcnow()
    _one_change(session_factory, demo_catalog, start)
    delivery = _send(session_factory, start, 0)
    with session_factory() as session:
        session.execute(update(WebhookDelivery).values(attempts=5_000, next_attempt_at=start))
        session.commit()
    delivery = _send(session_factory, start, 1)
    assert delivery.attempts == 5_001 and delivery.status == WebhookStatus.PENDING
    assert _last_wait(session_factory, delivery) <= SETTINGS.max_retry_seconds + 1.0
