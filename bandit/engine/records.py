"""Typed records that flow through the loop: proposals, slate items and logged rounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple


class Candidate(NamedTuple):
    """An item that survived pruning, with the chance it had to get there.

    A named tuple, not a dataclass: a proposal builds K of them per request.
    """

    item_id: str
    candidate_probability: float
    prescore: float
    exploration_slot: bool
    pmf: float
    score: float


@dataclass(frozen=True)
class SlateItem:
    """One position of a proposed slate and the probabilities behind it.

    ``probability`` = ``candidate_probability`` x ``position_probability``, where
    ``position_probability`` is the policy's pmf of the item renormalised over the candidates
    not already placed at earlier positions.
    """

    position: int
    item_id: str
    probability: float
    candidate_probability: float
    position_probability: float
    score: float
    explored: bool
    # Why it was proposed, as (reason code, its number); curation_app turns them into words.
    reasons: tuple[tuple[str, float], ...]
    # The features that moved the score most, as (feature, contribution to the score).
    why: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Proposal:
    """What the policy proposes for one request, before any human sees it."""

    candidates: tuple[Candidate, ...]
    slate: tuple[SlateItem, ...]
    # Position j's pmf over the candidates not placed before it, in candidate order.
    position_pmfs: tuple[tuple[float, ...], ...]
    uncertainty: Mapping[str, float]
    confidence: float
    route: str
    # Whether the slate items' `why` was computed (propose(explain=True)) or left for later.
    explained: bool = True
    # Risk-controlled routing: P(curator keeps the slate), the threshold in force, and the
    # audit draw (an auto-eligible slate is audited with probability `audit_probability`).
    approval_probability: float | None = None
    auto_threshold: float | None = None
    audit: bool = False
    audit_probability: float = 0.0


@dataclass(frozen=True)
class LoggedRound:
    """One learnable choice: a context, the items on offer, the one chosen and its reward.

    Learning, replay and off-policy evaluation all read this type. ``reward_source`` says whose
    judgement ``reward`` is (a ``RewardSource``: the customer, a curator's verdict standing in
    for a customer who never got the item, or the config's default); ``late_reward`` is a
    customer outcome that arrived after the reward wait ran out, kept for replay only.
    """

    event_id: str
    context: Mapping[str, Any]
    offered_item_ids: tuple[str, ...]
    chosen_item_id: str
    position: int
    probability: float
    reward: float
    reward_source: str
    late_reward: float | None = None
