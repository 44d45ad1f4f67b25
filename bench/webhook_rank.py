"""Rank latency with and without a webhook worker sending to a hung or a healthy receiver.

    .venv/bin/python bench/webhook_rank.py [--ranks N] [--database-url URL] [--json]

POST /api/v1/rank (Flask test client, review-after config, so every rank writes its one
outbox row) is timed in three phases, interleaved in rounds so load drifts hit all alike:
no worker (reference); a `hitl webhooks --watch` worker thread whose receiver hangs every
request for 30 s; and a worker whose receiver answers at once. The receiver is a threaded
HTTP server on 127.0.0.1. Quote medians and ratios against the reference of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bandit.db import migrate  # noqa: E402
from bandit.db.session import make_engine, make_session_factory  # noqa: E402
from bandit.engine.config import PolicyConfig  # noqa: E402
from bandit.services import accounts, catalog_store, configs, webhooks  # noqa: E402
from bandit.services.webhook_sender import run_worker  # noqa: E402
from curation_app import create_app  # noqa: E402
from sim.demo_data import generate  # noqa: E402
from tests import webhook_receiver  # noqa: E402

PHASES = ("no worker", "worker, hung receiver", "worker, healthy receiver")


def _prepare(url: str) -> tuple[Any, str, list[dict[str, Any]], str]:
    migrate.upgrade(url)
    sessions = make_session_factory(make_engine(url))
    world = generate(items=2000, customers=200, seed=3)
    with sessions() as session:
        catalog_store.upsert_items(session, catalog_store.rows_from_frame(world.catalog))
        configs.save_config(session, PolicyConfig(routing_mode="review_after"), "bench", True)
        token = accounts.create_token(session, "bench")
        session.commit()
    return sessions, token, world.customers, url


def _endpoint(sessions: Any, url: str) -> str:
    with sessions() as session:
        for endpoint in webhooks.endpoints(session):
            webhooks.deactivate_endpoint(session, endpoint.id)
        secret = webhooks.add_endpoint(session, url, ["delivered"], "bench").secret
        session.commit()
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=60, help="ranks per phase")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-webhooks-")
    url = args.database_url or f"sqlite:///{os.path.join(scratch, 'bench.sqlite3')}"
    sessions, token, customers, url = _prepare(url)
    app = create_app({"DATABASE_URL": url, "SESSION_FACTORY": sessions, "SECRET_KEY": "bench",
                      "ENGINE_SEED": 1})  # fmt: skip
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    hung, healthy = webhook_receiver.Receiver(hang=threading.Event()), webhook_receiver.Receiver()
    servers = {name: webhook_receiver.start(state) for name, state in
               (("hung", hung), ("healthy", healthy))}  # fmt: skip
    timings: dict[str, list[float]] = {phase: [] for phase in PHASES}
    settings = webhooks.WebhookSettings(timeout_seconds=30, first_retry_seconds=1)
    rounds, per_round = 5, max(1, args.ranks // 5)
    count = 0
    for _ in range(rounds):
        for phase in PHASES:
            stop = threading.Event()
            worker = None
            if phase != PHASES[0]:
                target = "hung" if phase == PHASES[1] else "healthy"
                port = servers[target].server_port
                secret = _endpoint(sessions, f"http://127.0.0.1:{port}/hooks")
                (hung if target == "hung" else healthy).secret = secret
                worker = threading.Thread(target=run_worker, args=(sessions, settings, 0.05,
                                          stop.is_set), daemon=True)  # fmt: skip
                worker.start()
            for _ in range(per_round):
                context = customers[count % len(customers)]
                count += 1
                started = time.perf_counter()
                response = client.post("/api/v1/rank", json={"context": context}, headers=headers)
                timings[phase].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 201, response.get_json()
            stop.set()
            if worker is not None and phase == PHASES[2]:
                worker.join(5)
    hung.hang.set()  # type: ignore[union-attr]
    for server in servers.values():
        webhook_receiver.stop(server)
    reference = statistics.median(timings[PHASES[0]])
    result = {
        "load": os.getloadavg(),
        "ranks_per_phase": len(timings[PHASES[0]]),
        "phases": {
            phase: {
                "median_ms": round(statistics.median(values), 2),
                "p90_ms": round(statistics.quantiles(values, n=10)[-1], 2),
                "ratio_to_reference": round(statistics.median(values) / reference, 3),
            }
            for phase, values in timings.items()
        },
        "healthy_receiver_got": len(healthy.received),
        "hung_receiver_requests_in_flight": len(hung.received) == 0 and hung.hanging.is_set(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"load average {result['load']}; {result['ranks_per_phase']} ranks per phase")
    for phase, figures in result["phases"].items():
        print(f"{phase:26} median {figures['median_ms']:7.2f} ms  p90 {figures['p90_ms']:7.2f} "
              f"ms  x{figures['ratio_to_reference']:.3f}")  # fmt: skip
    print(f"healthy receiver got {result['healthy_receiver_got']} deliveries")


if __name__ == "__main__":
    main()
