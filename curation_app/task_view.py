"""The review page's content: slate cards with pictures and budget, per-position alternates,
and the customer panel that keeps what the engine was given apart from what is stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from bandit.db.models import Decision
from bandit.services.catalog_store import DisplayItem, display_items
from bandit.services.customer_history import CustomerHistory, customer_history
from curation_app.reasons import EXPLORATION_CODES, reason_phrase, stylist_reasons
from curation_app.review_forms import PROFILE_FIELDS, ItemView, _text, item_view

ALTERNATES_PER_POSITION = 6
HISTORY_ITEMS = 6


@dataclass(frozen=True)
class Budget:
    """The customer's budget, where it came from, and the slate's total against it."""

    amount: float | None
    source: str  # "request", "stored" or "" when unknown
    total: float

    @property
    def over(self) -> bool:
        """True when the slate costs more than the budget."""
        return self.amount is not None and self.total > self.amount

    def flag(self, price: float | None) -> str:
        """'within' or 'over' budget for one item's price ('' when either is unknown)."""
        if self.amount is None or price is None:
            return ""
        return "over" if price > self.amount else "within"


@dataclass(frozen=True)
class AlternateView:
    """A candidate that could take one position: why it ranks where it does."""

    item: ItemView
    score: float
    same_category: bool
    within_budget: bool | None


@dataclass(frozen=True)
class Card:
    """One slate position as a card: the item, plain-word reasons, model numbers, alternates."""

    position: int
    item: ItemView
    price_flag: str
    reasons: list[str]
    score: float
    probability: float
    explored: bool | None
    model_reasons: list[str]
    why: tuple[tuple[str, float], ...]
    alternates: list[AlternateView] = field(default_factory=list)


@dataclass(frozen=True)
class CustomerPanel:
    """What the request said (the engine's input) and, separately, what is stored."""

    given: list[tuple[str, str]]
    customer_id: str | None
    stored: list[tuple[str, str]]
    history: CustomerHistory | None
    kept: list[ItemView]
    returned: list[ItemView]
    extra_keys: list[tuple[str, str]]


def _budget_of(
    context: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> tuple[float | None, str]:
    for source, values in (("request", context), ("stored", stored or {})):
        budget = values.get("budget")
        if isinstance(budget, int | float) and not isinstance(budget, bool):
            return float(budget), source
    return None, ""


def customer_panel(
    session: Session, decision: Decision, route_hidden: bool = False
) -> CustomerPanel:
    """The customer panel; a stored profile never masquerades as the request's context.

    `route_hidden`: the viewer must not tell audits apart, so past slates whose review still
    waits are left out (`customer_history`'s `reviewed_only`)."""
    context = decision.context
    labels = dict(PROFILE_FIELDS)
    given = [(labels[key], _text(context[key])) for key, _ in PROFILE_FIELDS if key in context]
    customer_id = (
        context.get("customer_id") if isinstance(context.get("customer_id"), str) else None
    )
    history = (
        customer_history(session, customer_id, decision.event_id, reviewed_only=route_hidden)
        if customer_id
        else None
    )
    profile = (history.profile if history else None) or {}
    stored = [(labels[key], _text(profile[key])) for key, _ in PROFILE_FIELDS if key in profile]
    if "notes" in profile:
        stored.append(("Notes", _text(profile["notes"])))
    kept_ids = history.kept[:HISTORY_ITEMS] if history else []
    returned_ids = history.returned[:HISTORY_ITEMS] if history else []
    items = display_items(session, [*kept_ids, *returned_ids])
    shown = {key for key, _ in PROFILE_FIELDS} | {"customer_id"}
    return CustomerPanel(
        given=given,
        customer_id=customer_id,
        stored=stored,
        history=history,
        kept=[item_view(items.get(i), i) for i in kept_ids],
        returned=[item_view(items.get(i), i) for i in returned_ids],
        extra_keys=[(key, _text(context[key])) for key in sorted(context) if key not in shown],
    )


def budget_amount(decision: Decision, panel: CustomerPanel) -> float | None:
    """The request's budget, else the stored one (labelled so by `budget_source`)."""
    stored = panel.history.profile if panel.history else None
    return _budget_of(decision.context, stored)[0]


def budget_source(decision: Decision, panel: CustomerPanel) -> str:
    """'request' when the engine was given the budget, 'stored' when only the profile has it."""
    stored = panel.history.profile if panel.history else None
    return _budget_of(decision.context, stored)[1]


def total(slate: Sequence[Card]) -> float:
    """What the proposed slate costs (items without a price count as 0)."""
    return round(sum(card.item.price or 0.0 for card in slate), 2)


def _alternates_by_position(
    session: Session, decision: Decision, slate: Mapping[int, ItemView], budget: float | None
) -> dict[int, list[AlternateView]]:
    """Per position: eligible candidates off the slate, same category and in budget first."""
    on_slate = {p.item_id for p in decision.proposed} | set(decision.exclude)
    candidates = [c for c in decision.candidates if c["item_id"] not in on_slate]
    items = display_items(session, [c["item_id"] for c in candidates])
    usable: list[tuple[DisplayItem, float]] = []
    for candidate in candidates:
        item = items.get(candidate["item_id"])
        if item is not None and item.active and item.stock > 0:
            usable.append((item, float(candidate.get("score") or 0.0)))
    result: dict[int, list[AlternateView]] = {}
    for position, proposed in slate.items():
        views = []
        for item, score in usable:
            within = None if budget is None or item.price is None else item.price <= budget
            same = item.category == proposed.category
            views.append(AlternateView(item_view(item, item.item_id), score, same, within))
        views.sort(key=lambda a: (not a.same_category, a.within_budget is False, -a.score))
        result[position] = views[:ALTERNATES_PER_POSITION]
    return result


def cards(
    session: Session,
    decision: Decision,
    budget: float | None,
    blinded: bool,
    kept_categories: set[str],
) -> list[Card]:
    """The slate as cards in position order."""
    proposed = sorted(decision.proposed, key=lambda p: p.position)
    items = display_items(session, [p.item_id for p in proposed])
    views = {p.position: item_view(items.get(p.item_id), p.item_id) for p in proposed}
    alternates = _alternates_by_position(session, decision, views, budget)
    holder = Budget(budget, "", 0.0)
    result = []
    for p in proposed:
        view = views[p.position]
        reasons = stylist_reasons(p.reasons or [], decision.context, view.category, blinded)
        flag = holder.flag(view.price)
        if flag == "within" and "above their budget" not in reasons:
            reasons.append("within budget")
        if view.category in kept_categories:
            reasons.append(f"they kept a {view.category} before")
        model = [
            reason_phrase(str(code), float(value), decision.context)
            for code, value in p.reasons or []
            if not (blinded and code in EXPLORATION_CODES)
        ]
        result.append(
            Card(
                position=p.position,
                item=view,
                price_flag=flag,
                reasons=reasons,
                score=p.score,
                probability=p.probability,
                explored=None if blinded else p.explored,
                model_reasons=model,
                why=()
                if blinded
                else tuple((str(w["feature"]), float(w["weight"])) for w in p.why or []),
                alternates=alternates.get(p.position, []),
            )
        )
    return result
