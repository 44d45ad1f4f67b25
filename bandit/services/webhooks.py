"""Webhook endpoints and their delivery log: registration, fan-out from the outbox, replay.

Every change to an event is first an outbox row (``event_changes``) written in the change's
own transaction. The worker fans each row out into one delivery per subscribed endpoint,
then sends, retries and logs them (bandit.services.webhook_sender). A delivery keeps its id
across retries and replays, so a receiver drops duplicates by that id.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, and_, false, not_, or_, select, update
from sqlalchemy.orm import Session

from bandit.db.models import (
    EventChange,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from bandit.db.session import is_postgresql
from bandit.engine.vocabulary import EventChangeKind, WebhookStatus

EVENT_KINDS = tuple(EventChangeKind)
MAX_URL = 2000
SECRET_PREFIX = "whsec_"


class WebhookError(ValueError):
    """A webhook request is wrong; the message names the field."""


class DeliveryNotFound(WebhookError):
    """No delivery or endpoint has that id."""


class NotReplayable(WebhookError):
    """Only a delivery that failed for good can be replayed."""


@dataclass(frozen=True)
class WebhookSettings:
    """How the worker sends: retry window, backoff, timeout and batch sizes."""

    retry_for_seconds: float = 3 * 86_400
    first_retry_seconds: float = 10.0
    max_retry_seconds: float = 3_600.0
    timeout_seconds: float = 10.0
    batch_size: int = 100
    concurrency: int = 4

    def __post_init__(self) -> None:
        for name in ("retry_for_seconds", "first_retry_seconds", "max_retry_seconds"):
            if not getattr(self, name) > 0:
                raise WebhookError(f"{name}: must be a positive number of seconds")
        if not 0 < self.timeout_seconds <= 120:
            raise WebhookError("timeout_seconds: must be within (0, 120] seconds")
        if not 1 <= self.batch_size <= 10_000:
            raise WebhookError("batch_size: must be between 1 and 10000")
        if not 1 <= self.concurrency <= 64:
            raise WebhookError("concurrency: must be between 1 and 64")


@dataclass(frozen=True)
class DeliveryJob:
    """One attempt to make: everything the sender needs, read before the transaction ends."""

    delivery_pk: int
    delivery_id: str
    attempt: int
    # The attempt's number since the delivery was made or last replayed: what the backoff counts.
    attempt_since_replay: int
    url: str
    secret: str
    kind: str
    event_id: str
    change_id: int
    occurred_at: datetime
    payload: dict[str, object]


def parse_events(text: str) -> list[str]:
    """`delivered,corrected,rewarded` as a checked list of event kinds."""
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in EVENT_KINDS]
    if not kinds or unknown:
        raise WebhookError(
            f"events: give a comma-separated list of {', '.join(EVENT_KINDS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return list(dict.fromkeys(kinds))


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host, or a WebhookError naming the field."""
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        raise WebhookError(f"url: at most {MAX_URL} characters, no spaces")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("url: must be an absolute http:// or https:// URL with a host")
    return url


def add_endpoint(
    session: Session,
    url: str,
    events: list[str],
    created_by: str,
    description: str = "",
    now: datetime | None = None,
) -> WebhookEndpoint:
    """Register an endpoint with its own new secret (shown to the client once). Flushes."""
    kinds = parse_events(",".join(events))
    if len(description) > 200:
        raise WebhookError("description: at most 200 characters")
    endpoint = WebhookEndpoint(
        url=check_url(url),
        events=kinds,
        secret=SECRET_PREFIX + secrets.token_urlsafe(32),
        description=description,
        active=True,
        created_by=created_by[:80],
        created_at=now or utcnow(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every endpoint, active ones first, newest first."""
    return list(
        session.scalars(
            select(WebhookEndpoint).order_by(
                WebhookEndpoint.active.desc(), WebhookEndpoint.id.desc()
            )
        )
    )


def deactivate_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """Stop sending to an endpoint (its log stays). Flushes."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise DeliveryNotFound(f"endpoint: no webhook endpoint {endpoint_id}")
    endpoint.active = False
    session.flush()
    return endpoint


@dataclass(frozen=True)
class FanOut:
    """What one fan-out did with the outbox."""

    changes: int  # rows fanned out to their endpoints (at most the batch size)
    deliveries: int  # deliveries created for them
    skipped: int  # rows no active endpoint subscribed to at their time, marked dispatched at once


def fan_out(session: Session, now: datetime, settings: WebhookSettings) -> FanOut:
    """One delivery per (new outbox row, subscribed endpoint), oldest rows first.

    Rows that no active endpoint wants (a kind nobody subscribes to, or made before every
    endpoint subscribed to their kind was registered) are marked dispatched by one UPDATE
    first, so a backlog from before the first endpoint costs one statement, not a pass per
    batch. Then up to a batch of the wanted rows get their deliveries.
    """
    active = list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active)))
    wanted = _wanted(active)
    skipped = _skip_unwanted(session, wanted, now)
    query = (
        select(EventChange)
        .where(EventChange.dispatched_at.is_(None), wanted)
        .order_by(EventChange.id)
        .limit(settings.batch_size)
    )
    if is_postgresql(session):
        # Two workers never fan out the same row; the unique key would refuse it anyway.
        query = query.with_for_update(skip_locked=True)
    changes = list(session.scalars(query))
    created = 0
    for change in changes:
        for endpoint in active:
            # An endpoint hears about changes made after it was registered.
            if change.kind not in endpoint.events or change.created_at < endpoint.created_at:
                continue
            session.add(
                WebhookDelivery(
                    delivery_id=uuid.uuid4().hex,
                    endpoint_id=endpoint.id,
                    change_id=change.id,
                    status=WebhookStatus.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    give_up_at=change.created_at + timedelta(seconds=settings.retry_for_seconds),
                    created_at=now,
                )
            )
            created += 1
        change.dispatched_at = now
    session.flush()
    return FanOut(len(changes), created, skipped)


def _wanted(active: list[WebhookEndpoint]) -> ColumnElement[bool]:
    """Outbox rows some active endpoint is owed: its kind, made at or after its registration."""
    since: dict[str, datetime] = {}
    for endpoint in active:
        for kind in endpoint.events:
            since[kind] = min(since.get(kind, endpoint.created_at), endpoint.created_at)
    return or_(
        false(),
        *(
            and_(EventChange.kind == kind, EventChange.created_at >= first)
            for kind, first in sorted(since.items())
        ),
    )


def _skip_unwanted(session: Session, wanted: ColumnElement[bool], now: datetime) -> int:
    """Mark dispatched, in one UPDATE, every undispatched row no active endpoint wants."""
    unwanted = select(EventChange.id).where(EventChange.dispatched_at.is_(None), not_(wanted))
    if is_postgresql(session):
        # Rows another worker is fanning out are its business; never wait for its locks.
        unwanted = unwanted.with_for_update(skip_locked=True)
    done = session.execute(
        update(EventChange)
        .where(EventChange.id.in_(unwanted.scalar_subquery()))
        .values(dispatched_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def claim_due(session: Session, now: datetime, settings: WebhookSettings) -> list[DeliveryJob]:
    """Take the deliveries due now; each is leased past its timeout so no other worker sends it."""
    query = (
        select(WebhookDelivery, WebhookEndpoint, EventChange)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(EventChange, EventChange.id == WebhookDelivery.change_id)
        .where(
            WebhookDelivery.status == WebhookStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.active,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(settings.batch_size)
    )
    if is_postgresql(session):
        query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
    lease = now + timedelta(seconds=settings.timeout_seconds + 30)
    jobs = []
    for delivery, endpoint, change in session.execute(query):
        delivery.attempts += 1
        delivery.next_attempt_at = lease
        jobs.append(
            DeliveryJob(
                delivery_pk=delivery.id,
                delivery_id=delivery.delivery_id,
                attempt=delivery.attempts,
                attempt_since_replay=delivery.attempts - delivery.attempts_before_replay,
                url=endpoint.url,
                secret=endpoint.secret,
                kind=change.kind,
                event_id=change.event_id,
                change_id=change.id,
                occurred_at=change.created_at,
                payload=dict(change.payload),
            )
        )
    session.flush()
    return jobs


def record_attempt(
    session: Session,
    job: DeliveryJob,
    started_at: datetime,
    duration_ms: float,
    http_status: int | None,
    error: str,
    retry_in_seconds: float,
) -> str:
    """Log one attempt and move the delivery on: delivered, retried later, or failed."""
    delivery = session.get(WebhookDelivery, job.delivery_pk)
    assert delivery is not None
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempt=job.attempt,
            started_at=started_at,
            duration_ms=duration_ms,
            http_status=http_status,
            error=error[:500],
        )
    )
    finished = started_at + timedelta(milliseconds=duration_ms)
    if not error:
        delivery.status, delivery.delivered_at = WebhookStatus.DELIVERED, finished
        delivery.next_attempt_at, delivery.last_error = None, ""
    else:
        delivery.last_error = error[:500]
        retry_at = finished + timedelta(seconds=retry_in_seconds)
        if retry_at > delivery.give_up_at:
            delivery.status, delivery.next_attempt_at = WebhookStatus.FAILED, None
        else:
            delivery.next_attempt_at = retry_at
    session.flush()
    return delivery.status


def replay(session: Session, delivery_id: str, settings: WebhookSettings, now: datetime) -> None:
    """Send a failed delivery again, same delivery id, with a fresh retry window and backoff
    (counted from its first attempt after the replay). Flushes."""
    delivery = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.delivery_id == delivery_id)
    ).first()
    if delivery is None:
        raise DeliveryNotFound(f"delivery: no webhook delivery {delivery_id!r}")
    done = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id, WebhookDelivery.status == WebhookStatus.FAILED)
        .values(
            status=WebhookStatus.PENDING,
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=settings.retry_for_seconds),
            attempts_before_replay=WebhookDelivery.attempts,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise NotReplayable(
            f"delivery: {delivery_id} is {delivery.status}; only a failed delivery is replayed"
        )
    session.expire(delivery)


def delivery_log(
    session: Session, limit: int = 200, status: str | None = None
) -> list[tuple[WebhookDelivery, WebhookEndpoint, EventChange]]:
    """The newest deliveries with their endpoint and change, optionally one status only."""
    query = (
        select(WebhookDelivery, WebhookEndpoint, EventChange)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(EventChange, EventChange.id == WebhookDelivery.change_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(WebhookDelivery.status == status)
    return list(session.execute(query))


def attempts_of(session: Session, delivery_pks: list[int]) -> dict[int, list[WebhookAttempt]]:
    """Every attempt of these deliveries, oldest first, by delivery."""
    found: dict[int, list[WebhookAttempt]] = {pk: [] for pk in delivery_pks}
    if not delivery_pks:
        return found
    for attempt in session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_pks))
        .order_by(WebhookAttempt.id)
    ):
        found[attempt.delivery_id].append(attempt)
    return found
