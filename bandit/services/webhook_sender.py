"""The webhook worker's pass: fan out the outbox, send what is due, log every attempt.

Sending happens outside any database transaction, so a slow or dead receiver holds no lock
and never slows rank or the console; it only delays its own deliveries. Each request carries

- ``Hitl-Delivery-Id``: the same for every retry and replay of one delivery (deduplicate on it);
- ``Hitl-Event-Type``: delivered, corrected, reinstated or rewarded;
- ``Hitl-Timestamp``: Unix seconds when this attempt was signed;
- ``Hitl-Signature``: ``v1=`` + hex HMAC-SHA256 of ``{timestamp}.{body}`` with the endpoint's
  secret (verify it, and reject old timestamps, before trusting the body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import utcnow
from bandit.engine.vocabulary import WebhookStatus
from bandit.services.webhooks import (
    DeliveryJob,
    WebhookSettings,
    claim_due,
    fan_out,
    record_attempt,
)

SIGNATURE_VERSION = "v1"
USER_AGENT = "hitl-webhooks/1"


@dataclass(frozen=True)
class SendResult:
    """What one HTTP attempt came back with (error is empty on a 2xx answer)."""

    http_status: int | None
    error: str


@dataclass(frozen=True)
class PassReport:
    """What one worker pass did."""

    fanned_out: int
    attempted: int
    delivered: int
    retrying: int
    failed: int
    # Outbox rows fanned out, and rows no endpoint wanted (marked dispatched in bulk).
    changes: int = 0
    skipped: int = 0

    def had_more(self, batch_size: int) -> bool:
        """Whether this pass filled a batch (fan-out or sending), so more may be waiting."""
        return self.changes >= batch_size or self.attempted >= batch_size


Poster = Callable[[str, bytes, dict[str, str], float], SendResult]


def body_of(job: DeliveryJob) -> bytes:
    """The JSON body: the same bytes for every attempt of a delivery."""
    document = {
        "delivery_id": job.delivery_id,
        "type": job.kind,
        "event_id": job.event_id,
        "change_id": job.change_id,
        "occurred_at": job.occurred_at.isoformat(),
        "data": job.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``{timestamp}.{body}``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def headers_for(job: DeliveryJob, body: bytes, timestamp: int) -> dict[str, str]:
    """The signed headers of one attempt."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Hitl-Delivery-Id": job.delivery_id,
        "Hitl-Event-Type": job.kind,
        "Hitl-Timestamp": str(timestamp),
        "Hitl-Signature": signature(job.secret, timestamp, body),
    }


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> SendResult:
    """POST with a timeout; any 2xx is success, anything else (or no answer) an error."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(4096)
            return SendResult(response.status, "")
    except urllib.error.HTTPError as error:
        return SendResult(error.code, f"HTTP {error.code} {error.reason}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return SendResult(None, f"{type(error).__name__}: {reason}"[:500])


def retry_delay(attempt: int, settings: WebhookSettings, rng: np.random.Generator) -> float:
    """Exponential backoff with jitter: first x 2^(attempt-1), capped, times U(0.5, 1).

    `attempt` counts from the delivery's creation or last replay. The exponent stops where the
    cap is reached, so no number of attempts overflows a float.
    """
    first, cap = settings.first_retry_seconds, settings.max_retry_seconds
    doublings = max(attempt - 1, 0)
    if doublings >= math.log2(cap) - math.log2(first):
        ceiling = cap
    else:
        ceiling = math.ldexp(first, doublings)  # below the cap, so finite
    return float(ceiling * rng.uniform(0.5, 1.0))


def send_due_webhooks(
    session_factory: sessionmaker[Session],
    now: datetime | None = None,
    settings: WebhookSettings | None = None,
    rng: np.random.Generator | None = None,
    post: Poster = http_post,
) -> PassReport:
    """One pass for a worker loop: fan out new changes, send due deliveries, log attempts.

    Each step is its own short transaction; the HTTP requests run between them.
    """
    settings = settings or WebhookSettings()
    rng = rng if rng is not None else np.random.default_rng()
    now = now or utcnow()
    with session_factory() as session:
        fanned = fan_out(session, now, settings)
        session.commit()
    with session_factory() as session:
        jobs = claim_due(session, now, settings)
        session.commit()
    if not jobs:
        return PassReport(fanned.deliveries, 0, 0, 0, 0, fanned.changes, fanned.skipped)
    with ThreadPoolExecutor(max_workers=min(settings.concurrency, len(jobs))) as pool:
        sent = list(pool.map(lambda job: _attempt(job, settings, post), jobs))
    counts = {status: 0 for status in WebhookStatus}
    with session_factory() as session:
        for job, (started, duration_ms, result) in zip(jobs, sent, strict=True):
            status = record_attempt(
                session,
                job,
                started,
                duration_ms,
                result.http_status,
                result.error,
                retry_delay(job.attempt_since_replay, settings, rng),
            )
            counts[WebhookStatus(status)] += 1
        session.commit()
    return PassReport(
        fanned.deliveries,
        len(jobs),
        counts[WebhookStatus.DELIVERED],
        counts[WebhookStatus.PENDING],
        counts[WebhookStatus.FAILED],
        fanned.changes,
        fanned.skipped,
    )


def _attempt(
    job: DeliveryJob, settings: WebhookSettings, post: Poster
) -> tuple[datetime, float, SendResult]:
    body = body_of(job)
    started = utcnow()
    clock = time.perf_counter()
    try:
        result = post(
            job.url, body, headers_for(job, body, int(time.time())), settings.timeout_seconds
        )
    except Exception as error:  # noqa: BLE001 - a broken receiver must not stop the pass
        result = SendResult(None, f"{type(error).__name__}: {error}"[:500])
    if result.error == "" and not (result.http_status and 200 <= result.http_status < 300):
        result = SendResult(result.http_status, f"HTTP {result.http_status}")
    return started, (time.perf_counter() - clock) * 1000, result


def run_worker(
    session_factory: sessionmaker[Session],
    settings: WebhookSettings,
    interval_seconds: float,
    should_stop: Callable[[], bool],
    upkeep: Callable[[Session], Any] | None = None,
    on_pass: Callable[[PassReport], None] | None = None,
) -> None:
    """Loop until `should_stop()`: queue upkeep (fallbacks, SLAs), then one webhook pass.

    It pauses `interval_seconds` only after a pass that filled no batch, neither of outbox
    rows to fan out nor of deliveries to send.
    """
    rng = np.random.default_rng()
    while not should_stop():
        if upkeep is not None:
            # The system's own action, committed on its own before any sending.
            with session_factory.begin() as session:
                upkeep(session)
        report = send_due_webhooks(session_factory, settings=settings, rng=rng)
        if on_pass is not None:
            on_pass(report)
        if not report.had_more(settings.batch_size):
            time.sleep(interval_seconds)
