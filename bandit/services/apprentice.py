"""Imitation data: curator swap-ins and apprentice-mode choices, kept apart from bandit logs.

A swap-in or an apprentice-mode choice is the human's decision, not a draw from the policy,
so it has no propensity. It is stored in `imitation_examples` and learned as a supervised
example (the human's item among the items open at that position, reward 1, probability 1,
i.e. no importance weight) so the policy learns to propose what humans keep choosing, while
replay and off-policy evaluation, which read only the policy's own logged choices, never see
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.config import PolicyConfig
from bandit.db.models import CuratorAction, Decision, ImitationExample
from bandit.records import LoggedRound

APPRENTICE = "apprentice"
SWAP_IN = "swap_in"
IMITATION_SOURCE = "imitation"
RECENT_POSITIONS = 100


@dataclass(frozen=True)
class MatchReport:
    """How often the policy's own pick equalled the human's choice in apprentice mode."""

    positions: int
    matched: int
    recent_positions: int
    recent_matched: int

    @property
    def match_rate(self) -> float:
        """matched / positions (0 when there are none)."""
        return self.matched / self.positions if self.positions else 0.0

    @property
    def recent_match_rate(self) -> float:
        """The match rate over the most recent positions."""
        return self.recent_matched / self.recent_positions if self.recent_positions else 0.0


def record_choice(
    session: Session,
    decision: Decision,
    action: CuratorAction,
    config: PolicyConfig,
    offered: tuple[str, ...],
) -> ImitationExample | None:
    """Store the human's choice behind a verdict, if it is one to imitate."""
    if config.routing_mode == APPRENTICE:
        if action.verdict == "removed":
            return None  # the curator left the position empty: no choice to imitate
        chosen = action.replacement_item_id or action.item_id
        source = APPRENTICE
    elif action.verdict == "swapped" and action.replacement_item_id and config.learn_from_swap_ins:
        chosen, source = action.replacement_item_id, SWAP_IN
    else:
        return None
    example = ImitationExample(
        decision_id=decision.id,
        position=action.position,
        source=source,
        chosen_item_id=chosen,
        policy_item_id=action.item_id,
        matched=chosen == action.item_id,
        offered_item_ids=list(offered) + ([chosen] if chosen not in offered else []),
        created_at=action.created_at,
    )
    session.add(example)
    return example


def pending_rounds(session: Session, now: datetime) -> list[LoggedRound]:
    """Imitation examples not yet learned, as supervised rounds; marks them learned."""
    examples = session.scalars(
        select(ImitationExample)
        .where(ImitationExample.learned_at.is_(None))
        .order_by(ImitationExample.id)
    ).all()
    contexts: dict[int, dict[str, Any]] = dict(
        session.execute(
            select(Decision.id, Decision.context).where(
                Decision.id.in_({e.decision_id for e in examples})
            )
        ).all()
    )
    rounds = []
    for example in examples:
        rounds.append(
            LoggedRound(
                event_id=str(example.decision_id),
                context=contexts[example.decision_id],
                offered_item_ids=tuple(example.offered_item_ids),
                chosen_item_id=example.chosen_item_id,
                position=example.position,
                probability=1.0,
                reward=1.0,
                source=IMITATION_SOURCE,
            )
        )
        example.learned_at = now
    return rounds


def match_report(session: Session) -> MatchReport:
    """The policy's agreement with humans over all apprentice-mode positions and recent ones."""
    apprentice = select(ImitationExample.matched).where(ImitationExample.source == APPRENTICE)
    total = session.scalar(select(func.count()).select_from(apprentice.subquery())) or 0
    matched = sum(1 for m in session.scalars(apprentice) if m)
    recent = list(
        session.scalars(apprentice.order_by(ImitationExample.id.desc()).limit(RECENT_POSITIONS))
    )
    return MatchReport(total, matched, len(recent), sum(1 for m in recent if m))
