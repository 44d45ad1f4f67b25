"""Tells serving processes that the model, the active config or the catalog changed.

Writers call `announce(session)` in the transaction that makes the change; on PostgreSQL that
is a `pg_notify` on `CHANNEL`, delivered to every listener when (and only if) the transaction
commits. A `ChangeFeed` in each serving process listens on its own connection from a daemon
thread and counts notifications, so `EngineRuntime` re-reads storage only after one arrived
instead of on every request. SQLite has no notifications: the feed then says "check" once per
`POLL_SECONDS`, which keeps a new model within a second of every process there too. While the
listener is (re)connecting it says "check" on every request, so a lost connection costs speed,
never freshness.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bandit.db.session import is_postgresql

CHANNEL = "hitl_changes"
POLL_SECONDS = 0.5
# How long one wait for notifications blocks, so the thread notices `close()` promptly.
LISTEN_TIMEOUT_SECONDS = 0.5
RECONNECT_SECONDS = 1.0


def announce(session: Session) -> None:
    """Queue a change notification for when this transaction commits (no-op on SQLite)."""
    if is_postgresql(session):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class ChangeFeed:
    """A per-process counter of announced changes, fed by LISTEN or by a polling clock."""

    def __init__(self, engine: Engine) -> None:
        self._url = engine.url
        self._listens = engine.dialect.name == "postgresql"
        self._generation = 0
        self._connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def token(self) -> int | None:
        """An opaque value that changes after every announced change, or None for "check now".

        None when storage must be read on this request: the listener is not connected yet (or
        lost its connection), or, without notifications, the polling interval has passed.
        """
        if not self._listens:
            return int(time.monotonic() / POLL_SECONDS)
        self._ensure_listening()
        return self._generation if self._connected else None

    def close(self) -> None:
        """Stop the listener thread (it exits within `LISTEN_TIMEOUT_SECONDS`)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout=5 * LISTEN_TIMEOUT_SECONDS)

    def _ensure_listening(self) -> None:
        # Started on first use, in the process that serves: a thread does not survive fork.
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._connected = False
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._listen, name="hitl-change-feed")
            self._thread.daemon = True
            self._thread.start()

    def _listen(self) -> None:
        # Its own engine without a pool: the listening connection is never handed to a request.
        engine = create_engine(self._url, poolclass=NullPool)
        while not self._stop.is_set():
            connection: Any = None
            holder = None
            try:
                holder = engine.connect()
                # The psycopg connection itself: notifications are a driver feature.
                connection = holder.connection.driver_connection
                connection.autocommit = True
                connection.execute(f"LISTEN {CHANNEL}")
                # Changes made before LISTEN took effect were never notified: count one so the
                # runtime re-reads storage once after (re)connecting.
                self._generation += 1
                self._connected = True
                while not self._stop.is_set():
                    for _notice in connection.notifies(timeout=LISTEN_TIMEOUT_SECONDS):
                        self._generation += 1
            except Exception:  # noqa: BLE001 - any failure: fall back to reading per request
                self._connected = False
                self._stop.wait(RECONNECT_SECONDS)
            finally:
                self._connected = False
                if holder is not None:
                    holder.invalidate()  # a driver connection in autocommit goes nowhere else
                    holder.close()
        engine.dispose()
