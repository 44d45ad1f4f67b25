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

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bandit.db.models import (
    CuratorAction,
    Decision,
    FinalSlateItem,
    ImitationExample,
    ReviewTask,
)
from bandit.engine.config import PolicyConfig
from bandit.engine.records import LoggedRound
from bandit.engine.vocabulary import (
    CuratorVerdict,
    DecidedBy,
    ImitationSource,
    RoutingMode,
    SlateTag,
    TaskStatus,
)
from bandit.services.catalog_store import items_by_id
from bandit.services.delivery import (
    decision_config,
    record_delivery,
    replace_final_slate,
    slate_entries,
)
from bandit.services.review.double_review import FIRST_ROUND
from bandit.services.rounds import offered_at

# The LoggedRound source of a supervised (imitation) round.
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
) -> ImitationExample | None:
    """Store the human's choice behind a verdict, if it is one to imitate."""
    if config.routing_mode == RoutingMode.APPRENTICE:
        if action.verdict == CuratorVerdict.REMOVED:
            return None  # the curator left the position empty: no choice to imitate
        chosen = action.replacement_item_id or action.item_id
        source = ImitationSource.APPRENTICE
    elif (
        action.verdict == CuratorVerdict.SWAPPED
        and action.replacement_item_id
        and config.learn_from_swap_ins
    ):
        chosen, source = action.replacement_item_id, ImitationSource.SWAP_IN
    else:
        return None
    # Only now: most verdicts are no choice to imitate, and this walks every candidate.
    offered = offered_at(decision, action.position)
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
    return [round_ for _, round_ in pending_examples(session, now)]


def pending_examples(session: Session, now: datetime) -> list[tuple[ImitationExample, LoggedRound]]:
    """`pending_rounds` with the example behind each round (whose choice it was)."""
    examples = session.scalars(
        select(ImitationExample)
        .where(ImitationExample.learned_at.is_(None))
        .order_by(ImitationExample.id)
    ).all()
    decisions: dict[int, tuple[str, dict[str, Any]]] = {
        decision_id: (event_id, context)
        for decision_id, event_id, context in session.execute(
            select(Decision.id, Decision.event_id, Decision.context).where(
                Decision.id.in_({e.decision_id for e in examples})
            )
        )
    }
    rounds = []
    for example in examples:
        event_id, context = decisions[example.decision_id]
        round_ = LoggedRound(
            event_id=event_id,
            context=context,
            offered_item_ids=tuple(example.offered_item_ids),
            chosen_item_id=example.chosen_item_id,
            position=example.position,
            probability=1.0,
            reward=1.0,
            reward_source=IMITATION_SOURCE,
        )
        rounds.append((example, round_))
        example.learned_at = now
    return rounds


def match_report(session: Session) -> MatchReport:
    """The policy's agreement with humans over all apprentice-mode positions and recent ones."""
    apprentice = select(ImitationExample.matched).where(
        ImitationExample.source.in_((ImitationSource.APPRENTICE, ImitationSource.CLIENT))
    )
    total = session.scalar(select(func.count()).select_from(apprentice.subquery())) or 0
    matched = sum(1 for m in session.scalars(apprentice) if m)
    recent = list(
        session.scalars(apprentice.order_by(ImitationExample.id.desc()).limit(RECENT_POSITIONS))
    )
    return MatchReport(total, matched, len(recent), sum(1 for m in recent if m))


class ChoiceError(ValueError):
    """A client's own choice cannot be accepted (the request itself is wrong)."""


class ChoiceConflict(ChoiceError):
    """The event's slate is already someone else's to choose, or chosen differently."""


TAKEN: dict[str, str] = {
    TaskStatus.CLAIMED: "a curator is reviewing this event; its slate is theirs to choose",
    TaskStatus.DONE: "a curator already chose this event's slate",
    TaskStatus.OVERFLOWED: "the policy's slate already went out unreviewed",
    TaskStatus.CLIENT_CHOSE: "a different choice is already recorded for this event",
}


def record_client_choice(
    session: Session, decision: Decision, item_ids: list[str], now: datetime
) -> bool:
    """Deliver a client service's own slate for an apprentice-mode event and keep it as
    imitation data; False when the same choice was already recorded. Does not commit.

    The event's review task is closed without a curator. A choice that differs from a stored
    one, or comes after a curator took the task, is refused and changes nothing.
    """
    # Lock order, as everywhere: the decision's tasks, then the decision itself.
    session.execute(
        select(ReviewTask.id).where(ReviewTask.decision_id == decision.id).with_for_update()
    )
    session.refresh(decision, with_for_update=True)
    config = decision_config(session, decision)
    if config.routing_mode != RoutingMode.APPRENTICE:
        raise ChoiceConflict("the event was not decided in apprentice mode")
    stored = session.scalars(
        select(ImitationExample.chosen_item_id)
        .where(
            ImitationExample.decision_id == decision.id,
            ImitationExample.source == ImitationSource.CLIENT,
        )
        .order_by(ImitationExample.position)
    ).all()
    if stored and list(stored) == list(item_ids):
        return False
    _check_items(session, decision, item_ids)
    # A slate already sent (a curator's submit, also one since undone, or an overflow) is
    # not the client's to choose, though a second opinion on it may still wait in the queue.
    if decision.delivered_slate is not None:
        raise ChoiceConflict(_taken(session, decision, "the event's slate already went out"))
    closed = session.execute(
        update(ReviewTask)
        # A held (overflowed) task is still open: the client may still choose for it.
        .where(
            ReviewTask.decision_id == decision.id,
            ReviewTask.review_round == FIRST_ROUND,
            ReviewTask.status == TaskStatus.OPEN,
        )
        .values(status=TaskStatus.CLIENT_CHOSE, completed_at=now)
    )
    if closed.rowcount == 0:  # type: ignore[attr-defined]
        raise ChoiceConflict(_taken(session, decision, "the event is not waiting for a choice"))
    _store_choice(session, decision, item_ids, now)
    record_delivery(session, decision, slate_entries(decision.final_slate), config, now)
    session.flush()
    return True


def _taken(session: Session, decision: Decision, otherwise: str) -> str:
    """Why the event's slate is not the client's to choose, from its first-round task."""
    status = session.scalar(
        select(ReviewTask.status).where(
            ReviewTask.decision_id == decision.id, ReviewTask.review_round == FIRST_ROUND
        )
    )
    return TAKEN.get(str(status), otherwise)


def _check_items(session: Session, decision: Decision, item_ids: list[str]) -> None:
    if not 1 <= len(item_ids) <= len(decision.proposed):
        raise ChoiceError(f"items: give 1 to {len(decision.proposed)} item ids")
    if len(set(item_ids)) != len(item_ids):
        raise ChoiceError("items: an item appears twice")
    unknown = sorted(set(item_ids) - set(items_by_id(session, item_ids)))
    if unknown:
        raise ChoiceError(f"items: unknown item {unknown[0]!r}")


def _store_choice(session: Session, decision: Decision, item_ids: list[str], now: datetime) -> None:
    proposed = sorted(decision.proposed, key=lambda p: p.position)
    candidates = [c["item_id"] for c in decision.candidates]
    final: list[FinalSlateItem] = []
    for position, policy_item in enumerate(proposed):
        chosen = item_ids[position] if position < len(item_ids) else None
        if chosen is None:
            final.append(
                FinalSlateItem(
                    position=position,
                    item_id=policy_item.item_id,
                    tag=SlateTag.REMOVED,
                    decided_by=DecidedBy.CLIENT,
                )
            )
            continue
        if chosen == policy_item.item_id:
            final.append(
                FinalSlateItem(
                    position=position,
                    item_id=chosen,
                    tag=SlateTag.KEPT,
                    decided_by=DecidedBy.CLIENT,
                )
            )
        else:
            final.append(
                FinalSlateItem(
                    position=position,
                    item_id=policy_item.item_id,
                    tag=SlateTag.SWAPPED_OUT,
                    decided_by=DecidedBy.CLIENT,
                )
            )
            final.append(
                FinalSlateItem(
                    position=position,
                    item_id=chosen,
                    tag=SlateTag.SWAPPED_IN,
                    decided_by=DecidedBy.CLIENT,
                    replaced_item_id=policy_item.item_id,
                )
            )
        # What the client could still choose from at this position: the candidates it had
        # not placed yet, and its own pick even if the policy never offered it.
        open_items = [c for c in candidates if c not in item_ids[:position]]
        session.add(
            ImitationExample(
                decision_id=decision.id,
                position=position,
                source=ImitationSource.CLIENT,
                chosen_item_id=chosen,
                policy_item_id=policy_item.item_id,
                matched=chosen == policy_item.item_id,
                offered_item_ids=open_items + ([chosen] if chosen not in open_items else []),
                created_at=now,
            )
        )
    replace_final_slate(session, decision, final)
