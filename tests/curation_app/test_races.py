"""Retries that race the original, hammered with threads over real database connections.

Each case runs TRIES times; the threads of one try start together on a barrier, each with its
own Flask test client, request context and database connection (no mocks), so the database's
own locks and unique keys decide who wins. Every answer is checked: no 5xx, no false 409, no
curator holding two tasks, no deadlock (PostgreSQL reports one as a 500 from a
DeadlockDetected error, and a hang would trip the thread timeout).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from bandit.db.models import AuditEntry, Decision, Outcome, ReviewTask
from bandit.engine.vocabulary import TaskStatus
from bandit.services import accounts
from tests.api_support import RANK_URL, activate_config
from tests.conftest import DemoCatalog

TRIES = 200
THREAD_TIMEOUT_SECONDS = 60

Call = Callable[[], TestResponse]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(session_factory: sessionmaker[Session]) -> dict[str, dict[str, str]]:
    """A client-service token and a curator-bound review token."""
    with session_factory() as session:
        accounts.add_curator(session, "racer", "long-enough-pw")
        client = accounts.create_token(session, "race-client")
        curator = accounts.create_token(session, "race-labeler", curator_username="racer")
        session.commit()
    return {"client": bearer(client), "curator": bearer(curator)}


def race(app: Flask, calls: list[Call], delays: list[float] | None = None) -> list[TestResponse]:
    """Run the calls at the same instant (each after its delay), one thread and connection each."""
    barrier = threading.Barrier(len(calls))

    def run(call: Call, delay: float) -> TestResponse:
        barrier.wait(timeout=THREAD_TIMEOUT_SECONDS)
        time.sleep(delay)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [
            pool.submit(run, call, delay)
            for call, delay in zip(calls, delays or [0.0] * len(calls), strict=True)
        ]
        return [f.result(timeout=THREAD_TIMEOUT_SECONDS) for f in futures]


def post(app: Flask, url: str, headers: dict[str, str], body: dict[str, Any]) -> Call:
    return lambda: app.test_client().post(url, json=body, headers=headers)


def _rank(app: Flask, headers: dict[str, str], context: dict[str, Any], **body: Any) -> Any:
    response = app.test_client().post(RANK_URL, json={"context": context, **body}, headers=headers)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def _claim(app: Flask, headers: dict[str, str]) -> Any:
    response = app.test_client().post("/api/v1/review/claim", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["task"]


def _keep_all(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "lease_token": task["lease_token"],
        "verdicts": [{"position": p["position"], "verdict": "keep"} for p in task["slate"]],
        "seconds_spent": 3.0,
    }


def _audits(sessions: sessionmaker[Session], action: str) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        return int(session.scalar(query) or 0)


def test_concurrent_ranks_with_one_new_event_id_all_get_the_stored_decision(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    tokens: dict[str, dict[str, str]],
) -> None:
    activate_config(session_factory, routing_mode="review_after")
    context = dict(demo_catalog.customers[0])
    statuses: Counter[int] = Counter()
    mismatched = 0
    for _ in range(TRIES):
        event_id = uuid.uuid4().hex
        body = {"context": context, "event_id": event_id}
        answers = race(app, [post(app, RANK_URL, tokens["client"], body) for _ in range(4)])
        statuses.update(a.status_code for a in answers)
        slates = {tuple(i["item_id"] for i in a.get_json()["slate"]) for a in answers}
        mismatched += len(slates) != 1
    with session_factory() as session:
        decisions = session.scalar(select(func.count()).select_from(Decision))
    print(f"\nrank races: {TRIES} x 4 requests, statuses {dict(statuses)}, decisions {decisions}")
    assert statuses[201] == TRIES and statuses[200] == 3 * TRIES, statuses
    assert mismatched == 0 and decisions == TRIES


def test_concurrent_submits_of_one_lease_are_one_review_and_never_a_false_409(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    tokens: dict[str, dict[str, str]],
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    statuses: Counter[int] = Counter()
    recorded: Counter[bool] = Counter()
    for attempt in range(TRIES):
        _rank(app, tokens["client"], dict(demo_catalog.customers[attempt % 40]))
        task = _claim(app, tokens["curator"])
        url = f"/api/v1/review/{task['task_id']}"
        answers = race(app, [post(app, url, tokens["curator"], _keep_all(task))] * 2)
        statuses.update(a.status_code for a in answers)
        recorded.update(bool(a.get_json().get("recorded")) for a in answers)
    submits = _audits(session_factory, "task.submit")
    print(f"\nsubmit races: {TRIES} x 2, statuses {dict(statuses)}, recorded {dict(recorded)}")
    assert statuses == Counter({200: 2 * TRIES}), statuses
    assert recorded == Counter({True: TRIES, False: TRIES}) and submits == TRIES


def test_concurrent_claims_by_one_curator_hold_one_task(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    tokens: dict[str, dict[str, str]],
) -> None:
    activate_config(session_factory, routing_mode="review_before")
    statuses: Counter[int] = Counter()
    different = double_held = 0
    for attempt in range(TRIES):
        for offset in range(2):
            _rank(app, tokens["client"], dict(demo_catalog.customers[(attempt + offset) % 40]))
        answers = race(app, [post(app, "/api/v1/review/claim", tokens["curator"], {})] * 2)
        statuses.update(a.status_code for a in answers)
        tasks = [a.get_json()["task"] for a in answers]
        different += tasks[0]["task_id"] != tasks[1]["task_id"]
        with session_factory() as session:
            held = session.scalar(
                select(func.count())
                .select_from(ReviewTask)
                .where(ReviewTask.status == TaskStatus.CLAIMED)
            )
        double_held += (held or 0) > 1
        done = app.test_client().post(
            f"/api/v1/review/{tasks[0]['task_id']}", json=_keep_all(tasks[0]),
            headers=tokens["curator"],
        )  # fmt: skip
        assert done.status_code == 200, done.get_json()
    claims = _audits(session_factory, "task.claim")
    print(
        f"\nclaim races: {TRIES} x 2, statuses {dict(statuses)}, different tasks {different}, "
        f"double-held {double_held}, claim audits {claims}"
    )
    assert statuses == Counter({200: 2 * TRIES}) and different == 0 and double_held == 0
    assert claims == TRIES


def test_a_client_choice_racing_a_claim_never_deadlocks(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    tokens: dict[str, dict[str, str]],
) -> None:
    activate_config(session_factory, routing_mode="apprentice")
    outcomes: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    # A random head start for either side, so both orders and their overlap occur; every
    # tenth try gives one side half a second, so each order is seen even on a loaded machine.
    head_start = np.random.default_rng(7).uniform(-0.08, 0.08, TRIES)
    head_start[::20], head_start[10::20] = 0.5, -0.5
    for attempt in range(TRIES):
        decision = _rank(app, tokens["client"], dict(demo_catalog.customers[attempt % 40]))
        choice = {"items": [i["item_id"] for i in decision["slate"]]}
        url = f"/api/v1/events/{decision['event_id']}/choice"
        chose, claimed = race(
            app,
            [
                post(app, url, tokens["client"], choice),
                post(app, "/api/v1/review/claim", tokens["curator"], {}),
            ],
            [max(0.0, float(head_start[attempt])), max(0.0, -float(head_start[attempt]))],
        )
        statuses.update((chose.status_code, claimed.status_code))
        task = claimed.get_json()["task"]
        if chose.status_code == 202:
            assert task is None, "the client's choice closed the task, so no claim may get it"
            outcomes["client first"] += 1
        else:
            assert chose.status_code == 409 and task is not None, chose.get_json()
            outcomes["curator first"] += 1
            done = app.test_client().post(
                f"/api/v1/review/{task['task_id']}", json=_keep_all(task),
                headers=tokens["curator"],
            )  # fmt: skip
            assert done.status_code == 200, done.get_json()
    print(f"\nchoice/claim races: {TRIES}, {dict(outcomes)}, statuses {dict(statuses)}")
    assert sum(outcomes.values()) == TRIES
    assert all(status < 500 for status in statuses), statuses
    assert outcomes["client first"] and outcomes["curator first"], "only one order was tried"


def test_overlapping_reward_batches_store_each_reward_once_without_deadlock(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    tokens: dict[str, dict[str, str]],
) -> None:
    activate_config(session_factory, routing_mode="review_after")
    statuses: Counter[int] = Counter()
    created_twice = created_never = 0
    tries = TRIES // 4  # each try ranks four events first
    for attempt in range(tries):
        ranked = [
            _rank(app, tokens["client"], dict(demo_catalog.customers[(attempt + n) % 40]))
            for n in range(4)
        ]
        batch = [
            {"event_id": event["event_id"], "item_id": item["item_id"], "value": 1.0}
            for event in ranked
            for item in event["slate"][:2]
        ]
        # The same rewards, the events in opposite orders: a lock order taken from the body
        # would deadlock here.
        answers = race(
            app,
            [
                post(app, "/api/v1/rewards", tokens["client"], {"rewards": batch}),
                post(app, "/api/v1/rewards", tokens["client"], {"rewards": batch[::-1]}),
            ],
        )
        statuses.update(a.status_code for a in answers)
        if any(a.status_code != 202 for a in answers):
            continue
        forward, backward = (a.get_json()["rewards"] for a in answers)
        for one, other in zip(forward, backward[::-1], strict=True):
            created = (not one["duplicate"]) + (not other["duplicate"])
            created_twice += created == 2
            created_never += created == 0
    with session_factory() as session:
        outcomes = session.scalar(select(func.count()).select_from(Outcome))
    print(
        f"\nreward batch races: {tries} x 2 batches of 8, statuses {dict(statuses)}, "
        f"outcomes {outcomes}, created twice {created_twice}, never {created_never}"
    )
    assert statuses == Counter({202: 2 * tries}), statuses
    assert created_twice == 0 and created_never == 0
    assert outcomes == tries * 8
