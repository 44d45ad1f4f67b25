"""Interoperability: the log as Vowpal Wabbit DSJSON lines and as Open Bandit Pipeline arrays.

DSJSON (VW's decision-service JSON, read by `vw --dsjson --cb_explore_adf`): one line per
(event, position) with `_label_cost` (= -reward), `_label_probability`, `_label_Action`
(1-based index of the chosen action in `_multi`), `_labelIndex` (0-based), `a` (1-based action
indices, chosen first) and `p` (their probabilities), `c` holding the shared namespace and the
`_multi` action list. Features are taken from `bandit.vw_format`'s own lines, so VW sees the
same features from the file as from the live loop.

Open Bandit Pipeline: the dict its estimators' `estimate_policy_value` takes, `action`,
`reward`, `pscore`, `position` per round and `action_dist` of shape (n_rounds, n_actions,
len_list), where round i's distribution sits at `action_dist[i, :, position[i]]`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from bandit.engine import vw_format
from bandit.ope.log_format import ReplayLog
from bandit.ope.policy_target import catalog_rows, context_dicts
from bandit.ope.reward_model import context_matrix
from bandit.ope.targets import TargetDistribution, TargetError

MAX_OBP_CELLS = 200_000_000


def _namespace(line: str) -> tuple[str, dict[str, float]]:
    """Parse one of vw_format's lines (`[shared ]|NS f=v g:1.5`) into a DSJSON namespace."""
    head, _, body = line.partition("|")
    name, _, tokens = body.partition(" ")
    features: dict[str, float] = {}
    for token in tokens.split():
        feature, colon, value = token.rpartition(":")
        if colon and "=" not in value:
            features[feature] = float(value)
        else:
            features[token] = 1.0
    return name, features


def dsjson_lines(log: ReplayLog) -> Iterator[str]:
    """One DSJSON line per log row, in file order; needs the candidates and items tables."""
    if log.candidates is None or log.items is None:
        raise TargetError("dsjson: the log needs its candidates and items tables")
    items = catalog_rows(log.items)
    action_ids = log.actions.to_pylist()
    contexts = context_dicts(log.context_frame())
    stamps = pd.to_datetime(log.rounds.column("timestamp").to_pandas(), utc=True, format="ISO8601")
    event_ids = log.rounds.column("event_id").to_pylist()
    candidates = log.candidates
    by_row = np.argsort(candidates.row, kind="stable")
    bounds = np.searchsorted(candidates.row[by_row], np.arange(log.rows + 1))
    for row in range(log.rows):
        slots = by_row[bounds[row] : bounds[row + 1]]
        offered = candidates.action[slots]
        chosen = int(np.flatnonzero(offered == log.action[row])[0])
        shared_ns, shared = _namespace(vw_format.shared_line(contexts[row]))
        multi = []
        for code in offered:
            ns, features = _namespace(vw_format.action_line(items[action_ids[code]]))
            multi.append({ns: features})
        order = [chosen, *[i for i in range(offered.size) if i != chosen]]
        document: dict[str, Any] = {
            "_label_cost": vw_format.reward_to_cost(log.reward[row]),
            "_label_probability": float(log.propensity[row]),
            "_label_Action": chosen + 1,
            "_labelIndex": chosen,
            "Timestamp": stamps.iloc[row].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "Version": "1",
            "EventId": f"{event_ids[row]}/{int(log.position[row])}",
            "a": [i + 1 for i in order],
            "c": {shared_ns: shared, "_multi": multi},
            "p": [float(candidates.probability[slots][i]) for i in order],
        }
        yield json.dumps(document, separators=(",", ":"))


def obp_feedback(log: ReplayLog, target: TargetDistribution | None = None) -> dict[str, Any]:
    """Open Bandit Pipeline's bandit-feedback arrays, with `action_dist` when a target is given."""
    n_actions = max(len(log.actions), target.vocabulary_size if target else 0)
    len_list = int(log.position.max()) + 1
    frame = log.context_frame()
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_id")])
    feedback: dict[str, Any] = {
        "n_rounds": log.rows,
        "n_actions": n_actions,
        "len_list": len_list,
        "action": log.action.copy(),
        "position": log.position.copy(),
        "reward": log.reward.copy(),
        "pscore": log.propensity.copy(),
        "context": context_matrix(frame, max_levels=20),
        "action_ids": np.array(log.actions.to_pylist(), dtype=object),
    }
    if target is None:
        return feedback
    cells = log.rows * n_actions * len_list
    if cells > MAX_OBP_CELLS:
        raise TargetError(
            f"obp: action_dist would have {cells:,} cells (n_rounds x n_actions x len_list); "
            f"the limit is {MAX_OBP_CELLS:,}"
        )
    support = target.require_support("obp action_dist")
    action_dist = np.zeros((log.rows, n_actions, len_list))
    action_dist[support.row, support.action, log.position[support.row]] = support.probability
    feedback["action_dist"] = action_dist
    return feedback
