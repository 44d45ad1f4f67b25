"""Engine benchmark, run by hand: throughput against bare Vowpal Wabbit, propose latency at scale.

    .venv/bin/python bench/engine.py [--json] [--decisions N] [--requests N] [--sizes N ...]

Throughput: every loop makes the same decisions over the same pre-built requests (a context
and K candidate items each) with the same rewards. The project loop goes through
`Recommender.propose` (eligibility, pre-score, VW text, per-position decision, uncertainty,
route, reasons) and `learning.apply_rounds` (the learner's path from a logged round to VW),
once with explanations left for later (the default) and once with `explain=True`; the bare
loops hand pre-formatted VW text to a `vowpalwabbit.Workspace` (parse, predict, sample, learn),
through the public `parse` and through VW's native text parser (`native_vw_decisions_per_s`:
every request and update parsed from its 101 lines; the policy keeps its action lines parsed
across requests instead, see `bandit/engine/policy.py`). A decision is one
`--cb_explore_adf` choice (slate size 1) so all do the same VW work.

Latency: `propose` for one request (K=100 candidates, a slate of M=5) on catalogs of 10k, 100k
and 1M items, on one core (BLAS threads pinned to 1 before numpy loads), without and with
explanations, interleaved request by request.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pylibvw  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vowpalwabbit import Workspace  # noqa: E402

from bandit.engine import vw_format  # noqa: E402
from bandit.engine.catalog import CatalogIndex, CatalogRow  # noqa: E402
from bandit.engine.config import PolicyConfig  # noqa: E402
from bandit.engine.policy import VWPolicy, vw_arguments  # noqa: E402
from bandit.engine.recommender import Recommender  # noqa: E402
from bandit.engine.records import LoggedRound  # noqa: E402
from bandit.services.learning import apply_rounds  # noqa: E402
from sim.demo_data import generate_catalog, generate_customers  # noqa: E402

SEED = 7
CATALOG_SIZES = (10_000, 100_000, 1_000_000)
CANDIDATES = 100
SLATE = 5
ROUNDS = 5


def catalog_index(items: int, seed: int) -> CatalogIndex:
    """A generated catalog as the engine's column arrays (no database involved)."""
    frame = generate_catalog(items, seed)
    embeddings = frame[[f"emb_{d}" for d in range(8)]].to_numpy(dtype=float).tolist()
    columns = ("item_id", "title", "category", "style", "color", "material", "brand")
    values = {name: frame[name].tolist() for name in columns}
    prices, stock = frame["price"].tolist(), frame["stock"].tolist()
    popularity = frame["popularity"].tolist()
    return CatalogIndex(
        CatalogRow(
            item_id=values["item_id"][i],
            title=values["title"][i],
            category=values["category"][i],
            attributes={
                "style": values["style"][i],
                "color": values["color"][i],
                "material": values["material"][i],
                "brand": values["brand"][i],
                "popularity": popularity[i],
            },
            embedding=embeddings[i],
            price=prices[i],
            stock=stock[i],
        )
        for i in range(items)
    )


def true_reward(context: dict[str, Any], row: CatalogRow) -> float:
    """A fixed preference: style and favourite category, so both loops learn the same thing."""
    style = float(row.attributes.get("style") == context["preferred_style"])
    return 0.6 * style + 0.4 * float(row.category in context["favorite_categories"])


def throughput(decisions: int) -> dict[str, float]:
    """Decisions per second of the project loop (both explanation modes) and the bare loops."""
    full = catalog_index(20_000, SEED)
    in_stock = np.flatnonzero(full.available)[:CANDIDATES]
    candidates = CatalogIndex(full.rows[i] for i in in_stock)
    contexts = generate_customers(200, SEED)
    config = PolicyConfig(candidate_count=CANDIDATES, slate_size=1, epsilon=0.1)
    rewards = np.array([[true_reward(c, row) for row in candidates.rows] for c in contexts])
    shared_lines = [vw_format.shared_line(c) for c in contexts]
    action_lines = [vw_format.action_line(row) for row in candidates.rows]
    ids = {row.item_id: i for i, row in enumerate(candidates.rows)}

    chunk = max(1, decisions // ROUNDS)

    def project_loop(explain: bool) -> None:
        recommender = Recommender(
            candidates, config, VWPolicy.fresh(config), np.random.default_rng(1)
        )
        rows = {row.item_id: row for row in candidates.rows}
        lines: dict[str, str] = {}
        for n in range(chunk):
            context = contexts[n % len(contexts)]
            proposal = recommender.propose(context, explain=explain)
            pick = proposal.slate[0]
            round_ = LoggedRound(
                event_id=str(n),
                context=context,
                offered_item_ids=tuple(c.item_id for c in proposal.candidates),
                chosen_item_id=pick.item_id,
                position=0,
                probability=pick.position_probability,
                reward=float(rewards[n % len(contexts), ids[pick.item_id]]),
                reward_source="bench",
            )
            apply_rounds(recommender.policy, [round_], rows, lines)

    def bare_loop() -> None:
        workspace = Workspace(vw_arguments(config))
        rng = np.random.default_rng(1)
        for n in range(chunk):
            shared = shared_lines[n % len(contexts)]
            examples = workspace.parse([shared, *action_lines])
            pmf = np.asarray(workspace.predict(examples), dtype=float)
            workspace.finish_example(examples)
            chosen = int(rng.choice(pmf.size, p=pmf / pmf.sum()))
            reward = float(rewards[n % len(contexts), chosen])
            workspace.learn(
                vw_format.labelled_example(shared, action_lines, chosen, reward, pmf[chosen])
            )
        workspace.finish()

    def native_loop() -> None:
        # The same loop on pylibvw's native text parser: the reference for the
        # engine (`ratio_to_native_vw`).
        workspace = Workspace(vw_arguments(config))
        rng = np.random.default_rng(1)
        for n in range(chunk):
            shared = shared_lines[n % len(contexts)]
            examples = workspace._parse("\n".join([shared, *action_lines]))
            pylibvw.vw.predict_multi(workspace, examples)
            pmf = np.asarray(examples[0].get_action_scores(), dtype=float)
            pylibvw.vw._finish_example_multi_ex(workspace, examples)
            chosen = int(rng.choice(pmf.size, p=pmf / pmf.sum()))
            reward = float(rewards[n % len(contexts), chosen])
            lines = vw_format.labelled_example(shared, action_lines, chosen, reward, pmf[chosen])
            examples = workspace._parse("\n".join(lines))
            pylibvw.vw.learn_multi(workspace, examples)
            pylibvw.vw._finish_example_multi_ex(workspace, examples)
        workspace.finish()

    loops = {
        "project": lambda: project_loop(explain=False),
        "project_explained": lambda: project_loop(explain=True),
        "vw": bare_loop,
        "native": native_loop,
    }
    # Interleaved in rounds (each loop makes `chunk` decisions in turn, from a fresh
    # workspace), so load from other jobs on a shared machine falls on every loop alike.
    elapsed = dict.fromkeys(loops, 0.0)
    for _ in range(ROUNDS):
        for name, loop in loops.items():
            started = time.perf_counter()
            loop()
            elapsed[name] += time.perf_counter() - started
    return {name: chunk * ROUNDS / seconds for name, seconds in elapsed.items()}


def trained_policy(catalog: CatalogIndex, config: PolicyConfig, rounds: int) -> VWPolicy:
    """A policy with some learning behind it, so scores and pmfs are not uniform."""
    policy = VWPolicy.fresh(config)
    recommender = Recommender(catalog, config, policy, np.random.default_rng(2))
    contexts = generate_customers(50, SEED + 1)
    rows = {}
    batch = []
    for n in range(rounds):
        context = contexts[n % len(contexts)]
        proposal = recommender.propose(context, slate_size=1)
        pick = proposal.slate[0]
        row = catalog.row(pick.item_id)
        assert row is not None
        for c in proposal.candidates:
            rows[c.item_id] = catalog.rows[catalog.index_of[c.item_id]]
        batch.append(
            LoggedRound(
                str(n),
                context,
                tuple(c.item_id for c in proposal.candidates),
                pick.item_id,
                0,
                pick.position_probability,
                true_reward(context, row),
                "bench",
            )
        )
    apply_rounds(policy, batch, rows)
    return policy


def latency(items: int, requests: int) -> dict[str, dict[str, float]]:
    """Propose latency percentiles (ms) on a catalog of `items`, without and with `why`."""
    catalog = catalog_index(items, SEED)
    config = PolicyConfig(candidate_count=CANDIDATES, slate_size=SLATE, epsilon=0.1)
    policy = trained_policy(catalog, replace(config, slate_size=1), 300)
    recommender = Recommender(catalog, config, policy, np.random.default_rng(3))
    contexts = generate_customers(100, SEED + 2)
    for context in contexts[:10]:  # warm caches the way a serving process would be
        recommender.propose(context)
    elapsed: dict[bool, list[float]] = {False: [], True: []}
    for n in range(requests):
        context = contexts[n % len(contexts)]
        for explain in (False, True):  # interleaved, so load from other jobs hits both alike
            started = time.perf_counter()
            recommender.propose(context, explain=explain)
            elapsed[explain].append((time.perf_counter() - started) * 1000.0)
    return {
        mode: {
            "p50": round(float(np.percentile(elapsed[explain], 50)), 3),
            "p99": round(float(np.percentile(elapsed[explain], 99)), 3),
        }
        for mode, explain in (("lazy", False), ("explained", True))
    }


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(CATALOG_SIZES))
    args = parser.parse_args()
    timings = throughput(args.decisions)
    project, vw, native = timings["project"], timings["vw"], timings["native"]
    explained = timings["project_explained"]
    latencies = {str(items): latency(items, args.requests) for items in args.sizes}
    result = {
        # Explanations lazy (computed when a curator opens the task or a client asks).
        "decisions_per_s": round(project, 1),
        "vw_decisions_per_s": round(vw, 1),
        "ratio_to_vw": round(project / vw, 3),
        "native_vw_decisions_per_s": round(native, 1),
        "ratio_to_native_vw": round(project / native, 3),
        # The same loop with every proposal explained at once.
        "explained_decisions_per_s": round(explained, 1),
        "explained_ratio_to_native_vw": round(explained / native, 3),
        "propose_ms": {items: figures["lazy"] for items, figures in latencies.items()},
        "propose_explained_ms": {
            items: figures["explained"] for items, figures in latencies.items()
        },
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"project propose+learn:          {result['decisions_per_s']} decisions/s")
    print(f"  with every proposal explained: {result['explained_decisions_per_s']} decisions/s")
    print(f"bare VW predict+learn:          {result['vw_decisions_per_s']} decisions/s")
    print(f"native-parser VW loop:          {result['native_vw_decisions_per_s']} decisions/s")
    print(f"ratio to VW:                    {result['ratio_to_vw']}")
    print(
        f"ratio to native VW:             {result['ratio_to_native_vw']} lazy, "
        f"{result['explained_ratio_to_native_vw']} explained (target >= 1.0)"
    )
    for items, figures in latencies.items():
        print(
            f"propose K={CANDIDATES} M={SLATE} at {int(items):>9,} items: "
            f"p50 {figures['lazy']['p50']} ms, p99 {figures['lazy']['p99']} ms; explained "
            f"p50 {figures['explained']['p50']} ms, p99 {figures['explained']['p99']} ms"
        )


if __name__ == "__main__":
    main()
