"""Response time of the dashboard's pages on a log of a few thousand decisions.

Run by hand (not part of `make test`):

    .venv/bin/python bench/dashboard.py [--decisions 3000] [--server-url postgresql+psycopg://...]

It creates a scratch database (SQLite by default), loads demo data, ranks review-after
decisions (slates of 5, delivered at once) and rewards nine in ten of them, half for the whole
event and half per item; ranks a few hundred review-before decisions and overflows them past
their SLA. It then requests the dashboard page and every chart through Flask's test client,
signed in, and prints the median and the slowest of the repeats per page, in milliseconds.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bandit.db import migrate  # noqa: E402
from bandit.db.models import utcnow  # noqa: E402
from bandit.db.session import make_engine, make_session_factory  # noqa: E402
from bandit.engine.config import PolicyConfig  # noqa: E402
from bandit.services import (  # noqa: E402
    accounts,
    catalog_store,
    configs,
    decisions,
    metrics,
    rewards,
)
from bandit.services.review import overflow  # noqa: E402
from bandit.services.runtime import EngineRuntime  # noqa: E402
from curation_app import create_app  # noqa: E402
from curation_app.dashboard import CHARTS  # noqa: E402
from sim.demo_data import generate  # noqa: E402
from sim.runs import scratch_database  # noqa: E402

PASSWORD = "bench-password-1"


def _seed(url: str, count: int) -> None:
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    world = generate(items=2000, customers=300, seed=5)
    rng = np.random.default_rng(7)
    start = utcnow() - timedelta(hours=20)
    with sessions() as session:
        catalog_store.upsert_items(session, catalog_store.rows_from_frame(world.catalog))
        accounts.add_curator(session, "bench", PASSWORD)
        settings = {"slate_size": 5, "reward_wait_seconds": 86_400, "review_sla_seconds": 3600}
        configs.save_config(session, PolicyConfig(routing_mode="review_after", **settings),
                            "bench", True)  # fmt: skip
        session.commit()
        runtime = EngineRuntime(np.random.default_rng(5))
        entries = []
        for index in range(count):
            now = start + timedelta(seconds=index * 20)
            context = dict(world.customers[index % len(world.customers)])
            decision, _ = decisions.rank(
                session, runtime, decisions.RankRequest(context=context), now=now
            )
            if rng.random() < 0.9:
                if index % 2:
                    entries.append(rewards.RewardEntry(decision.event_id, None, 1.0))
                else:
                    entries += [
                        rewards.RewardEntry(decision.event_id, p.item_id, float(rng.random() < 0.2))
                        for p in decision.proposed
                    ]
        session.commit()
        rewards.record_reward_batch(session, entries, "client:bench")
        configs.save_config(session, PolicyConfig(routing_mode="review_before", **settings),
                            "bench", True)  # fmt: skip
        session.commit()
        for index in range(count // 10):
            context = dict(world.customers[index % len(world.customers)])
            now = start + timedelta(seconds=index * 200)
            decisions.rank(session, runtime, decisions.RankRequest(context=context), now=now)
        session.commit()
        overflow.upkeep(session, utcnow())
        session.commit()
    engine.dispose()


def _time(client: object, path: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        response = client.get(path)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--server-url", default=None)
    args = parser.parse_args()
    with scratch_database(args.server_url) as url:
        _seed(url, args.decisions)
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "TESTING": True})
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        data = {
            "username": "bench",
            "password": PASSWORD,
            "csrf_token": token.group(1) if token else "",
        }
        client.post("/login", data=data)
        paths = ["/dashboard"] + [f"/dashboard/charts/{slug}.svg" for slug in CHARTS]
        print(f"{args.decisions} decisions ({url.split(':')[0]}), {args.repeats} requests each")
        for path in paths:
            times = _time(client, path, args.repeats)
            print(
                f"  {path:45s} median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms"
            )
        _time_services(url, args.repeats)


def _time_services(url: str, repeats: int) -> None:
    """The numbers alone, without matplotlib: where a chart's time goes."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    now = utcnow()
    calls = {
        "metrics.mean_reward_by(policy)": lambda s: metrics.mean_reward_by(s, "policy"),
        "metrics.mean_reward_by(segment)": lambda s: metrics.mean_reward_by(s, "segment"),
        "metrics.queue_history(24h)": lambda s: metrics.queue_history(
            s, now - timedelta(hours=24), now
        ),
    }
    for name, call in calls.items():
        times = []
        for _ in range(repeats):
            with sessions() as session:
                began = time.perf_counter()
                call(session)
                times.append((time.perf_counter() - began) * 1000)
        print(f"  {name:45s} median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
