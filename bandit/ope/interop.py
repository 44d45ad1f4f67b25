"""Interoperability: the log as Vowpal Wabbit DSJSON lines and as Open Bandit Pipeline arrays.

DSJSON (VW's decision-service JSON). Features are taken from `bandit.engine.vw_format`'s own
lines, whose names never start with `_` (VW's JSON parser drops such keys as metadata; the
format escapes them reversibly), so VW sees the same features from the file as from the live
loop.
- One-position logs: one CB line per row (`vw --dsjson --cb_explore_adf`): `_label_cost`
  (= -reward), `_label_probability`, `_label_Action` (1-based index of the chosen action in
  `_multi`), `_labelIndex` (0-based), `a` (1-based action indices, chosen first) and `p`
  (their probabilities), `c` holding the shared namespace and the `_multi` action list.
- Slate logs: one CCB line per event (`vw --dsjson --ccb_explore_adf`): `c._multi` holds every
  candidate of the event, `c._slots` one slot per position, and `_outcomes` per slot its
  `_label_cost`, `_a` (0-based indices into `_multi`, the logged item first, then the other
  items still free at that position) and `_p` (their probabilities at that position).

Open Bandit Pipeline (0.5.7): the arrays its estimators' `estimate_policy_value` take, checked
by its own input validators (tests/ope/test_interop.py restates their rules): integer `action`
codes (the item ids in the saved `action_ids` text array and the FILE.ids.csv table),
`reward`, `pscore`, `position`, and `action_dist` (n_rounds, n_actions, len_list) where every
(round, position) distribution sums to 1: round i's slice at position k is the target's
distribution at position k of round i's event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from bandit.engine import vw_format
from bandit.ope.context_features import context_matrix
from bandit.ope.log_format import ReplayLog
from bandit.ope.policy_target import catalog_rows, context_dicts
from bandit.ope.slate import prefix_products
from bandit.ope.targets import TargetDistribution, TargetError

MAX_OBP_CELLS = 200_000_000


def _namespace(line: str) -> tuple[str, dict[str, float]]:
    """Parse one of vw_format's lines (`[shared ]|NS f=v g:1.5`) into a DSJSON namespace."""
    _, _, body = line.partition("|")
    name, _, tokens = body.partition(" ")
    features: dict[str, float] = {}
    for token in tokens.split():
        feature, colon, value = token.rpartition(":")
        if colon and "=" not in value:
            features[feature] = float(value)
        else:
            features[token] = 1.0
    return name, features


class _Rows:
    """What every DSJSON line needs, built once per log."""

    def __init__(self, log: ReplayLog) -> None:
        if log.candidates is None or log.items is None:
            raise TargetError("dsjson: the log needs its candidates and items tables")
        items = catalog_rows(log.items)
        self.action_ids = log.actions.to_pylist()
        self.item_json = {
            code: dict([_namespace(vw_format.action_line(items[a]))])
            for code, a in enumerate(self.action_ids)
            if a in items
        }
        self.contexts = context_dicts(log.context_frame())
        stamps = pd.to_datetime(
            log.rounds.column("timestamp").to_pandas(), utc=True, format="ISO8601"
        )
        self.stamps = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").tolist()
        self.event_ids = log.rounds.column("event_id").cast("string").to_pylist()
        candidates = log.candidates
        by_row = np.argsort(candidates.row, kind="stable")
        bounds = np.searchsorted(candidates.row[by_row], np.arange(log.rows + 1))
        self.slots = [by_row[bounds[r] : bounds[r + 1]] for r in range(log.rows)]
        self.candidates = candidates

    def shared(self, row: int) -> dict[str, Any]:
        name, features = _namespace(vw_format.shared_line(self.contexts[row]))
        return {name: features}


def dsjson_lines(log: ReplayLog) -> Iterator[str]:
    """DSJSON lines of the log in file order: CB per row, or CCB per event for slates."""
    rows = _Rows(log)
    if int(np.bincount(log.event).max()) > 1:
        yield from _ccb_lines(log, rows)
        return
    candidates = rows.candidates
    for row in range(log.rows):
        slots = rows.slots[row]
        offered = candidates.action[slots]
        chosen = int(np.flatnonzero(offered == log.action[row])[0])
        order = [chosen, *[i for i in range(offered.size) if i != chosen]]
        document: dict[str, Any] = {
            "_label_cost": vw_format.reward_to_cost(log.reward[row]),
            "_label_probability": float(log.propensity[row]),
            "_label_Action": chosen + 1,
            "_labelIndex": chosen,
            "Timestamp": rows.stamps[row],
            "Version": "1",
            "EventId": rows.event_ids[row],
            "a": [i + 1 for i in order],
            "c": {**rows.shared(row), "_multi": [rows.item_json[int(c)] for c in offered]},
            "p": [float(candidates.probability[slots][i]) for i in order],
        }
        yield json.dumps(document, separators=(",", ":"))


def _ccb_lines(log: ReplayLog, rows: _Rows) -> Iterator[str]:
    order = np.lexsort((log.position, log.event))
    starts = np.flatnonzero(np.diff(np.append(-1, log.event[order])) != 0)
    for first, stop in zip(starts, np.append(starts[1:], order.size), strict=True):
        event_rows = order[first:stop]
        head = int(event_rows[0])
        # Every candidate of the event, in the first position's order (it has them all).
        offered = [int(a) for a in rows.candidates.action[rows.slots[head]]]
        index = {code: i for i, code in enumerate(offered)}
        slots, outcomes = [], []
        for row in event_rows:
            free = rows.candidates.action[rows.slots[row]]
            probability = rows.candidates.probability[rows.slots[row]]
            chosen = int(np.flatnonzero(free == log.action[row])[0])
            ranked = [chosen, *[i for i in range(free.size) if i != chosen]]
            slot_id = f"{rows.event_ids[row]}/{int(log.position[row])}"
            slots.append({"_id": slot_id})
            outcomes.append(
                {
                    "_label_cost": vw_format.reward_to_cost(log.reward[row]),
                    "_id": slot_id,
                    "_a": [index[int(free[i])] for i in ranked],
                    "_p": [float(probability[i]) for i in ranked],
                }
            )
        document = {
            "Timestamp": rows.stamps[head],
            "Version": "1",
            "EventId": rows.event_ids[head],
            "c": {
                **rows.shared(head),
                "_multi": [rows.item_json[c] for c in offered],
                "_slots": slots,
            },
            "_outcomes": outcomes,
        }
        yield json.dumps(document, separators=(",", ":"))


def obp_feedback(log: ReplayLog, target: TargetDistribution | None = None) -> dict[str, Any]:
    """Open Bandit Pipeline's bandit-feedback arrays, with `action_dist` when a target is given.

    When the dense `action_dist` would exceed MAX_OBP_CELLS it is left out and the target's
    distribution is written sparse instead (`target_round`, `target_action`, `target_position`,
    `target_probability`), with `action_dist_skipped` saying why.
    """
    n_actions = max(len(log.actions), target.vocabulary_size if target else 0)
    len_list = int(log.position.max()) + 1
    frame = log.context_frame()
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_id")])
    ids = log.actions.to_pylist() + [
        f"(target action {i})" for i in range(len(log.actions), n_actions)
    ]
    feedback: dict[str, Any] = {
        "n_rounds": np.int64(log.rows),
        "n_actions": np.int64(n_actions),
        "len_list": np.int64(len_list),
        "action": log.action.astype(np.int64),
        "position": log.position.astype(np.int64),
        "reward": log.reward.astype(np.float64),
        "pscore": log.propensity.astype(np.float64),
        "context": context_matrix(frame, max_levels=20),
        "action_ids": np.array([str(i) for i in ids], dtype=str),  # text, loads without pickle
    }
    # The slate estimators' inputs (SlateStandardIPS, SlateRewardInteractionIPS, ...): OBP's
    # `pscore` there is the joint slate probability, called pscore_joint here.
    cascade, _, joint = prefix_products(log.event, log.position, log.propensity)
    feedback.update(slate_id=log.event.astype(np.int64), pscore_cascade=cascade, pscore_joint=joint)
    if log.marginal_propensity is not None:
        feedback["pscore_item_position"] = log.marginal_propensity.astype(np.float64)
    if target is None:
        return feedback
    cascade, _, joint = prefix_products(log.event, log.position, target.logged_probability)
    feedback.update(evaluation_policy_pscore_cascade=cascade, evaluation_policy_pscore_joint=joint)
    if target.marginal is not None:
        feedback["evaluation_policy_pscore_item_position"] = target.marginal.astype(np.float64)
    support = target.require_support("obp action_dist")
    # Round i's distribution at position k is that of its event's row at position k.
    span = len_list
    event_row = np.full((int(log.event.max()) + 1) * span, -1, dtype=np.int64)
    event_row[log.event * span + log.position] = np.arange(log.rows)
    cells = log.rows * n_actions * len_list
    if cells > MAX_OBP_CELLS:
        feedback.update(_sparse_target(log, support, event_row, span))
        feedback["action_dist_skipped"] = np.array(
            f"action_dist would have {cells:,} cells (n_rounds x n_actions x len_list), above "
            f"{MAX_OBP_CELLS:,}; the target is in target_round/action/position/probability"
        )
        return feedback
    by_row = np.zeros((log.rows, n_actions))
    by_row[support.row, support.action] = support.probability
    action_dist = np.empty((log.rows, n_actions, len_list))
    uniform = np.full(n_actions, 1.0 / n_actions)
    for k in range(len_list):
        source = event_row[log.event * span + k]
        action_dist[:, :, k] = np.where(
            source[:, None] >= 0, by_row[np.maximum(source, 0)], uniform
        )
    feedback["action_dist"] = action_dist
    return feedback


def _sparse_target(
    log: ReplayLog, support: Any, event_row: np.ndarray, span: int
) -> dict[str, np.ndarray]:
    rounds, actions, positions, probabilities = [], [], [], []
    for k in range(span):
        source = event_row[log.event * span + k]
        # Support rows of the source row, re-keyed to every round of the event.
        order = np.argsort(support.row, kind="stable")
        starts = np.searchsorted(support.row[order], source)
        stops = np.searchsorted(support.row[order], source, side="right")
        have = source >= 0
        lengths = np.where(have, stops - starts, 0)
        round_index = np.repeat(np.arange(log.rows), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        picked = order[np.repeat(starts, lengths) + offsets]
        rounds.append(round_index)
        actions.append(support.action[picked])
        positions.append(np.full(round_index.size, k))
        probabilities.append(support.probability[picked])
    return {
        "target_round": np.concatenate(rounds),
        "target_action": np.concatenate(actions),
        "target_position": np.concatenate(positions),
        "target_probability": np.concatenate(probabilities),
    }


def id_table(feedback: dict[str, Any]) -> pd.DataFrame:
    """The saved id table: OBP action code -> item id."""
    ids = feedback["action_ids"]
    return pd.DataFrame({"action": np.arange(ids.size), "item_id": ids})
