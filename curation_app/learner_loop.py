"""`hitl learn --watch`: the one long-running learner, stopped cleanly by SIGTERM or Ctrl-C.

A pass is one transaction (learn_pending marks rows learned and saves the model version
together). A stop signal lets the pass in progress finish and commit, then the loop ends; if
the pass is still running `grace` seconds later, or a second signal comes, the pass is
interrupted and its transaction rolled back. Either way nothing is half-committed, and the
rows of a rolled-back pass are simply learned by the next learner to run.

After each committed pass, every hook registered under the entry-point group
`hitl.learner_pass_hooks` is called with the session factory; a failing hook is logged and
never stops the learner.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType

from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import utcnow
from bandit.services import learning
from bandit.services.learner_cache import LearnerCache

log = logging.getLogger("hitl.learner")
HOOK_GROUP = "hitl.learner_pass_hooks"
PassHook = Callable[[sessionmaker[Session]], object]


class PassInterrupted(BaseException):
    """Raised inside a pass to abandon it; a BaseException so no `except Exception` eats it."""


def pass_hooks() -> list[PassHook]:
    """The installed per-pass hooks, by entry point."""
    return [point.load() for point in entry_points(group=HOOK_GROUP)]


@dataclass
class StopControl:
    """Turns SIGTERM/SIGINT into: stop after this pass, or abandon it after `grace` seconds."""

    grace: float
    requested: threading.Event = field(default_factory=threading.Event)
    in_pass: bool = False
    signals: int = 0

    def install(self) -> None:
        """Handle SIGTERM and SIGINT (and SIGALRM for the grace period) in the main thread."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGALRM, self._on_grace_over)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        self.requested.set()
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        if not self.in_pass:
            return
        if self.signals > 1:
            raise PassInterrupted("second stop signal")
        if self.grace == 0:  # setitimer(0) disarms rather than fires: roll back now
            raise PassInterrupted("stop signal with no grace period")
        signal.setitimer(signal.ITIMER_REAL, self.grace)

    def _on_grace_over(self, _signum: int, _frame: FrameType | None) -> None:
        if self.in_pass:
            raise PassInterrupted(f"pass still running {self.grace:g}s after the stop signal")


def run_pass(
    sessions: sessionmaker[Session], control: StopControl, cache: LearnerCache | None = None
) -> dict[str, object] | None:
    """One learning pass in one transaction; None when it was interrupted and rolled back."""
    now = utcnow()
    with sessions() as session:
        control.in_pass = True
        try:
            report = learning.learn_pending(session, now, cache=cache)
            session.commit()
        except PassInterrupted as why:
            session.rollback()
            log.warning("pass rolled back", extra={"reason": str(why), "learned_at": now})
            return None
        finally:
            control.in_pass = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    summary: dict[str, object] = {
        "learned_at": now.isoformat(),
        "rounds": report.rounds_learned,
        "imitation_rounds": report.imitation_rounds,
        "verdicts": report.verdicts,
        "rewards": report.rewards,
        "model_version": report.model_version,
    }
    log.info("pass committed", extra=summary)
    return summary


def watch(
    sessions: sessionmaker[Session],
    every: float,
    control: StopControl,
    hooks: Sequence[PassHook] = (),
    max_passes: int | None = None,
    heartbeat: Path | None = None,
) -> int:
    """Learn every `every` seconds until a stop signal; returns the passes committed.

    `heartbeat` is touched after every pass that did not fail, for a container health check.
    """
    committed = 0
    passes = 0
    # Catalog rows outlive a pass (checked against the catalog revision each time).
    cache = LearnerCache()
    while not control.requested.is_set():
        try:
            summary = run_pass(sessions, control, cache)
        except PassInterrupted:
            # Landed between the pass's commit and the bookkeeping: the pass is committed.
            break
        except Exception:  # a database outage must not end the learner; the next pass retries
            log.exception("pass failed; retrying after the interval")
            summary = None
        else:
            if summary is None:
                break
            committed += 1
            if heartbeat is not None:
                heartbeat.touch()
            for hook in hooks:
                try:
                    hook(sessions)
                except Exception:
                    log.exception("pass hook failed", extra={"hook": repr(hook)})
        passes += 1
        if max_passes is not None and passes >= max_passes:
            break
        control.requested.wait(every)
    log.info("learner stopped", extra={"passes_committed": committed})
    return committed
