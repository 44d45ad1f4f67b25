"""`hitl learn --watch`: a stop signal finishes the pass in progress, or rolls it back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import AuditEntry
from bandit.services import learning
from curation_app import learner_loop


@pytest.fixture(autouse=True)
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    for number, handler in saved.items():
        signal.signal(number, handler)


def _audit_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _pass_that_writes(monkeypatch: pytest.MonkeyPatch, then: Any) -> None:
    """learn_pending replaced by a pass that writes a row, gets SIGTERM, then runs `then`."""
    real = learning.learn_pending

    def pass_(session: Session, now: Any = None, cache: Any = None) -> learning.LearnReport:
        session.add(AuditEntry(actor="learner-test", action="half_pass"))
        session.flush()
        os.kill(os.getpid(), signal.SIGTERM)
        then()
        return real(session, now, cache=cache)

    monkeypatch.setattr(learning, "learn_pending", pass_)


def _busy_for(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # Python bytecode, so a signal's handler runs
        pass


def test_sigterm_lets_the_pass_in_progress_commit(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _pass_that_writes(monkeypatch, lambda: None)
    hooks: list[int] = []
    control = learner_loop.StopControl(grace=30)
    control.install()
    heartbeat = tmp_path / "alive"
    committed = learner_loop.watch(
        session_factory,
        0.01,
        control,
        [lambda _s: hooks.append(1)],
        max_passes=5,
        heartbeat=heartbeat,
    )
    assert committed == 1 and hooks == [1]  # stopped after the one pass, which committed
    assert heartbeat.exists()
    assert _audit_rows(session_factory) == 1


@pytest.mark.parametrize(
    ("grace", "busy_seconds", "stops_within"),
    [
        pytest.param(0.2, 20, 15, id="after-the-grace-period"),
        pytest.param(0, 10, 5, id="no-grace-period-at-once"),
    ],
)
def test_a_pass_still_running_when_the_grace_ends_is_rolled_back(
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    grace: float,
    busy_seconds: float,
    stops_within: float,
) -> None:
    _pass_that_writes(monkeypatch, lambda: _busy_for(busy_seconds))
    control = learner_loop.StopControl(grace=grace)
    control.install()
    started = time.monotonic()
    committed = learner_loop.watch(session_factory, 0.01, control, max_passes=5)
    assert committed == 0
    assert time.monotonic() - started < stops_within
    assert _audit_rows(session_factory) == 0  # nothing of the interrupted pass was kept


def test_no_grace_period_between_passes_just_stops(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def quick(session: Session, now: Any = None, cache: Any = None) -> learning.LearnReport:
        calls.append("pass")
        return learning.LearnReport(0, 0, 0, 0, 0, None)

    monkeypatch.setattr(learning, "learn_pending", quick)
    control = learner_loop.StopControl(grace=0)
    control.install()
    os.kill(os.getpid(), signal.SIGTERM)  # arrives while no pass runs
    assert learner_loop.watch(session_factory, 0.01, control, max_passes=5) == 0
    assert calls == []


def test_a_second_signal_rolls_back_at_once(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    _pass_that_writes(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGINT))
    control = learner_loop.StopControl(grace=60)
    control.install()
    assert learner_loop.watch(session_factory, 0.01, control, max_passes=5) == 0
    assert _audit_rows(session_factory) == 0


def test_a_failing_hook_or_pass_does_not_stop_the_learner(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def flaky(session: Session, now: Any = None, cache: Any = None) -> learning.LearnReport:
        calls.append("pass")
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return learning.LearnReport(0, 0, 0, 0, 0, None)

    def broken_hook(_sessions: Any) -> None:
        raise ValueError("webhook endpoint down")

    monkeypatch.setattr(learning, "learn_pending", flaky)
    control = learner_loop.StopControl(grace=1)
    committed = learner_loop.watch(session_factory, 0.01, control, [broken_hook], max_passes=3)
    assert calls == ["pass"] * 3 and committed == 2
