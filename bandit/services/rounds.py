"""The logged rounds: one bandit round per delivered (event, position), with one reward.

This module is the single definition of what the policy learns from. The learner, the
export to replay tables, replay and the simulator's scoring all call `logged_rounds`; the
dashboard's mean reward calls `delivered_rewards`, the same rule read from columns (for every
delivered position, swap-ins included, each marked whether it is a policy draw).

The rule (documented for policy configs in `PolicyConfig` and docs/learning.md), for each
position of the policy's own proposal:

1. The item reached the customer as the policy's draw (auto and review-after slates as
   proposed, review-before slates as the curator left them, overflowed or client-fallback
   slates delivered unreviewed; in apprentice mode only the last, see 3):
   - a customer outcome for it (per item, or for the whole event) stored before the
     decision's `reward_due_at` (delivery + the config's `reward_wait_seconds`) and before
     any default -> `customer`. The stored times decide, not when the learner runs;
   - else the config's `default_reward` once the wait ran out -> `default`; a customer outcome
     stored after the wait (before or after the default pass) is kept as `late_reward` for
     replay, and never learned;
   - else no round yet (pending).
2. The item never reached the customer because a curator removed or swapped it out before
   delivery: no customer outcome can exist, so the curator's verdict stands in for it
   (removed or swapped: 0) -> `curator_proxy`. A kept item is delivered, so a keep is never a
   proxy: a "kept" verdict on an item the customer did not get (the review after an undo
   keeping an item the first submit removed, while the slate sent at that submit stays
   delivered) makes no round.
3. Anything else (a slate still waiting for review, held by overflow) has no round. An
   apprentice-mode slate a curator or client chose has none either: what went out was the
   human's decision, imitated instead (`bandit.services.apprentice`). An apprentice-mode
   slate that went out unreviewed (overflow, client fallback) was nobody's choice but the
   policy's, drawn with its logged probabilities, so it counts as in 1.

Curator verdicts are otherwise approval labels for the approval model, never bandit
rewards: a curator's "kept" says nothing about whether the customer kept the item.
Second opinions of double review and curator swap-ins never make rounds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, defer, selectinload

from bandit.db.models import CuratorAction, Decision, Outcome, ProposedItem
from bandit.engine.config import PolicyConfig
from bandit.engine.records import LoggedRound
from bandit.engine.vocabulary import CuratorVerdict, DecidedBy, RewardSource, RoutingMode
from bandit.services.delivery import decision_config, policy_items_in, stored_config

# What a curator's verdict stands in for, on an item the customer never received. A keep
# stands for nothing: the customer's outcome is a kept item's reward.
CURATOR_PROXY_REWARD = {
    CuratorVerdict.REMOVED: 0.0,
    CuratorVerdict.SWAPPED: 0.0,
}
_CHUNK = 500


@dataclass(frozen=True)
class ResolvedRound:
    """A logged round and the stored row its reward came from (for exactly-once learning)."""

    round: LoggedRound
    outcome_id: int | None
    action_id: int | None
    learned: bool
    # False when the row is a late customer outcome that only closed the wait: the round
    # carries the config's default, not the outcome's value.
    reward_is_row_value: bool = True


def logged_rounds(
    session: Session,
    decision_ids: Collection[int] | None = None,
    *,
    pending_only: bool = False,
) -> list[LoggedRound]:
    """The logged rounds of the given decisions (all if None), in time then position order.

    With `pending_only`, only rounds whose reward row has not been learned yet.
    """
    return [r.round for r in resolve_rounds(session, decision_ids, pending_only=pending_only)]


def resolve_rounds(
    session: Session,
    decision_ids: Collection[int] | None = None,
    *,
    pending_only: bool = False,
) -> list[ResolvedRound]:
    """`logged_rounds` with the id of the outcome or verdict behind each reward."""
    resolved: list[ResolvedRound] = []
    for decisions in _decision_chunks(session, decision_ids):
        resolved += resolve_decisions(session, decisions, pending_only=pending_only)
    return resolved


def resolve_decisions(
    session: Session, decisions: Sequence[Decision], *, pending_only: bool = False
) -> list[ResolvedRound]:
    """`resolve_rounds` of decisions already loaded with their slates, in the order given
    (the learner has them in hand; reading them again would cost as much as the first time).
    """
    resolved: list[ResolvedRound] = []
    configs: dict[int, PolicyConfig] = {}
    for start in range(0, len(decisions), _CHUNK):
        chunk = decisions[start : start + _CHUNK]
        ids = [d.id for d in chunk]
        outcomes: dict[int, list[Outcome]] = defaultdict(list)
        for outcome in session.scalars(
            select(Outcome).where(Outcome.decision_id.in_(ids)).order_by(Outcome.id)
        ):
            outcomes[outcome.decision_id].append(outcome)
        verdicts: dict[tuple[int, int], CuratorAction] = {}
        for action in session.scalars(
            select(CuratorAction)
            .where(CuratorAction.decision_id.in_(ids), CuratorAction.agreement_only.is_(False))
            .order_by(CuratorAction.id)
        ):
            verdicts.setdefault((action.decision_id, action.position), action)
        for decision in chunk:
            if decision.policy_config_id not in configs:
                configs[decision.policy_config_id] = decision_config(session, decision)
            config = configs[decision.policy_config_id]
            for item in _decision_rounds(decision, config, outcomes[decision.id], verdicts):
                if not (pending_only and item.learned):
                    resolved.append(item)
    return resolved


def _decision_chunks(
    session: Session, decision_ids: Collection[int] | None
) -> list[list[Decision]]:
    # Only what a round reads: the proposed slate, not the final one (what went out is the
    # decision's `delivered_slate`), and not the per-position pmfs or the uncertainty.
    query = select(Decision).options(
        selectinload(Decision.proposed), defer(Decision.position_pmfs), defer(Decision.uncertainty)
    )
    order = (Decision.created_at, Decision.id)
    if decision_ids is None:
        rows = list(session.scalars(query.order_by(*order)))
    else:
        wanted = sorted(set(decision_ids))
        rows = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows.extend(session.scalars(query.where(Decision.id.in_(chunk))))
        rows.sort(key=lambda d: (d.created_at, d.id))
    return [rows[i : i + _CHUNK] for i in range(0, len(rows), _CHUNK)]


def _decision_rounds(
    decision: Decision,
    config: PolicyConfig,
    outcomes: list[Outcome],
    verdicts: dict[tuple[int, int], CuratorAction],
) -> list[ResolvedRound]:
    delivered = _learnable_deliveries(decision, config)
    default = next((o for o in outcomes if o.is_default), None)
    rounds = []
    for proposed in decision.proposed:
        item_id, position = proposed.item_id, proposed.position
        if item_id in delivered:
            received = _received_round(decision, config, proposed, outcomes, default)
            if received is not None:
                rounds.append(received)
            continue
        action = verdicts.get((decision.id, position))
        if action is None or config.routing_mode == RoutingMode.APPRENTICE:
            continue
        proxy = CURATOR_PROXY_REWARD.get(CuratorVerdict(action.verdict))
        if proxy is None:
            continue
        rounds.append(
            ResolvedRound(
                _round(decision, position, proxy, RewardSource.CURATOR_PROXY, None),
                outcome_id=None,
                action_id=action.id,
                learned=action.learned_at is not None,
            )
        )
    return rounds


def _received_round(
    decision: Decision,
    config: PolicyConfig,
    proposed: ProposedItem,
    outcomes: list[Outcome],
    default: Outcome | None,
) -> ResolvedRound | None:
    """The round of a delivered policy item: its customer outcome in time, else the default."""
    received = _received_reward(decision.reward_due_at, config, proposed.item_id, outcomes, default)
    if received is None:
        return None
    row, value, source, late = received
    return ResolvedRound(
        _round(decision, proposed.position, value, source, late),
        outcome_id=row.id,
        action_id=None,
        learned=row.learned_at is not None,
        reward_is_row_value=source == RewardSource.CUSTOMER or row.is_default,
    )


class RewardRow(Protocol):
    """What the rule reads of a stored reward (an `Outcome`, or a row of its columns)."""

    @property
    def id(self) -> int: ...
    @property
    def item_key(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def is_default(self) -> bool: ...
    @property
    def after_default(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...


RowT = TypeVar("RowT", bound=RewardRow)


def _received_reward(
    due: datetime | None,
    config: PolicyConfig,
    item_id: str,
    outcomes: Sequence[RowT],
    default: RowT | None,
) -> tuple[RowT, float, RewardSource, float | None] | None:
    """A delivered policy item's reward, its wait running out at `due`: (row, value, source,
    late reward), None while it is pending."""
    real = next((o for o in outcomes if not o.is_default and o.item_key in ("", item_id)), None)
    if real is not None and within_wait(real, due):
        return real, real.value, RewardSource.CUSTOMER, None
    # The wait ran out with no customer outcome: the default, on the first reward row
    # stored since (lowest id, so the row never changes once learned): the default
    # pass's, or a late customer outcome stored before it. A late event-level outcome
    # has no default after it (`assign_default_rewards` skips such events), so its own
    # row carries the default for every position.
    closing = [o for o in (real, default) if o is not None]
    if not closing:
        return None
    row = min(closing, key=lambda o: o.id)
    value = row.value if row.is_default else config.default_reward
    return row, value, RewardSource.DEFAULT, real.value if real is not None else None


class _StoredReward(NamedTuple):
    id: int
    item_key: str
    value: float
    is_default: bool
    after_default: bool
    created_at: datetime


class DeliveredReward(NamedTuple):
    """The reward of one delivered position; for a policy draw exactly as its logged round
    carries it (a tuple: read models make one per delivered position)."""

    event_id: str
    policy_name: str
    policy_version: int
    context: dict[str, Any]
    position: int
    reward: float
    reward_source: RewardSource
    # False: a position the policy did not draw (a swap-in, an apprentice slate): no round.
    policy_draw: bool


def delivered_rewards(session: Session, decision_ids: Collection[int]) -> list[DeliveredReward]:
    """The reward of every delivered position of these decisions that has one, without
    building the rounds: the policy's draws (`policy_draw`) exactly as their rounds carry
    it (customer or default; not the curator proxies), and the other delivered positions
    (curators' or clients' swap-ins, apprentice slates) by the same rule, though they are no
    round: `customer` for an outcome in time, else `default`.

    For read models over many decisions: it reads columns, not ORM objects, and never the
    candidates, pmfs or uncertainty a round's other fields come from.
    """
    wanted = sorted(set(decision_ids))
    found: list[DeliveredReward] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        outcomes: dict[int, list[_StoredReward]] = defaultdict(list)
        for decision_id, pk, key, value, is_default, after, created in session.execute(
            select(
                Outcome.decision_id, Outcome.id, Outcome.item_key, Outcome.value,
                Outcome.is_default, Outcome.after_default, Outcome.created_at,
            ).where(Outcome.decision_id.in_(chunk)).order_by(Outcome.id)
        ):  # fmt: skip
            outcomes[decision_id].append(_StoredReward(pk, key, value, is_default, after, created))
        proposals: dict[int, dict[str, int]] = defaultdict(dict)
        for decision_id, item_id, position in session.execute(
            select(ProposedItem.decision_id, ProposedItem.item_id, ProposedItem.position).where(
                ProposedItem.decision_id.in_(chunk)
            )
        ):
            proposals[decision_id][item_id] = position
        for row in session.execute(
            select(
                Decision.id, Decision.event_id, Decision.policy_name, Decision.policy_version,
                Decision.policy_config_id, Decision.context, Decision.delivered_slate,
                Decision.delivered_at, Decision.reward_due_at,
            ).where(Decision.id.in_(chunk))
        ):  # fmt: skip
            config = stored_config(session, row.policy_config_id)
            proposed = proposals[row.id]
            rows = outcomes[row.id]
            default = next((o for o in rows if o.is_default), None)
            slate = row.delivered_slate if row.delivered_at else None
            draws = _learnable_items(slate, proposed, config)
            for entry in sorted(slate or (), key=lambda e: e["position"]):
                item_id = entry["item_id"]
                received = _received_reward(row.reward_due_at, config, item_id, rows, default)
                if received is not None:
                    found.append(
                        DeliveredReward(
                            row.event_id, row.policy_name, row.policy_version, row.context,
                            entry["position"], received[1], received[2], item_id in draws,
                        )
                    )  # fmt: skip
    return found


def within_wait(outcome: RewardRow, due: datetime | None) -> bool:
    """Stored before the reward wait ran out (at `due`), and before any default (whenever the
    learner runs: the stored times decide, as `assign_default_rewards` does with
    `reward_due_at`)."""
    return not outcome.after_default and (due is None or outcome.created_at < due)


def _learnable_deliveries(decision: Decision, config: PolicyConfig) -> set[str]:
    """The policy's own items that reached the customer as its draw, not a human's choice."""
    proposed = {p.item_id: p.position for p in decision.proposed}
    return _learnable_items(decision.delivered_slate if decision.delivered_at else None,
                            proposed, config)  # fmt: skip


def _learnable_items(
    slate: Sequence[dict[str, Any]] | None, proposed: Mapping[str, int], config: PolicyConfig
) -> set[str]:
    """`_learnable_deliveries` of a delivered slate (None if not delivered) and the policy's
    proposal as item -> position."""
    if not slate:
        return set()
    entries = sorted(slate, key=lambda entry: entry["position"])
    delivered = set(policy_items_in(entries, proposed))
    if config.routing_mode == RoutingMode.APPRENTICE:
        # The curator's (or client's) slate is imitated, never a bandit round; only a policy
        # slate that went out unreviewed (overflow, client fallback) was the policy's draw.
        delivered &= {
            entry["item_id"] for entry in entries if entry.get("decided_by") == DecidedBy.POLICY
        }
    return delivered


def offered_at(decision: Decision, position: int) -> tuple[str, ...]:
    """The candidates still available when the policy filled `position`."""
    earlier = {p.item_id for p in decision.proposed if p.position < position}
    return tuple(c["item_id"] for c in decision.candidates if c["item_id"] not in earlier)


def _round(
    decision: Decision,
    position: int,
    reward: float,
    source: RewardSource,
    late_reward: float | None,
) -> LoggedRound:
    proposed = next(p for p in decision.proposed if p.position == position)
    return LoggedRound(
        event_id=decision.event_id,
        context=decision.context,
        offered_item_ids=offered_at(decision, position),
        chosen_item_id=proposed.item_id,
        position=position,
        probability=proposed.position_probability,
        reward=float(reward),
        reward_source=source,
        late_reward=late_reward,
    )
