"""A policy config as a target: a fresh VW policy learns progressively over the log.

Events are visited in time order (an event's earliest timestamp, then event), as the live
learner takes decisions. At each event the policy first scores every position's candidates
(the candidates the logging policy had there, given the logged earlier picks), and those pmfs
are the target's distribution for the event's rows; only then does it learn the event's
rounds (logged action, reward and propensity) in position order, as the live learner does.
The live engine draws a whole slate before any of its rewards exists, so no position is
scored by a model that has seen a reward of its own slate. The estimate is thus the value a
policy with these settings would have earned had it been running, learning from the same
stream (the way Azure Personalizer's offline evaluation replays a log), with every reward
learned before the next event: the replay does not model the reward wait or the learner's
passes, which in the live system delay learning further. All VW text comes from
`bandit.vw_format`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandit.engine import vw_format
from bandit.engine.catalog import CatalogRow
from bandit.engine.config import ConfigError, PolicyConfig, load_config_file
from bandit.engine.policy import VWPolicy
from bandit.ope.log_format import LIST_SEPARATOR, KeyedRows, ReplayLog
from bandit.ope.targets import (
    TargetDistribution,
    TargetError,
    file_target,
    from_support,
    logged_target,
    uniform_target,
)

ITEM_BASE_COLUMNS = ("item_id", "title", "category", "price", "stock", "active")


def context_dicts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rebuild request contexts from `context_*` columns: `a|b` text becomes a list again."""
    contexts = []
    for record in frame.to_dict(orient="records"):
        context: dict[str, Any] = {}
        for key, value in record.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if isinstance(value, str) and LIST_SEPARATOR in value:
                value = value.split(LIST_SEPARATOR)
            context[str(key)] = value.item() if isinstance(value, np.generic) else value
        contexts.append(context)
    return contexts


def catalog_rows(items: pd.DataFrame) -> dict[str, CatalogRow]:
    """Catalog rows rebuilt from the log's item table (other columns become attributes)."""
    rows = {}
    for item_id, record in items.to_dict(orient="index").items():
        attributes = {
            str(k): (v.item() if isinstance(v, np.generic) else v)
            for k, v in record.items()
            if k not in ITEM_BASE_COLUMNS and not _missing(v)
        }
        price = record.get("price")
        rows[str(item_id)] = CatalogRow(
            item_id=str(item_id),
            title=str(record.get("title", item_id)),
            category=str(record.get("category", "")),
            attributes=attributes,
            embedding=None,
            price=None if price is None or _missing(price) else float(price),
            stock=1,
        )
    return rows


def time_order(log: ReplayLog) -> np.ndarray:
    """Each row's timestamp as nanoseconds since the epoch, for sorting."""
    stamps = pd.to_datetime(log.rounds.column("timestamp").to_pandas(), utc=True, format="ISO8601")
    return stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def event_runs(log: ReplayLog) -> list[np.ndarray]:
    """The log's rows grouped by event, events in time order (an event's earliest timestamp,
    the decision's), rows by position: the order the live learner learns rounds in."""
    if not log.rows:
        return []
    stamps = time_order(log)
    first = np.full(int(log.event.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, log.event, stamps)
    order = np.lexsort((log.position, log.event, first[log.event]))
    starts = np.flatnonzero(np.diff(log.event[order], prepend=-1))
    return np.split(order, starts[1:])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def progressive_policy_target(log: ReplayLog, config: PolicyConfig) -> TargetDistribution:
    """The target distribution of a VW policy with `config`, learned as it replays the log."""
    return _replayed_policy(log, VWPolicy.fresh(config), config.name, learn=True)


def frozen_model_target(
    log: ReplayLog, model: bytes | None, config: PolicyConfig, name: str
) -> TargetDistribution:
    """The target distribution of a saved model (None: untrained) that does not learn on the
    log: what serving that exact version would have proposed at each logged position."""
    policy = VWPolicy.fresh(config) if model is None else VWPolicy.from_bytes(model, config)
    return _replayed_policy(log, policy, name, learn=False)


def explore_eval_target(log: ReplayLog, config: PolicyConfig, seed: int = 0) -> TargetDistribution:
    """The target distribution of a VW policy with `config` replayed as `--explore_eval` does:
    it learns only from the rows where its own draw agrees with the logged action (rejection
    sampling), so each exploration setting learns from the data it would have seen. An event's
    positions are all scored (the target's pmfs) before any of them goes through VW's
    reduction; VW then decides acceptance with its own in-learn pmf, which at position k > 1
    has learned the event's accepted earlier positions (docs/replay.md gives the size). On
    one-position logs the two pmfs are the same, and the position-estimand `ips` equals VW's
    `--explore_eval` average loss, negated."""
    policy = VWPolicy.explore_evaluator(config, seed)
    return _replayed_policy(log, policy, f"{config.name} (explore_eval)", learn=False, offer=True)


def _replayed_policy(
    log: ReplayLog, policy: VWPolicy, name: str, learn: bool, offer: bool = False
) -> TargetDistribution:
    if log.candidates is None or log.items is None:
        policy.close()
        raise TargetError(
            f"target {name!r}: a policy is replayed over each position's candidates and item "
            "features: the log needs its candidates and items tables"
        )
    item_rows = catalog_rows(log.items)
    action_ids = log.actions.to_pylist()
    unknown = [a for a in set(action_ids) if a not in item_rows]
    if unknown:
        policy.close()
        raise TargetError(f"items: no row for action(s) {', '.join(sorted(unknown)[:5])}")
    action_lines = {a: vw_format.action_line(item_rows[a]) for a in action_ids}
    contexts = context_dicts(log.context_frame())
    candidates = log.candidates
    by_row = np.argsort(candidates.row, kind="stable")
    bounds = np.searchsorted(candidates.row[by_row], np.arange(log.rows + 1))
    pmf_out = np.empty(candidates.row.size)
    try:
        for rows in event_runs(log):
            shared = vw_format.shared_line(contexts[rows[0]])  # an event's positions share it
            slate = []
            for row in rows:
                slots = by_row[bounds[row] : bounds[row + 1]]
                lines = [action_lines[action_ids[a]] for a in candidates.action[slots]]
                chosen = int(np.flatnonzero(candidates.action[slots] == log.action[row])[0])
                # Every position is scored before any round of the event is learned: the live
                # engine draws the whole slate before the slate has a reward.
                pmf_out[slots] = policy.score(shared, lines)[0]
                slate.append((lines, chosen, float(log.reward[row]), float(log.propensity[row])))
            for lines, chosen, reward, propensity in slate:  # in position order, as the learner
                if offer:
                    policy.offer(shared, lines, chosen, reward, propensity)
                elif learn:
                    policy.learn(shared, lines, chosen, reward, propensity)
    finally:
        policy.close()
    support = KeyedRows(candidates.row, candidates.action, pmf_out)
    return from_support(name, log, support, len(log.actions))


def resolve_target(
    log: ReplayLog, spec: str, explore_eval: bool = False, seed: int = 0
) -> TargetDistribution:
    """`uniform`, `logged`, a policy config (.toml/.json) or a distribution file (.parquet/.csv).

    A policy config is replayed progressively, or as VW's `--explore_eval` when asked.
    """
    if spec == "uniform":
        return uniform_target(log)
    if spec == "logged":
        return logged_target(log)
    path = Path(spec)
    if path.suffix in (".toml", ".json"):
        try:
            config = load_config_file(path)
        except (ConfigError, TypeError, OSError) as error:  # the message names the file
            raise TargetError(f"target: invalid policy config: {error}") from error
        if explore_eval:
            return explore_eval_target(log, config, seed)
        return progressive_policy_target(log, config)
    if explore_eval:
        raise TargetError(f"target {spec!r}: --explore-eval replays a policy config (.toml/.json)")
    if path.suffix in (".parquet", ".csv"):
        return file_target(log, path)
    raise TargetError(
        f"target {spec!r}: use uniform, logged, a policy config (.toml/.json) or a "
        "distribution file (.parquet/.csv)"
    )
