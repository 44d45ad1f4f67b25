"""What the console's pages show of a task, and the review form read back into verdicts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bandit.db.models import Curator, CuratorAction, Decision, ReviewTask
from bandit.engine.vocabulary import Route, TaskStatus
from bandit.services.catalog_store import DisplayItem, display_items
from bandit.services.review import ItemVerdict, ReviewError
from bandit.services.review.errors import DuplicateReplacement, PositionError
from bandit.services.review.queue import priority_at
from curation_app.reasons import reason_text

PROFILE_FIELDS = (
    ("segment", "Segment"),
    ("age_band", "Age band"),
    ("preferred_style", "Preferred style"),
    ("favorite_categories", "Favourite categories"),
    ("budget", "Budget"),
)
ALTERNATES = 12
MAX_SECONDS = 86_400.0
# Renew well before the lease ends, so one late or lost heartbeat does not lose the task.
HEARTBEATS_PER_LEASE = 3
MAX_HEARTBEAT_MS = 60_000


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue table."""

    task_id: int
    event_id: str
    route: str
    priority: float
    measure_name: str
    measure: float
    confidence: float | None
    age: str
    due_in: str
    overdue: bool
    status: str
    held_by: str
    overflow: str


@dataclass(frozen=True)
class ItemView:
    """A catalog item as a curator reads it."""

    item_id: str
    title: str
    category: str
    style: str
    color: str
    brand: str
    price: float | None
    material: str = ""
    image_url: str | None = None


@dataclass(frozen=True)
class SlateRow:
    """One proposed position with the policy's numbers and its reason."""

    position: int
    item: ItemView
    score: float
    probability: float
    explored: bool | None  # None under blinded review: the curator is not told
    reason: str
    why: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Alternate:
    """A candidate the policy scored but did not put on the slate."""

    item: ItemView
    score: float


@dataclass(frozen=True)
class PositionInput:
    """The curator's choices for one position, kept to re-render a rejected form."""

    verdict: str = "keep"
    alternate: str = ""
    chosen: str = ""
    reason: str = ""


def describe_age(seconds: float) -> str:
    """A short human age such as '42 s', '5 min', '3 h' or '2 d'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86_400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86_400)} d"


def queue_rows(session: Session, tasks: Iterable[ReviewTask], now: datetime) -> list[QueueRow]:
    """The queue table: one row per waiting or held task."""
    names: dict[int, str] = {}
    rows = []
    for task in tasks:
        held_by = ""
        if task.status == TaskStatus.CLAIMED and task.curator_id is not None:
            if task.curator_id not in names:
                curator = session.get(Curator, task.curator_id)
                names[task.curator_id] = curator.username if curator else f"#{task.curator_id}"
            held_by = names[task.curator_id]
            if task.leased_until is not None and task.leased_until < now:
                held_by += " (lease expired)"
        confidence = task.decision.uncertainty.get("confidence")
        due = task.due_at
        rows.append(
            QueueRow(
                task_id=task.id,
                event_id=task.decision.event_id,
                route=task.route,
                priority=priority_at(task, now),
                measure_name=task.measure_name.replace("_", " "),
                measure=task.priority,
                confidence=float(confidence) if confidence is not None else None,
                age=describe_age((now - task.created_at).total_seconds()),
                due_in=describe_age(abs((due - now).total_seconds())) if due else "",
                overdue=due is not None and due < now,
                status=task.status,
                held_by=held_by,
                overflow=task.overflow or "",
            )
        )
    return rows


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def customer_summary(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The profile fields a curator looks at first, as (label, text), for those present."""
    return [(label, _text(context[key])) for key, label in PROFILE_FIELDS if key in context]


def raw_context(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every context key with its value as text, sorted by key."""
    return [(key, _text(context[key])) for key in sorted(context)]


def item_view(item: DisplayItem | None, item_id: str) -> ItemView:
    """The display fields of a catalog item (placeholders if it left the catalog)."""
    if item is None:
        return ItemView(item_id, f"(unknown item {item_id})", "", "", "", "", None)
    attributes = item.attributes or {}
    return ItemView(
        item_id=item.item_id,
        title=item.title,
        category=item.category,
        style=_text(attributes.get("style")),
        color=_text(attributes.get("color")),
        brand=_text(attributes.get("brand")),
        price=item.price,
        material=_text(attributes.get("material")),
        image_url=item.image_url,
    )


def review_items(session: Session, decision: Decision) -> dict[str, DisplayItem]:
    """Every catalog item a review shows (slate and candidates) in one read."""
    ids = [p.item_id for p in decision.proposed] + [c["item_id"] for c in decision.candidates]
    return display_items(session, ids)


def slate_rows(
    session: Session,
    decision: Decision,
    blinded: bool = False,
    items: Mapping[str, DisplayItem] | None = None,
) -> list[SlateRow]:
    """The proposed slate in position order, joined with the catalog (`items`, if read).

    Under blinded review the exploration flag (and the reason's note of it) is left out, and
    the probability with it, since a low probability gives an exploratory pick away.
    """
    if items is None:
        items = display_items(session, [p.item_id for p in decision.proposed])
    return [
        SlateRow(
            position=p.position,
            item=item_view(items.get(p.item_id), p.item_id),
            score=p.score,
            probability=p.probability,
            explored=None if blinded else p.explored,
            reason=reason_text(p.reasons or [], decision.context, blinded),
            # The model's own reasons, like its exploration flag, stay hidden in blinded review.
            why=()
            if blinded
            else tuple((str(w["feature"]), float(w["weight"])) for w in p.why or []),
        )
        for p in decision.proposed
    ]


def alternates(
    session: Session,
    decision: Decision,
    limit: int = ALTERNATES,
    items: Mapping[str, DisplayItem] | None = None,
) -> list[Alternate]:
    """The best-scored eligible candidates that are not on the slate (`items`, if read)."""
    on_slate = {p.item_id for p in decision.proposed}
    excluded = set(decision.exclude)
    ranked = sorted(
        (c for c in decision.candidates if c["item_id"] not in on_slate | excluded),
        key=lambda c: -float(c.get("score") or 0.0),
    )
    if items is None:
        items = display_items(session, [c["item_id"] for c in ranked])
    chosen: list[Alternate] = []
    for candidate in ranked:
        item = items.get(candidate["item_id"])
        if item is None or not item.active or item.stock <= 0:
            continue
        chosen.append(Alternate(item_view(item, item.item_id), float(candidate["score"])))
        if len(chosen) == limit:
            break
    return chosen


def parse_verdicts(
    form: Mapping[str, str], positions: Iterable[int]
) -> tuple[list[ItemVerdict], dict[int, PositionInput]]:
    """One verdict per slate position; a search-chosen item wins over the select for a swap."""
    verdicts: list[ItemVerdict] = []
    inputs: dict[int, PositionInput] = {}
    for position in positions:
        given = PositionInput(
            verdict=form.get(f"verdict-{position}", "").strip(),
            alternate=form.get(f"alternate-{position}", "").strip(),
            chosen=form.get(f"chosen-{position}", "").strip(),
            reason=form.get(f"reason-{position}", "").strip(),
        )
        inputs[position] = given
        replacement = (given.chosen or given.alternate) if given.verdict == "swap" else None
        verdicts.append(
            ItemVerdict(
                position=position,
                verdict=given.verdict,
                replacement_item_id=replacement or None,
                reason=given.reason,
            )
        )
    return verdicts, inputs


def active_seconds(form: Mapping[str, str]) -> float | None:
    """The seconds the page counted as visible and in use, if it sent a sensible number."""
    try:
        seconds = float(form.get("active_seconds", ""))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def console_error(error: ReviewError) -> tuple[str, int | None]:
    """A review error as the page words it: positions counted from 1, as the cards are."""
    if isinstance(error, PositionError):
        return f"Position {error.position + 1}: {error.detail}", error.position + 1
    if isinstance(error, DuplicateReplacement):
        shown = " and ".join(str(p + 1) for p in error.positions)
        return (
            f"Positions {shown} would swap in the same item ({error.item_id}); "
            "pick a different one for each",
            error.positions[-1] + 1,
        )
    return str(error), None


VERDICT_WORDS = {"kept": "kept", "removed": "removed", "swapped": "swapped for"}


def describe_action(action: CuratorAction) -> str:
    """One stored verdict as the page says it, e.g. 'position 2 swapped for sku-9'."""
    words = VERDICT_WORDS.get(action.verdict, action.verdict)
    target = f" {action.replacement_item_id}" if action.replacement_item_id else ""
    return f"position {action.position + 1} {words}{target}"


def render_time(form: Mapping[str, str]) -> float | None:
    """When the submitted page was rendered (epoch seconds), if the form says so sensibly."""
    try:
        rendered_at = float(form.get("rendered_at", ""))
    except ValueError:
        return None
    return rendered_at if math.isfinite(rendered_at) else None


def seconds_spent(form: Mapping[str, str], now: float) -> float:
    """Seconds since the page was rendered, clamped to [0, 86400)."""
    rendered_at = render_time(form)
    if rendered_at is None:
        raise ReviewError("the form lost its render time; reload the task and review it again")
    return min(max(now - rendered_at, 0.0), math.nextafter(MAX_SECONDS, 0.0))


def chosen_items(session: Session, inputs: Mapping[int, PositionInput]) -> dict[str, ItemView]:
    """Display fields of the search-chosen items of a re-rendered form."""
    ids = [given.chosen for given in inputs.values() if given.chosen]
    found = display_items(session, ids)
    return {item_id: item_view(found.get(item_id), item_id) for item_id in ids}


def heartbeat_interval_ms(lease_seconds: int) -> int:
    """How often the review page renews its lease."""
    return min(MAX_HEARTBEAT_MS, int(lease_seconds * 1000 / HEARTBEATS_PER_LEASE))


def verdict_summary(verdicts: Iterable[ItemVerdict]) -> dict[str, int]:
    """How many positions were kept, removed and swapped."""
    counts = {"keep": 0, "remove": 0, "swap": 0}
    for verdict in verdicts:
        counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
    return counts


def saved_message(
    route: str, verdicts: Iterable[ItemVerdict], recorded: bool, review_round: int = 1
) -> str:
    """What the curator is told after a submit."""
    if not recorded:
        return "This review was already saved."
    if review_round > 1:
        return "Second review saved: it is kept to measure agreement and changes no slate."
    if route != Route.REVIEW_AFTER:
        return "Review saved."
    changed = any(v.verdict != "keep" for v in verdicts)
    if changed:
        return "Review saved: the delivered slate was overturned and the correction logged."
    return "Review saved: the delivered slate was reinstated as it went out."
