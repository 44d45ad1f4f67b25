"""Serving benchmark: rank, reward (and review) over HTTP against gunicorn on PostgreSQL.

Run by hand (not part of `make test`):

    .venv/bin/python bench/serve.py [--json] [--items 100000] [--clients 8] [--seconds 20]
        [--workers 2] [--threads 4] [--review] [--batch 100] [--change-feed notify|request]
        [--server-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

It creates a scratch database on the PostgreSQL server (dropped at the end), loads a generated
catalog of `--items` items, starts gunicorn on 127.0.0.1 and drives it from a separate client
process with `--clients` threads on keep-alive connections:

1. rank for `--seconds` (every answer is a committed decision: durable), then
2. rewards: half the ranked events get one event-level reward each (`reward_rps`), the other
   half a per-item reward for every delivered item, sent in batches of `--batch` rewards to
   `POST /api/v1/rewards` (`reward_batch_rewards_per_s`); every tenth request (single or
   batch) is sent twice, and a repeat must answer `duplicate: true` and store nothing, and
3. with `--review`, the config routes every decision to review after output and `--clients`
   curator threads claim and submit over the review API while rank runs.

In the same run, after the load, it measures two references:
- the engine alone in this process (`propose` over the same catalog and config, no database
  write); the served rank rate over it is `serving_efficiency`;
- the stack's ceiling (bench/stack_ceiling.py): the same gunicorn settings, database and client
  on a route that only parses the body, looks the token up, inserts one row and commits;
  the rank rate over it is `rank_to_stack_ceiling`.
One JSON line with `--json`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bandit.db import migrate  # noqa: E402
from bandit.db.models import CatalogItem, Decision, Outcome  # noqa: E402
from bandit.db.session import make_engine, make_session_factory  # noqa: E402
from bandit.engine.config import PolicyConfig  # noqa: E402
from bandit.engine.native_threads import one_blas_thread  # noqa: E402
from bandit.engine.vocabulary import RoutingMode  # noqa: E402
from bandit.services import accounts, catalog_store, configs  # noqa: E402
from bandit.services.runtime import EngineRuntime  # noqa: E402
from sim.demo_data import generate_catalog, generate_customers  # noqa: E402
from sim.runs import scratch_database  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import stack_ceiling  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CONTEXTS = 500


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(review: bool) -> PolicyConfig:
    if review:
        return PolicyConfig(
            routing_mode=RoutingMode.REVIEW_AFTER,
            curator_capacity_per_hour=1_000_000,
            review_sla_seconds=86_400,
        )
    # Every decision goes out at once: the path a trained deployment takes most of the time.
    return PolicyConfig(auto_threshold=0.0, review_threshold=0.0)


def _seed(url: str, items: int, review: bool, curators: int) -> tuple[str, list[str]]:
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rows = catalog_store.rows_from_frame(generate_catalog(items, 7))
    with sessions() as session:
        for start in range(0, len(rows), 10_000):  # bulk INSERT: 100k ORM objects take minutes
            session.execute(insert(CatalogItem), rows[start : start + 10_000])
        catalog_store.bump_catalog_revision(session)
        configs.save_config(session, _config(review), "bench", True)
        token = accounts.create_token(session, "bench-client")
        curator_tokens = []
        for index in range(curators if review else 0):
            name = f"bench-curator-{index}"
            accounts.add_curator(session, name, "bench-password")
            curator_tokens.append(
                accounts.create_token(session, f"{name}-tool", curator_username=name)
            )
        session.commit()
    engine.dispose()
    return token, curator_tokens


RANK_APP = "curation_app:create_app()"
# The reference served with the same settings (bench/stack_ceiling.py).
CEILING_APP = "stack_ceiling:create_app()"


@contextmanager
def _gunicorn(
    url: str, port: int, workers: int, threads: int, feed: str, app: str = RANK_APP
) -> Iterator[int]:
    environment = {
        **os.environ,
        "HITL_DATABASE_URL": url,
        "HITL_SECURE_COOKIES": "0",
        "HITL_CHANGE_FEED": feed,
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--log-level", "warning", "--timeout", "600", "--pythonpath", str(ROOT / "bench"), app,
    ]  # fmt: skip
    # The long worker timeout: a worker's first rank loads the whole catalog, which takes a
    # while at 100k items on a busy machine; gunicorn's 30 s default would kill it midway.
    server = subprocess.Popen(command, cwd=ROOT, env=environment)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/api/v1/openapi.json")
                connection.getresponse().read()
                connection.close()
                break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError("gunicorn did not start within 120 s")
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


class _Client:
    """One keep-alive connection; reconnects once if the server closed it."""

    def __init__(self, port: int, token: str, timeout: float = 60.0) -> None:
        self.port, self.timeout = port, timeout
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        data = json.dumps(body)
        started = time.perf_counter()
        for attempt in (0, 1):
            try:
                self.connection.request("POST", path, data, self.headers)
                response = self.connection.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
                if attempt:
                    raise
        elapsed = (time.perf_counter() - started) * 1000.0
        return response.status, json.loads(payload or b"{}"), elapsed


def _run_threads(count: int, target: Any) -> float:
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def drive(
    port: int,
    token: str,
    curator_tokens: list[str],
    clients: int,
    seconds: float,
    batch_size: int,
) -> None:
    """The client process: rank load (with curators if any), then rewards; prints JSON."""
    contexts = generate_customers(CONTEXTS, 11)
    rank_ms: list[list[float]] = [[] for _ in range(clients)]
    events: list[list[str]] = [[] for _ in range(clients)]
    slates: dict[str, list[str]] = {}
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    run = uuid.uuid4().hex[:8]  # event ids unique per run, so a database can be driven twice

    def ranker(index: int) -> None:
        def ranked(payload: dict[str, Any], elapsed: float) -> None:
            rank_ms[index].append(elapsed)
            events[index].append(payload["event_id"])
            slates[payload["event_id"]] = [entry["item_id"] for entry in payload["slate"]]

        _send_rank_bodies(
            _Client(port, token),
            contexts,
            "/api/v1/rank",
            "rank",
            f"bench-{run}-{index}",
            index,
            clients,
            stop_at,
            errors,
            ranked,
        )

    claim_ms: list[float] = []
    submit_ms: list[float] = []
    reviewed: list[int] = []

    def curator(index: int) -> None:
        client = _Client(port, curator_tokens[index])
        while time.monotonic() < stop_at:
            status, payload, elapsed = client.post("/api/v1/review/claim", {})
            claim_ms.append(elapsed)
            task = payload.get("task") if status == 200 else None
            if status != 200:
                errors.append(f"claim {status}: {payload.get('error')}")
            if task is None:
                time.sleep(0.05)
                continue
            verdicts = [{"position": i["position"], "verdict": "keep"} for i in task["slate"]]
            body = {"lease_token": task["lease_token"], "verdicts": verdicts, "seconds_spent": 1}
            status, payload, elapsed = client.post(f"/api/v1/review/{task['task_id']}", body)
            submit_ms.append(elapsed)
            if status != 200:
                errors.append(f"submit {status}: {payload.get('error')}")
            else:
                reviewed.append(int(task["task_id"]))

    def both(index: int) -> None:
        (ranker if index < clients else curator)(index if index < clients else index - clients)

    rank_seconds = _run_threads(clients + len(curator_tokens), both)
    ranked = [event for per_thread in events for event in per_thread]
    singly, batched = ranked[::2], ranked[1::2]
    reward_ms: list[list[float]] = [[] for _ in range(clients)]
    duplicates = [0] * clients

    def rewarder(index: int) -> None:
        client = _Client(port, token)
        for n, event in enumerate(singly[index::clients]):
            for repeat in (False, True) if n % 10 == 0 else (False,):
                path = f"/api/v1/events/{event}/reward"
                status, payload, elapsed = client.post(path, {"value": 1.0})
                if status != 202:
                    errors.append(f"reward {status}: {payload.get('error')}")
                    continue
                reward_ms[index].append(elapsed)
                duplicates[index] += int(bool(payload.get("duplicate")) != repeat)

    reward_seconds = _run_threads(clients, rewarder)
    entries = [
        {"event_id": event, "item_id": item, "value": float(n % 2)}
        for event in batched
        for n, item in enumerate(slates[event])
    ]
    batches = [entries[start : start + batch_size] for start in range(0, len(entries), batch_size)]
    batch_ms: list[list[float]] = [[] for _ in range(clients)]
    batch_rewards = [0] * clients

    def batch_rewarder(index: int) -> None:
        client = _Client(port, token)
        for n, batch in enumerate(batches[index::clients]):
            for repeat in (False, True) if n % 10 == 0 else (False,):
                status, payload, elapsed = client.post("/api/v1/rewards", {"rewards": batch})
                if status != 202:
                    errors.append(f"reward batch {status}: {payload.get('error')}")
                    continue
                batch_ms[index].append(elapsed)
                batch_rewards[index] += len(batch)
                answers = payload.get("rewards", [])
                duplicates[index] += sum(bool(a["duplicate"]) != repeat for a in answers)

    batch_seconds = _run_threads(clients, batch_rewarder)
    all_rank = [m for per_thread in rank_ms for m in per_thread]
    all_reward = [m for per_thread in reward_ms for m in per_thread]
    all_batch = [m for per_thread in batch_ms for m in per_thread]
    result: dict[str, Any] = {
        "rank_requests": len(all_rank),
        "rank_rps": round(len(all_rank) / rank_seconds, 1),
        "rank_p50_ms": round(float(np.percentile(all_rank, 50)), 2) if all_rank else None,
        "rank_p99_ms": round(float(np.percentile(all_rank, 99)), 2) if all_rank else None,
        "reward_requests": len(all_reward),
        "reward_rps": round(len(all_reward) / reward_seconds, 1),
        "reward_p99_ms": round(float(np.percentile(all_reward, 99)), 2) if all_reward else None,
        "reward_batch_size": batch_size,
        "reward_batch_requests": len(all_batch),
        "reward_batch_rewards_per_s": round(sum(batch_rewards) / batch_seconds, 1),
        "reward_batch_p99_ms": round(float(np.percentile(all_batch, 99)), 2) if all_batch else None,
        "reward_duplicate_answers_wrong": sum(duplicates),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "distinct_rewards": len(singly) + len(entries),
    }
    if curator_tokens:
        result |= {
            "reviewed": len(reviewed),
            "reviewed_twice_by_clients": len(reviewed) - len(set(reviewed)),
            "claim_p99_ms": round(float(np.percentile(claim_ms, 99)), 2) if claim_ms else None,
            "submit_p99_ms": round(float(np.percentile(submit_ms, 99)), 2) if submit_ms else None,
        }
    print(json.dumps(result))


def _send_rank_bodies(
    client: _Client,
    contexts: list[dict[str, Any]],
    path: str,
    label: str,
    event_prefix: str,
    index: int,
    clients: int,
    stop_at: float,
    errors: list[str],
    on_created: Callable[[dict[str, Any], float], None],
) -> None:
    """One client thread's requests until `stop_at`: the rank's bodies (this thread's share of
    the contexts, a fresh event id each) to `path`. The rank and its ceiling both send through
    here, so the reference gets exactly the rank's requests; `on_created` sees each 201."""
    n = index
    while time.monotonic() < stop_at:
        body = {"context": contexts[n % CONTEXTS], "event_id": f"{event_prefix}-{n}"}
        status, payload, elapsed = client.post(path, body)
        n += clients
        if status != 201:
            errors.append(f"{label} {status}: {payload.get('error')}")
            continue
        on_created(payload, elapsed)


def drive_ceiling(port: int, token: str, clients: int, seconds: float) -> None:
    """The client process for the reference: the rank's bodies to `POST /ceiling`; prints JSON."""
    contexts = generate_customers(CONTEXTS, 11)
    elapsed_ms: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    run = uuid.uuid4().hex[:8]

    def sender(index: int) -> None:
        _send_rank_bodies(
            _Client(port, token),
            contexts,
            "/ceiling",
            "ceiling",
            f"ceiling-{run}-{index}",
            index,
            clients,
            stop_at,
            errors,
            lambda _payload, elapsed: elapsed_ms[index].append(elapsed),
        )

    wall = _run_threads(clients, sender)
    every = [m for per_thread in elapsed_ms for m in per_thread]
    print(
        json.dumps(
            {
                "stack_ceiling_rps": round(len(every) / wall, 1),
                "stack_ceiling_p50_ms": round(float(np.percentile(every, 50)), 2),
                "stack_ceiling_p99_ms": round(float(np.percentile(every, 99)), 2),
                "stack_ceiling_errors": len(errors),
            }
        )
    )


def _warm(port: int, token: str, connections: int, path: str) -> None:
    """Several requests on one connection per worker thread before the clock starts."""

    def warm(index: int) -> None:
        client = _Client(port, token, timeout=600)
        for n in range(4):
            body = {"context": {"segment": "warm-up"}, "event_id": f"warm-{index}-{n}"}
            client.post(path, body)

    _run_threads(connections, warm)


def _client_process(arguments: list[str]) -> dict[str, Any]:
    command = [sys.executable, __file__, *arguments]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return figures


def in_process_rate(url: str, seconds: float) -> float:
    """Proposals per second of the engine alone (this process, same catalog and config).

    With one BLAS thread, as in the web workers (bandit/engine/native_threads.py).
    """
    one_blas_thread()
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        recommender = EngineRuntime(np.random.default_rng(5)).serving(session).recommender
    engine.dispose()
    contexts = generate_customers(CONTEXTS, 11)
    for context in contexts[:20]:
        recommender.propose(context)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        recommender.propose(contexts[count % CONTEXTS])
        count += 1
    return count / (time.perf_counter() - started)


def _stored(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        decisions = session.scalar(select(func.count()).select_from(Decision)) or 0
        outcomes = session.scalar(select(func.count()).select_from(Outcome)) or 0
    engine.dispose()
    return {"decisions_stored": decisions, "rewards_stored": outcomes}


def main() -> None:
    """Seed, serve, drive from a separate process, measure the engine alone, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--review", action="store_true", help="curators claim and submit too")
    parser.add_argument("--curators", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100, help="rewards per batch request")
    parser.add_argument("--change-feed", default="notify", choices=("notify", "request"))
    parser.add_argument("--server-url", default=DEFAULT_SERVER)
    parser.add_argument("--drive", nargs=3, metavar=("PORT", "TOKEN", "CURATOR_TOKENS"))
    parser.add_argument("--drive-ceiling", nargs=2, metavar=("PORT", "TOKEN"))
    args = parser.parse_args()
    if args.drive:  # the client process
        port, token, curators = args.drive
        curator_tokens = [t for t in curators.split(",") if t]
        drive(int(port), token, curator_tokens, args.clients, args.seconds, args.batch)
        return
    if args.drive_ceiling:
        port, token = args.drive_ceiling
        drive_ceiling(int(port), token, args.clients, args.seconds)
        return
    with scratch_database(args.server_url) as url:
        token, curator_tokens = _seed(url, args.items, args.review, args.curators)
        port = _free_port()
        connections = args.workers * args.threads
        load = ["--clients", str(args.clients), "--seconds", str(args.seconds)]
        with _gunicorn(url, port, args.workers, args.threads, args.change_feed):
            # Every worker loads the catalog and the model before the clock starts.
            _warm(port, token, connections, "/api/v1/rank")
            figures = _client_process(
                ["--drive", str(port), token, ",".join(curator_tokens), *load,
                 "--batch", str(args.batch)]
            )  # fmt: skip
        stored = _stored(url)
        stack_ceiling.create_table(url)
        port = _free_port()
        with _gunicorn(url, port, args.workers, args.threads, args.change_feed, CEILING_APP):
            _warm(port, token, connections, "/ceiling")
            ceiling = _client_process(["--drive-ceiling", str(port), token, *load])
        propose_rate = in_process_rate(url, min(args.seconds, 10.0))
    warmups = 4 * args.workers * args.threads
    distinct_rewards = figures.pop("distinct_rewards")
    result = {
        **figures,
        "in_process_propose_per_s": round(propose_rate, 1),
        "serving_efficiency": round(figures["rank_rps"] / propose_rate, 3),
        **ceiling,
        "rank_to_stack_ceiling": round(figures["rank_rps"] / ceiling["stack_ceiling_rps"], 3),
        "items": args.items,
        "client_threads": args.clients,
        "gunicorn": f"{args.workers}x{args.threads}",
        "change_feed": args.change_feed,
        "review": args.review,
        # Every acknowledged rank is a stored decision, and every distinct reward one outcome.
        "decisions_lost": figures["rank_requests"] + warmups - stored["decisions_stored"],
        "rewards_lost": distinct_rewards - stored["rewards_stored"],
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
