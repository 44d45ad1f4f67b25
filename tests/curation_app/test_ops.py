"""/healthz, /readyz, /metrics and the request id, in one process (gunicorn: test_production)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from bandit.db import migrate
from bandit.engine.risk_control import upper_bound
from curation_app import create_app
from curation_app.logs import REQUEST_ID_HEADER, JsonFormatter
from tests.api_support import DELIVER_AT_ONCE, activate_config, ranked
from tests.conftest import POSTGRES_ADMIN_URL, DemoCatalog

OLD_REVISION = "0003_quality"


def _samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_healthz_answers_without_touching_the_database() -> None:
    app = create_app(
        {"TESTING": True, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ready", "model_version": 0}


def test_readyz_is_503_when_the_database_is_down() -> None:
    # Port 1 on the loopback: nothing listens there, so every connection is refused.
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2",
        }
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    document = response.get_json()
    assert document["reason"] == "database_unreachable" and document["detail"]


@pytest.fixture(params=["sqlite", "postgresql"])
def behind_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A database migrated only up to an older revision."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'behind.sqlite3'}"
        migrate.upgrade(url, OLD_REVISION)
        yield url
        return
    name = f"hitl_behind_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = re.sub(r"/[^/]*$", f"/{name}", POSTGRES_ADMIN_URL)
    migrate.upgrade(url, OLD_REVISION)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_readyz_is_503_with_migrations_behind(behind_url: str) -> None:
    app = create_app({"TESTING": True, "DATABASE_URL": behind_url})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    document = response.get_json()
    assert document["reason"] == "migrations_behind"
    assert OLD_REVISION in document["detail"] and "head is" in document["detail"]
    app.extensions["hitl.session_factory"].kw["bind"].dispose()


def test_metrics_move_with_the_requests_sent(
    client: FlaskClient,
    auth_headers: dict[str, str],
    demo_catalog: DemoCatalog,
    session_factory: sessionmaker[Session],
) -> None:
    activate_config(session_factory, **DELIVER_AT_ONCE)
    before = _samples(client)
    for customer in demo_catalog.customers[:3]:
        ranked(client, auth_headers, dict(customer))
    after = _samples(client)
    route = {"route": "review_after", "api": "v1"}
    assert _value(after, "hitl_decisions_total", **route) - _value(
        before, "hitl_decisions_total", **route
    ) == pytest.approx(3)
    timed = {"endpoint": "api.rank", "method": "POST"}
    assert _value(after, "hitl_http_request_duration_seconds_count", **timed) - _value(
        before, "hitl_http_request_duration_seconds_count", **timed
    ) == pytest.approx(3)
    assert _value(after, "hitl_http_requests_total", status="201", **timed) >= 3
    # Review-after decisions wait for a curator's verification: the queue gauge counts them.
    assert _value(after, "hitl_queue_depth") == _value(before, "hitl_queue_depth") + 3
    assert _value(after, "hitl_queue_oldest_wait_seconds") >= 0
    assert ("hitl_model_version_served", ()) in after
    assert _value(after, "hitl_model_version_latest") == 0
    assert _value(after, "hitl_learner_lag_seconds", signal="verdict") == 0
    assert _value(after, "hitl_review_after_checks") == 0
    assert _value(after, "hitl_review_after_override_bound") == 1.0  # no verification: no trust
    assert _value(after, "hitl_auto_override_bound") == 1.0  # no threshold tested either
    assert _value(after, "hitl_risk_controlled") == 0.0


def test_override_bound_tightens_with_evidence() -> None:
    assert upper_bound(0, 0, 0.9) == 1.0
    few, many = upper_bound(1, 20, 0.9), upper_bound(10, 400, 0.9)
    assert 1 / 20 < few < 1.0 and 10 / 400 < many < few
    # Clopper-Pearson with no overturn in n: 1 - (1 - level)^(1/n).
    assert upper_bound(0, 50, 0.9) == pytest.approx(1 - 0.1 ** (1 / 50))


def test_request_id_is_returned_and_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="hitl.request"):
        fresh = client.get("/healthz")
        given = client.get("/healthz", headers={REQUEST_ID_HEADER: "trace-42.a"})
        refused = client.get("/healthz", headers={REQUEST_ID_HEADER: "bad id with spaces <script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers[REQUEST_ID_HEADER])
    assert given.headers[REQUEST_ID_HEADER] == "trace-42.a"
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers[REQUEST_ID_HEADER])
    records = [r for r in caplog.records if r.name == "hitl.request"]
    assert [r.status for r in records] == [200, 200, 200]  # type: ignore[attr-defined]
    assert records[1].path == "/healthz"  # type: ignore[attr-defined]


def test_json_formatter_writes_one_object_per_line_with_the_request_id(
    client: FlaskClient,
) -> None:
    formatter = JsonFormatter()
    with client.application.test_request_context("/x", headers={REQUEST_ID_HEADER: "abc-1"}):
        client.application.preprocess_request()
        record = logging.LogRecord(
            "hitl.test", logging.INFO, __file__, 1, "hello %s", ("you",), None
        )
        record.status = 201
        line = formatter.format(record)
    document = json.loads(line)
    assert "\n" not in line
    assert document["message"] == "hello you" and document["request_id"] == "abc-1"
    assert document["status"] == 201 and document["level"] == "info"
