"""The production layout for real: `hitl serve` (gunicorn) and `hitl learn --watch` as separate
processes on PostgreSQL. A ranked and rewarded event reaches a new served model version, and
SIGTERM stops both without a half-written learning pass."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select, text

from bandit.db import migrate
from bandit.db.models import CuratorAction, ModelVersion, Outcome
from bandit.db.session import make_engine, make_session_factory
from bandit.services import accounts
from tests.api_support import DELIVER_AT_ONCE, activate_config
from tests.conftest import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.slow

HITL = str(Path(sys.executable).with_name("hitl"))
# The machine may be loaded by other test runs: starting gunicorn can take a while.
START_SECONDS = 180
LEARN_SECONDS = 60
ACTIONS = [
    {"id": f"dish-{i}", "features": [{"taste": t, "spice": i % 3}]}
    for i, t in enumerate(["sweet", "salty", "sour", "bitter", "umami"])
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"hitl_prod_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = re.sub(r"/[^/]*$", f"/{name}", POSTGRES_ADMIN_URL)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Answer:
    """A response: status and body text."""

    def __init__(self, status: int, text: str) -> None:
        self.status_code, self.text = status, text

    def json(self) -> Any:
        return json.loads(self.text)


def _call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read().decode())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(check: Any, seconds: float, what: str, processes: list[subprocess.Popen]) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in processes:
            assert process.poll() is None, f"{process.args!r} exited early while waiting for {what}"
        try:
            result = check()
        except OSError:  # not listening yet
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def _stop(process: subprocess.Popen, log: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(
            f"{process.args!r} ignored SIGTERM:\n{log.read_text()[-3000:]}"
        ) from None


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_gunicorn_and_learner_processes_serve_learn_and_stop_cleanly(
    pg_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    activate_config(sessions, **DELIVER_AT_ONCE)
    with sessions() as session:
        token = accounts.create_token(session, "prod-test")
        session.commit()
    port = _free_port()
    env = {
        **os.environ,
        "HITL_DATABASE_URL": pg_url,
        "HITL_SECRET_KEY": uuid.uuid4().hex,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    web_log, learner_log = tmp_path / "web.log", tmp_path / "learner.log"
    with web_log.open("w") as web_out, learner_log.open("w") as learner_out:
        web = subprocess.Popen(
            [HITL, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=web_out,
            stderr=subprocess.STDOUT,
        )
        learner = subprocess.Popen(
            [HITL, "learn", "--watch", "--every", "0.5"],
            env=env,
            stdout=learner_out,
            stderr=subprocess.STDOUT,
        )
        running = [web, learner]
        try:
            base = f"http://127.0.0.1:{port}"
            key = {"Ocp-Apim-Subscription-Key": token}
            _wait_for(
                lambda: _call("GET", f"{base}/readyz").status_code == 200,
                START_SECONDS,
                "gunicorn to be ready",
                running,
            )
            for i in range(6):
                rank = _call(
                    "POST",
                    f"{base}/personalizer/v1.0/rank",
                    {"contextFeatures": [{"hour": i}], "actions": ACTIONS, "eventId": f"e{i}"},
                    key,
                )
                assert rank.status_code == 201, rank.text
                reward = _call(
                    "POST",
                    f"{base}/personalizer/v1.0/events/e{i}/reward",
                    {"value": float(i % 2)},
                    key,
                )
                assert reward.status_code == 204, reward.text
            rewarded = time.monotonic()

            def served_version() -> int:
                # Each worker reports the version it serves: ask until one has the new model.
                return int(_call("GET", f"{base}/readyz").json()["model_version"])

            _wait_for(lambda: served_version() >= 1, LEARN_SECONDS, "a new model", running)
            new_model_seconds = time.monotonic() - rewarded
            metrics = _call("GET", f"{base}/metrics").text
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(metrics)
                for s in family.samples
            }
            assert (
                samples[
                    ("hitl_decisions_total", (("api", "personalizer"), ("route", "review_after")))
                ]
                == 6
            )
            assert samples[("hitl_model_version_latest", ())] >= 1
            # A last reward just before the stop, so a pass is likely in progress at SIGTERM.
            _call(
                "POST",
                f"{base}/personalizer/v1.0/rank",
                {"contextFeatures": [{"hour": 9}], "actions": ACTIONS, "eventId": "last"},
                key,
            )
            _call(
                "POST",
                f"{base}/personalizer/v1.0/events/last/reward",
                {"value": 1.0},
                key,
            )
        finally:
            codes = {"learner": _stop(learner, learner_log), "web": _stop(web, web_log)}
    assert codes == {"learner": 0, "web": 0}, (
        web_log.read_text()[-2000:],
        learner_log.read_text()[-2000:],
    )
    print(f"new model served {new_model_seconds:.1f}s after the rewards")
    logged = _json_lines(learner_log)
    assert any(line["message"] == "learner stopped" for line in logged)
    committed = {
        line["learned_at"]: line["model_version"]
        for line in logged
        if line["message"] == "pass committed"
    }
    with sessions() as session:
        versions = set(session.scalars(select(ModelVersion.version)))
        learned_at = {
            moment.isoformat()
            for model in (CuratorAction, Outcome)
            for moment in session.scalars(
                select(model.learned_at).where(model.learned_at.is_not(None)).distinct()
            )
            if moment is not None
        }
        total = session.scalars(
            select(ModelVersion.examples_total).order_by(ModelVersion.version.desc())
        ).first()
        learned_sum = sum(session.scalars(select(ModelVersion.examples_learned)))
    # Every row marked learned belongs to a pass that committed, with its model version saved.
    assert learned_at <= set(committed)
    assert {v for v in committed.values() if v is not None} <= versions
    assert total == learned_sum  # no version saved without its predecessor's examples
    engine.dispose()
