"""Load test of the review API: N simulated curators against gunicorn on PostgreSQL.

Run by hand (not part of `make test`):

    .venv/bin/python bench/console_load.py [--curators 50] [--tasks 600] [--seconds 60]
        [--server-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--workers 4]
        [--think-seconds 2] [--think-jitter 0] [--ramp-seconds 0] [--threads 4]

It creates a scratch database on the PostgreSQL server (dropped at the end), loads demo data,
queues `--tasks` review-before decisions, starts gunicorn on 127.0.0.1, and lets each curator
thread claim and submit over HTTP with its own curator-bound token until the queue is empty or
the time is up. It prints p50/p99 latency of claim and submit, errors, and a check from the
database that no task was ever reviewed by two curators.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bandit.db import migrate  # noqa: E402
from bandit.db.models import CuratorAction  # noqa: E402
from bandit.db.session import make_engine, make_session_factory  # noqa: E402
from bandit.engine.config import PolicyConfig  # noqa: E402
from bandit.services import accounts, catalog_store, configs, decisions  # noqa: E402
from bandit.services.runtime import EngineRuntime  # noqa: E402
from sim.demo_data import generate  # noqa: E402
from sim.runs import scratch_database  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed(url: str, tasks: int, curators: int) -> list[str]:
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    world = generate(items=2000, customers=300, seed=3)
    with sessions() as session:
        catalog_store.upsert_items(session, catalog_store.rows_from_frame(world.catalog))
        capacity = {"curator_capacity_per_hour": 100_000, "review_sla_seconds": 86_400}
        configs.save_config(
            session, PolicyConfig(routing_mode="review_before", **capacity), "bench", True
        )
        session.commit()
        runtime = EngineRuntime(np.random.default_rng(3))
        for index in range(tasks):
            context = dict(world.customers[index % len(world.customers)])
            decisions.rank(session, runtime, decisions.RankRequest(context=context))
        tokens = []
        for index in range(curators):
            name = f"load-{index}"
            accounts.add_curator(session, name, "load-test-password")
            tokens.append(accounts.create_token(session, f"{name}-tool", curator_username=name))
        session.commit()
    engine.dispose()
    return tokens


@contextmanager
def _gunicorn(url: str, port: int, workers: int, threads: int) -> Iterator[str]:
    environment = {**os.environ, "HITL_DATABASE_URL": url, "HITL_SECURE_COOKIES": "0"}
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--log-level", "warning", "curation_app:create_app()",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/v1/openapi.json", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError("gunicorn did not start within 60 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload = response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        status, payload = error.code, json.loads(error.read() or b"{}")
    return status, payload, (time.perf_counter() - started) * 1000


class Curator(threading.Thread):
    """Claims and submits until the queue is empty or time is up."""

    def __init__(
        self, base: str, token: str, stop_at: float, think: float, jitter: float, delay: float
    ) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.stop_at, self.think = base, token, stop_at, think
        self.jitter, self.delay = jitter, delay
        self.random = np.random.default_rng(abs(hash(token)) % 2**32)
        self.claim_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.errors: list[str] = []
        self.reviewed: list[int] = []

    def run(self) -> None:
        time.sleep(self.delay)  # curators arriving over the ramp, not all in one millisecond
        while time.monotonic() < self.stop_at:
            status, payload, elapsed = _post(f"{self.base}/api/v1/review/claim", self.token, {})
            self.claim_ms.append(elapsed)
            if status != 200:
                self.errors.append(f"claim {status}: {payload.get('error')}")
                continue
            task = payload.get("task")
            if task is None:
                return
            # Reading the slate before the verdict: think x (1 +- jitter), uniformly.
            spread = self.random.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
            time.sleep(self.think * (1 + spread))
            body = {
                "lease_token": task["lease_token"],
                "verdicts": [{"position": i["position"], "verdict": "keep"} for i in task["slate"]],
                "seconds_spent": 5.0,
            }
            url = f"{self.base}/api/v1/review/{task['task_id']}"
            status, payload, elapsed = _post(url, self.token, body)
            self.submit_ms.append(elapsed)
            if status != 200:
                self.errors.append(f"submit {status}: {payload.get('error')}")
            else:
                self.reviewed.append(int(task["task_id"]))


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({len(values)} calls)"


def main() -> None:
    """Run the load test and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curators", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--server-url", default=DEFAULT_SERVER)
    parser.add_argument(
        "--think-seconds",
        type=float,
        default=2.0,
        help="Time each curator spends on a task between claim and submit (0: a stress test).",
    )
    parser.add_argument(
        "--think-jitter",
        type=float,
        default=0.0,
        help="Vary each think time uniformly by this share (0.5: 50-150%%); 0 keeps curators "
        "in lockstep, the worst case of bursts.",
    )
    parser.add_argument(
        "--ramp-seconds",
        type=float,
        default=0.0,
        help="Start the curators evenly over this many seconds (0: all at once).",
    )
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    arguments = parser.parse_args()
    with scratch_database(arguments.server_url) as url:
        tokens = _seed(url, arguments.tasks, arguments.curators)
        with _gunicorn(url, _free_port(), arguments.workers, arguments.threads) as base:
            stop_at = time.monotonic() + arguments.seconds
            think = arguments.think_seconds
            ramp = arguments.ramp_seconds / max(1, len(tokens))
            curators = [
                Curator(base, token, stop_at, think, arguments.think_jitter, index * ramp)
                for index, token in enumerate(tokens)
            ]
            started = time.perf_counter()
            for curator in curators:
                curator.start()
            for curator in curators:
                curator.join(arguments.seconds + 60)
            elapsed = time.perf_counter() - started
        reviewed = [task for c in curators for task in c.reviewed]
        engine = make_engine(url)
        with make_session_factory(engine)() as session:
            shared = session.scalar(
                select(func.count()).select_from(
                    select(CuratorAction.task_id)
                    .group_by(CuratorAction.task_id)
                    .having(func.count(func.distinct(CuratorAction.curator_id)) > 1)
                    .subquery()
                )
            )
        engine.dispose()
    errors = [e for c in curators for e in c.errors]
    print(
        f"{arguments.curators} curators, {arguments.think_seconds:g} s per task, "
        f"jitter {arguments.think_jitter:g}, ramp {arguments.ramp_seconds:g} s, "
        f"{arguments.workers} gunicorn workers x {arguments.threads} threads, PostgreSQL"
    )
    print(f"reviewed {len(reviewed)} of {arguments.tasks} tasks in {elapsed:.1f} s "
          f"({len(reviewed) / elapsed:.1f} tasks/s)")  # fmt: skip
    print(f"claim   {_percentiles([m for c in curators for m in c.claim_ms])}")
    print(f"submit  {_percentiles([m for c in curators for m in c.submit_ms])}")
    # Each curator's first claim and submit meet workers that have not yet compiled those
    # statements (SQLAlchemy's per-process cache): the cold start, shown apart from the rest.
    print("after each curator's first claim and submit (warm workers):")
    print(f"claim   {_percentiles([m for c in curators for m in c.claim_ms[1:]])}")
    print(f"submit  {_percentiles([m for c in curators for m in c.submit_ms[1:]])}")
    print(f"errors  {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"tasks claimed twice by the clients: {len(reviewed) - len(set(reviewed))}")
    print(f"tasks with actions from two curators (database): {shared}")


if __name__ == "__main__":
    main()
