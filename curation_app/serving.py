"""The production server: gunicorn running `create_app()` in each worker process.

All gunicorn settings live here. The web processes never learn (the one learner is
`hitl learn --watch`); each worker builds its own app, engine runtime and VW workspace after
the fork, so no native state is shared between processes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from curation_app import wsgi_errors
from curation_app.logs import gunicorn_log_config

# Where prometheus_client's multiprocess mode keeps one file per worker and metric.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """gunicorn's rule of thumb (2 x cores + 1), capped: each worker holds a VW model."""
    return min(2 * (os.cpu_count() or 1) + 1, MAX_DEFAULT_WORKERS)


# Request-line and header limits chosen on purpose (curation_app/wsgi_errors.py), and the
# worker hook that answers gunicorn's own errors (414, 431, bad request lines) as JSON.
REQUEST_LIMITS: dict[str, Any] = {
    "limit_request_line": wsgi_errors.LIMIT_REQUEST_LINE,
    "limit_request_fields": wsgi_errors.LIMIT_REQUEST_FIELDS,
    "limit_request_field_size": wsgi_errors.LIMIT_REQUEST_FIELD_SIZE,
    "post_worker_init": wsgi_errors.post_worker_init,
}


@dataclass(frozen=True)
class ServerSettings:
    """What `hitl serve` was asked for."""

    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    threads: int = 4
    timeout: int = 30
    graceful_timeout: int = 20

    def gunicorn_options(self) -> dict[str, Any]:
        """The gunicorn settings, with the metrics hook and JSON logs."""
        return {
            "bind": f"{self.host}:{self.port}",
            "workers": self.workers,
            "threads": self.threads,
            # gthread: curators' long-polls and slow clients do not hold a whole worker.
            "worker_class": "gthread" if self.threads > 1 else "sync",
            "timeout": self.timeout,
            "graceful_timeout": self.graceful_timeout,
            "preload_app": False,
            "accesslog": None,  # the app logs each request as JSON, with its request id
            "logconfig_dict": gunicorn_log_config(),
            "child_exit": _child_exit,
            **REQUEST_LIMITS,
        }


def _child_exit(_server: Any, worker: Any) -> None:
    """A dead worker's live gauges must leave the multiprocess sum."""
    if os.environ.get(METRICS_DIR_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def prepare_metrics_dir() -> Path:
    """A fresh directory for the workers' metric files (the env var's, or a new temporary one).

    Set before any worker imports prometheus_client, so every process writes there; emptied
    at start, as prometheus_client requires, so counters restart with the server.
    """
    configured = os.environ.get(METRICS_DIR_ENV)
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="hitl-metrics-"))
    if path.exists():
        for entry in path.iterdir():
            if entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[METRICS_DIR_ENV] = str(path)
    return path


class HitlServer(BaseApplication):
    """gunicorn configured from `ServerSettings`, loading the Flask app in each worker."""

    def __init__(self, app_factory: Callable[[], Flask], settings: ServerSettings) -> None:
        self._factory = app_factory
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._settings.gunicorn_options().items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._factory()


def run_gunicorn(app_factory: Callable[[], Flask], settings: ServerSettings) -> None:
    """Serve until gunicorn is told to stop (SIGTERM/SIGINT stop it gracefully)."""
    prepare_metrics_dir()
    HitlServer(app_factory, settings).run()
