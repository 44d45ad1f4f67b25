"""Explanations: which features moved each proposed item's score, by leaving each one out.

The contribution of feature f to item a's score is score(a) - score(a without f), where
leaving f out also removes its crossings with the other namespace (`-q UI`). The scores are
the policy's own estimated rewards, so the method works the same under every exploration
reduction and never depends on VW's audit or invert-hash names, which some reductions
garble. All variants of all explained items go to VW in one multi-line example: with the
context carried inside each action line, each variant is scored on its own features alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bandit.engine import vw_format
from bandit.engine.catalog import CatalogRow
from bandit.engine.policy import VWPolicy

TOP_FEATURES = 3
# Contributions smaller than this are noise from float rounding, not a reason.
MIN_CONTRIBUTION = 1e-4


@dataclass(frozen=True)
class Contribution:
    """One feature and how much it raised (or lowered) an item's estimated reward."""

    feature: str
    weight: float


def explain(
    policy: VWPolicy,
    context: Mapping[str, Any],
    rows: Sequence[CatalogRow],
    top: int = TOP_FEATURES,
) -> list[tuple[Contribution, ...]]:
    """The `top` features by absolute contribution for each of `rows`, largest first."""
    return explain_features(policy, vw_format.context_features(context), rows, top)


def explain_features(
    policy: VWPolicy,
    shared: Sequence[str],
    rows: Sequence[CatalogRow],
    top: int = TOP_FEATURES,
) -> list[tuple[Contribution, ...]]:
    """`explain` for a context already formatted as VW features (`context_features`)."""
    shared = list(shared)
    lines: list[str] = []
    labels: list[list[str]] = []
    for row in rows:
        item = vw_format.item_features(row)
        lines.append(vw_format.inline_action_line(shared, item))
        names = []
        for i, feature in enumerate(shared):
            lines.append(vw_format.inline_action_line(shared[:i] + shared[i + 1 :], item))
            names.append(vw_format.feature_label(feature, vw_format.CONTEXT_NAMESPACE))
        for i, feature in enumerate(item):
            lines.append(vw_format.inline_action_line(shared, item[:i] + item[i + 1 :]))
            names.append(vw_format.feature_label(feature, vw_format.ITEM_NAMESPACE))
        labels.append(names)
    if not lines:
        return []
    # Each variant is this context's alone: parse them for this call, keep none.
    scores = policy.score(vw_format.EMPTY_SHARED, lines, keep_actions=False)[1]
    explanations = []
    start = 0
    for names in labels:
        full, without = scores[start], scores[start + 1 : start + 1 + len(names)]
        start += 1 + len(names)
        contribution = full - without
        order = np.argsort(-np.abs(contribution), kind="stable")[:top]
        explanations.append(
            tuple(
                Contribution(names[i], round(float(contribution[i]), 4))
                for i in order
                if abs(contribution[i]) >= MIN_CONTRIBUTION
            )
        )
    return explanations
