"""The admins' webhook page and the `hitl webhook` commands: add, log, replay, bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import (
    AuditEntry,
    Decision,
    EventChange,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from bandit.services import webhooks
from curation_app.cli import main
from tests.api_support import ranked, snapshot
from tests.conftest import DemoCatalog
from tests.curation_app.test_console import csrf_token, login
from tests.curation_app.test_settings import admin  # noqa: F401 - the signed-in admin fixture

PAGE = "/settings/webhooks"


@pytest.fixture
def failed_delivery_id(
    session_factory: sessionmaker[Session],
    client: FlaskClient,
    auth_headers: dict[str, str],
    demo_catalog: DemoCatalog,
) -> str:
    """A ranked decision whose stored delivery ran out of retries (to a URL nobody listens on)."""
    ranked(client, auth_headers, dict(demo_catalog.customers[0]))
    now = utcnow()
    with session_factory() as session:
        endpoint = webhooks.add_endpoint(session, "http://127.0.0.1:9/x", ["delivered"], "t")
        decision = session.scalars(select(Decision)).first()
        assert decision is not None
        change = EventChange(decision_id=decision.id, event_id=decision.event_id,
                             kind="delivered", payload={}, created_at=now)  # fmt: skip
        session.add(change)
        session.flush()
        delivery = WebhookDelivery(
            delivery_id="d-failed-1", endpoint_id=endpoint.id, change_id=change.id,
            status="failed", attempts=7, give_up_at=now - timedelta(seconds=1),
            last_error="ConnectionRefusedError", created_at=now,
        )  # fmt: skip
        session.add(delivery)
        session.commit()
    return "d-failed-1"


def test_an_admin_adds_an_endpoint_sees_its_secret_once_and_the_log(
    admin: FlaskClient,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    page = admin.get(PAGE).get_data(as_text=True)
    response = admin.post(PAGE, data={
        "csrf_token": csrf_token(page), "url": "https://client.example/hooks",
        "events": ["delivered", "corrected"], "description": "shop",
    })  # fmt: skip
    assert response.status_code == 201
    with session_factory() as session:
        endpoint = session.scalars(select(WebhookEndpoint)).one()
        assert endpoint.events == ["delivered", "corrected"]
        actions = session.scalars(select(AuditEntry.action)).all()
    assert endpoint.secret in response.get_data(as_text=True)
    assert endpoint.secret not in admin.get(PAGE).get_data(as_text=True)
    assert "webhook.add" in actions


def test_a_bad_endpoint_is_refused_and_stores_nothing(
    admin: FlaskClient,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    page = admin.get(PAGE).get_data(as_text=True)
    before = snapshot(session_factory)
    response = admin.post(PAGE, data={"csrf_token": csrf_token(page), "url": "ftp://x/y",
                                      "events": ["delivered"]})  # fmt: skip
    assert response.status_code == 400 and "url:" in response.get_data(as_text=True)
    assert snapshot(session_factory) == before


def test_an_admin_replays_a_failed_delivery_from_the_log(
    admin: FlaskClient,  # noqa: F811
    session_factory: sessionmaker[Session],
    failed_delivery_id: str,
) -> None:
    delivery_id = failed_delivery_id
    page = admin.get(PAGE + "?status=failed").get_data(as_text=True)
    assert delivery_id in page and "Replay" in page
    response = admin.post(f"{PAGE}/deliveries/{delivery_id}/replay",
                          data={"csrf_token": csrf_token(page)})  # fmt: skip
    assert response.status_code == 302
    with session_factory() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.status, delivery.delivery_id) == ("pending", delivery_id)


def test_curators_cannot_open_the_webhook_page(
    client: FlaskClient, curator_account: tuple[str, str]
) -> None:
    login(client, *curator_account)
    assert client.get(PAGE).status_code == 403


def test_the_cli_adds_lists_and_refuses_bad_input(database_url: str) -> None:
    runner = CliRunner()
    url_option = ["--database-url", database_url]
    added = runner.invoke(main, ["webhook", "add", "https://client.example/h", "--events",
                                 "delivered,corrected,rewarded", *url_option])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "whsec_" in added.output
    listed = runner.invoke(main, ["webhook", "list", *url_option])
    assert "https://client.example/h" in listed.output and "delivered,corrected,rewarded" in (
        listed.output
    )
    bad = runner.invoke(main, ["webhook", "add", "https://x.example", "--events", "shipped",
                               *url_option])  # fmt: skip
    assert bad.exit_code == 1 and "events:" in bad.output and "shipped" in bad.output
    missing = runner.invoke(main, ["webhook", "replay", "nope", *url_option])
    assert missing.exit_code == 1 and "delivery:" in missing.output
    once = runner.invoke(main, ["webhooks", *url_option])
    assert once.exit_code == 0 and "0 attempts" in once.output


def test_the_cli_log_filters_by_the_documented_lowercase_status(
    database_url: str, failed_delivery_id: str
) -> None:
    delivery_id = failed_delivery_id
    runner = CliRunner()
    url_option = ["--database-url", database_url]
    failed = runner.invoke(main, ["webhook", "log", "--status", "failed", *url_option])
    assert failed.exit_code == 0, failed.output
    assert delivery_id in failed.output
    delivered = runner.invoke(main, ["webhook", "log", "--status", "delivered", *url_option])
    assert delivered.exit_code == 0, delivered.output
    assert delivery_id not in delivered.output


@pytest.mark.parametrize("events", ["", ",", "delivered,,nope"])
def test_event_lists_are_checked(events: str) -> None:
    with pytest.raises(webhooks.WebhookError, match="^events:"):
        webhooks.parse_events(events)


def test_the_watching_sender_touches_its_heartbeat_and_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    heartbeat = tmp_path / "webhooks.alive"
    hitl = Path(sys.executable).with_name("hitl")
    sender = subprocess.Popen(
        [str(hitl), "webhooks", "--watch", "--interval", "0.05", "--heartbeat", str(heartbeat),
         "--database-url", database_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not heartbeat.exists() and time.monotonic() < deadline and sender.poll() is None:
            time.sleep(0.05)
        assert heartbeat.exists(), "the sender never touched its heartbeat"
    finally:
        sender.send_signal(signal.SIGTERM)
        output, _ = sender.communicate(timeout=30)
    assert sender.returncode == 0, output
    assert b"webhooks worker: stopped" in output
