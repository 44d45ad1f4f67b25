"""An outbox backlog nobody subscribed to costs the sender one statement: an endpoint added
after thousands of changes hears of the next one on the first pass, and what an endpoint is
owed is still fanned out oldest first, once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, EventChange, WebhookDelivery, utcnow
from bandit.engine.config import PolicyConfig
from bandit.services import configs, decisions, webhooks
from bandit.services import webhook_sender as sender
from bandit.services.runtime import EngineRuntime
from bandit.services.webhook_sender import PassReport, SendResult, send_due_webhooks
from tests.conftest import DemoCatalog

SETTINGS = webhooks.WebhookSettings(timeout_seconds=2.0)
BACKLOG = 3_000


class Posts:
    """A receiver that answers 204 and remembers the event ids it was sent."""

    def __init__(self) -> None:
        self.event_ids: list[str] = []

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> SendResult:
        self.event_ids.append(json.loads(body)["event_id"])
        return SendResult(204, "")


@pytest.fixture
def review_after(session_factory: sessionmaker[Session], demo_catalog: DemoCatalog) -> None:
    """Rank delivers at once, writing one `delivered` outbox row."""
    with session_factory() as session:
        configs.save_config(session, PolicyConfig(routing_mode="review_after"), "t", True)
        session.commit()


def _rank(sessions: sessionmaker[Session], demo_catalog: DemoCatalog) -> str:
    """One delivered decision; its event id."""
    with sessions() as session:
        runtime = EngineRuntime(np.random.default_rng(5))
        request = decisions.RankRequest(context=demo_catalog.customers[0])
        decision, _ = decisions.rank(session, runtime, request)
        session.commit()
        return decision.event_id


def _backlog(sessions: sessionmaker[Session], rows: list[tuple[str, datetime]]) -> None:
    """Outbox rows of these (kind, time), on one stored decision, in one insert."""
    with sessions() as session:
        decision_id = session.scalars(select(Decision.id)).first()
        session.execute(
            insert(EventChange),
            [
                {
                    "decision_id": decision_id,
                    "event_id": f"old-{i}",
                    "kind": kind,
                    "payload": {},
                    "created_at": at,
                }
                for i, (kind, at) in enumerate(rows)
            ],
        )
        session.commit()


def _undispatched(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(EventChange)
                .where(EventChange.dispatched_at.is_(None))
            )
            or 0
        )


@pytest.mark.usefixtures("review_after")
def test_a_new_endpoint_hears_of_the_next_event_on_the_first_pass_after_a_backlog(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    _rank(session_factory, demo_catalog)
    hour_ago = utcnow() - timedelta(hours=1)
    kinds = ("delivered", "rewarded", "corrected")
    _backlog(session_factory, [(kinds[i % 3], hour_ago) for i in range(BACKLOG)])
    with session_factory() as session:
        webhooks.add_endpoint(session, "http://127.0.0.1:9/hooks", list(kinds), "test")
        session.commit()
    event_id = _rank(session_factory, demo_catalog)
    posts = Posts()

    report = send_due_webhooks(session_factory, settings=SETTINGS, post=posts)

    assert posts.event_ids == [event_id]
    assert (report.fanned_out, report.delivered, report.skipped) == (1, 1, BACKLOG + 1)
    assert _undispatched(session_factory) == 0
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


@pytest.mark.usefixtures("review_after")
def test_rows_an_endpoint_is_owed_are_kept_in_order_and_the_rest_skipped(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    ranked = _rank(session_factory, demo_catalog)  # now: owed to the `delivered` endpoint
    start = utcnow() - timedelta(hours=2)
    with session_factory() as session:
        # Rewards since `start`; deliveries only from an hour later.
        webhooks.add_endpoint(session, "http://127.0.0.1:9/a", ["rewarded"], "t", now=start)
        later = start + timedelta(hours=1)
        webhooks.add_endpoint(session, "http://127.0.0.1:9/b", ["delivered"], "t", now=later)
        session.commit()
    before, between = start - timedelta(minutes=1), start + timedelta(minutes=30)
    rows = [("rewarded", before), ("delivered", between), ("corrected", between)]
    rows += [("rewarded", between + timedelta(seconds=i)) for i in range(150)]
    rows += [("delivered", later), ("corrected", later)]
    _backlog(session_factory, rows)
    posts = Posts()
    small = webhooks.WebhookSettings(timeout_seconds=2.0, batch_size=100)

    owed = [ranked] + [f"old-{i}" for i in range(3, 154)]  # oldest first

    first = send_due_webhooks(session_factory, settings=small, post=posts)
    # Skipped: the reward before `start`, the delivery before `later`, both corrections.
    assert first.skipped == 4 and first.changes == 100 and first.had_more(100)
    assert sorted(posts.event_ids) == sorted(owed[:100])
    second = send_due_webhooks(session_factory, settings=small, post=posts)
    assert second.skipped == 0 and second.changes == 52 and not second.had_more(100)
    assert sorted(posts.event_ids) == sorted(owed)  # each once
    assert _undispatched(session_factory) == 0


def test_the_watch_loop_does_not_pause_while_fan_out_fills_whole_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    passes = [PassReport(0, 0, 0, 0, 0, changes=100), PassReport(0, 0, 0, 0, 0, changes=3)]
    pauses: list[float] = []
    monkeypatch.setattr(sender, "send_due_webhooks", lambda *a, **k: passes.pop(0))
    monkeypatch.setattr(sender.time, "sleep", pauses.append)
    settings = webhooks.WebhookSettings(batch_size=100)

    sender.run_worker(None, settings, 5.0, lambda: not passes)  # type: ignore[arg-type]

    assert pauses == [5.0]  # after the short pass only
