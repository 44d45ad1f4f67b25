"""kill -9 of the whole gunicorn while clients rank, reward and review with retries.

Clients retry every request until it is acknowledged (a 2xx answer), with the same event id,
the same reward (or batch of rewards) and the same lease, as a real client would. The server
(master and workers, one process group) is SIGKILLed several times and restarted. Afterwards
every acknowledged decision, reward and verdict exists exactly once, and each action's audit
entry exists exactly when its action does: an action and its audit entry commit together or
not at all.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db import migrate
from bandit.db.models import AuditEntry, CuratorAction, Decision, Outcome, ReviewTask
from bandit.db.session import make_engine, make_session_factory
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import TaskStatus
from bandit.services import accounts, catalog_store, configs
from sim.demo_data import generate
from tests.conftest import POSTGRES_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]
KILLS = 4
SECONDS_BETWEEN_KILLS = 2.5
START_TIMEOUT_SECONDS = 60
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """gunicorn in its own process group, so one SIGKILL takes master and workers at once."""

    def __init__(self, url: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.environment = {
            **os.environ,
            "HITL_DATABASE_URL": url,
            "HITL_SECURE_COOKIES": "0",
            "HITL_SECRET_KEY": "crash-test",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4",
            "--log-level", "critical", "curation_app:create_app()",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.environment, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/api/v1/openapi.json", timeout=2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


def _post(base: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def until_acknowledged(
    base: str, path: str, token: str, body: dict[str, Any], stop: threading.Event
) -> tuple[int, Any] | None:
    """Retry the same request until a 2xx or 4xx answer; None when told to stop first."""
    while not stop.is_set():
        try:
            status, document = _post(base, path, token, body)
        except (OSError, http.client.HTTPException, json.JSONDecodeError):
            # The server is down, or was killed mid-answer (a cut body is IncompleteRead,
            # an HTTPException and not an OSError): retry the same request.
            time.sleep(0.05)
            continue
        if status < 500:
            return status, document
        time.sleep(0.05)
    return None


@pytest.fixture
def crash_database() -> Iterator[str]:
    """A scratch PostgreSQL database of its own, dropped afterwards."""
    name = f"hitl_crash_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _prepare(sessions: sessionmaker[Session]) -> tuple[str, str, list[dict[str, Any]]]:
    world = generate(items=300, customers=30, seed=5)
    with sessions() as session:
        catalog_store.upsert_items(session, catalog_store.rows_from_frame(world.catalog))
        # Every slate goes out at once (so it can be rewarded) and a curator verifies it after.
        configs.save_config(
            session,
            PolicyConfig(routing_mode="review_after"),
            created_by="test",
            activate=True,
        )
        accounts.add_curator(session, "crash-curator", "long-enough-pw")
        client = accounts.create_token(session, "crash-client")
        curator = accounts.create_token(session, "crash-labeler", curator_username="crash-curator")
        session.commit()
    return client, curator, world.customers


def test_acknowledged_actions_survive_kill_9_exactly_once(crash_database: str) -> None:
    engine = make_engine(crash_database)
    sessions = make_session_factory(engine)
    client_token, curator_token, customers = _prepare(sessions)
    server = Server(crash_database)
    server.start()
    stop = threading.Event()
    ranked: list[str] = []
    rewarded: list[tuple[str, str]] = []
    reviewed: list[int] = []
    errors: list[str] = []

    def reward_batch(batch: list[dict[str, Any]]) -> None:
        got = until_acknowledged(
            server.base, "/api/v1/rewards", client_token, {"rewards": batch}, stop
        )
        if got is not None and got[0] == 202:
            rewarded.extend((entry["event_id"], entry["item_id"]) for entry in batch)
        elif got is not None:
            errors.append(f"reward batch: {got}")

    def ranker() -> None:
        step = 0
        # Second items are rewarded in batches of four events, retried whole like the rest.
        batch: list[dict[str, Any]] = []
        while not stop.is_set():
            event_id = uuid.uuid4().hex
            body = {"event_id": event_id, "context": dict(customers[step % len(customers)])}
            answer = until_acknowledged(server.base, "/api/v1/rank", client_token, body, stop)
            step += 1
            if answer is None:
                return
            if answer[0] not in (200, 201):
                errors.append(f"rank: {answer}")
                continue
            ranked.append(event_id)
            if answer[1]["status"] == "delivered":
                item = answer[1]["slate"][0]["item_id"]
                reward = {"value": 1.0, "item_id": item}
                path = f"/api/v1/events/{event_id}/reward"
                got = until_acknowledged(server.base, path, client_token, reward, stop)
                if got is not None and got[0] == 202:
                    rewarded.append((event_id, item))
                elif got is not None:
                    errors.append(f"reward: {got}")
                second = answer[1]["slate"][1]["item_id"]
                batch.append({"event_id": event_id, "item_id": second, "value": 0.0})
                if len(batch) == 4:
                    reward_batch(batch)
                    batch = []

    def reviewer() -> None:
        while not stop.is_set():
            answer = until_acknowledged(
                server.base, "/api/v1/review/claim", curator_token, {}, stop
            )
            if answer is None:
                return
            task = answer[1].get("task")
            if task is None:
                time.sleep(0.05)
                continue
            body = {
                "lease_token": task["lease_token"],
                "verdicts": [{"position": p["position"], "verdict": "keep"} for p in task["slate"]],
                "seconds_spent": 2.0,
            }
            path = f"/api/v1/review/{task['task_id']}"
            got = until_acknowledged(server.base, path, curator_token, body, stop)
            if got is not None and got[0] == 200:
                reviewed.append(task["task_id"])
            elif got is not None:
                errors.append(f"submit: {got}")

    workers = [threading.Thread(target=ranker), threading.Thread(target=ranker)]
    workers.append(threading.Thread(target=reviewer))
    for worker in workers:
        worker.start()
    try:
        for _ in range(KILLS):
            time.sleep(SECONDS_BETWEEN_KILLS)
            server.kill()
            server.start()
        time.sleep(SECONDS_BETWEEN_KILLS)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
        server.stop()

    with sessions() as session:
        decisions = dict(
            session.execute(
                select(Decision.event_id, func.count()).group_by(Decision.event_id)
            ).all()
        )
        outcomes = session.execute(
            select(Decision.event_id, Outcome.item_key, func.count())
            .join(Outcome, Outcome.decision_id == Decision.id)
            .group_by(Decision.event_id, Outcome.item_key)
        ).all()
        done_tasks = set(
            session.scalars(select(ReviewTask.id).where(ReviewTask.status == TaskStatus.DONE))
        )
        actions_per_task = dict(
            session.execute(
                select(CuratorAction.task_id, func.count()).group_by(CuratorAction.task_id)
            ).all()
        )
        audits: dict[str, list[str]] = {"task.submit": [], "task.claim": []}
        for action, target in session.execute(
            select(AuditEntry.action, AuditEntry.target).where(AuditEntry.action.in_(audits))
        ):
            audits[action].append(target)
        claimed_tasks = set(
            session.scalars(select(ReviewTask.id).where(ReviewTask.claimed_at.is_not(None)))
        )
    engine.dispose()
    print(
        f"\ncrash test: {KILLS} kills; acknowledged {len(ranked)} decisions, {len(rewarded)} "
        f"rewards, {len(reviewed)} reviews; stored {len(decisions)} decisions, "
        f"{len(outcomes)} rewards, {len(done_tasks)} done tasks, "
        f"{len(audits['task.submit'])} submit audits, {len(audits['task.claim'])} claim audits"
    )
    assert errors == []
    assert ranked and reviewed, "the clients made no progress"
    assert all(decisions.get(event_id) == 1 for event_id in ranked)
    assert all(count == 1 for count in decisions.values())
    assert all(count == 1 for _, _, count in outcomes)
    assert set(rewarded) <= {(event_id, item) for event_id, item, _ in outcomes}
    assert set(reviewed) <= done_tasks
    # Every done task has its verdicts once and exactly one submit audit, and nothing else has.
    assert sorted(audits["task.submit"]) == sorted(f"task {t}" for t in done_tasks)
    assert all(actions_per_task.get(t) == 5 for t in done_tasks)
    assert set(actions_per_task) == done_tasks
    # Every lease ever taken has exactly one claim audit.
    assert sorted(audits["task.claim"]) == sorted(f"task {t}" for t in claimed_tasks)
