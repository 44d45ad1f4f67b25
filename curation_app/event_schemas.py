"""Pydantic shapes of what the API sends about events: the event document's lifecycle parts
and the webhook message. They document the API (OpenAPI) and tests validate real answers
against them, so the description cannot drift from what is sent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bandit.engine.vocabulary import (
    CorrectionAction,
    DecidedBy,
    EventChangeKind,
    LifecycleStatus,
)


class DeliveredItem(BaseModel):
    """One position of the slate as it was sent."""

    position: int = Field(description="the proposal's slot; removed slots are absent")
    item_id: str
    title: str | None = None
    decided_by: DecidedBy
    replaced_item_id: str | None = Field(None, description="the policy's item a swap-in replaced")


class DeliveredSlate(BaseModel):
    """What went out and when: written once, never changed by later corrections."""

    delivered_at: str = Field(description="ISO 8601, UTC")
    api_client_id: int | None = Field(description="the API client whose rank made the event")
    customer_id: object = Field(None, description="the context's customer_id, if any")
    items: list[DeliveredItem]


class CorrectionChange(BaseModel):
    """What should replace what at one delivered position."""

    position: int
    action: CorrectionAction
    item_id: str | None = Field(description="what the customer has at this position")
    replacement_item_id: str | None = Field(description="null when the item should be removed")


class Correction(BaseModel):
    """A curator's later overturn of a delivered slate (verify after output)."""

    correction_id: int
    created_at: str
    curator_id: int | None
    task_id: int | None
    changes: list[CorrectionChange]


class CurrentItem(BaseModel):
    """One position of the slate after every correction, each position once."""

    position: int
    item_id: str
    title: str | None = None
    corrected: bool
    correction_id: int | None


class LifecycleStep(BaseModel):
    status: LifecycleStatus
    at: str


class EventDocument(BaseModel):
    """GET /api/v1/events/{event_id} (only the lifecycle fields are listed in full)."""

    model_config = ConfigDict(extra="allow")

    event_id: str
    slate: list[dict[str, object]] = Field(
        description="the policy's proposal exactly as rank answered it; what the customer got "
        "is delivered_slate, what it should have now is current_slate"
    )
    status: str = Field(description="pending_review, in_review, delivered or rewarded")
    route: str
    created_at: str
    delivered_at: str | None
    delivered_slate: DeliveredSlate | None = Field(description="null until delivered")
    corrections: list[Correction] = Field(description="in the order they were made")
    current_slate: list[CurrentItem] | None = Field(description="null until delivered")
    lifecycle: list[LifecycleStep]
    review_due_at: str | None = Field(
        description="while pending: when the review is due (SLA, or the client's fallback)"
    )
    fallback_at: str | None
    candidates: list[dict[str, object]] | None = Field(
        None, description="only with ?include=candidates"
    )


class RewardedData(BaseModel):
    """The `data` of a `rewarded` message; each of the event document's `outcomes` repeats it
    (with `created_at` for `rewarded_at`, plus `source` and `learned`). Fields may be added
    over time: ignore the ones you do not know."""

    item_id: str | None = Field(
        description="the rewarded item; null for the whole event or a default"
    )
    item_ids: list[str] = Field(
        description="the delivered items this reward stands for: the item, every delivered item "
        "for an event-level reward, and for a default the delivered items no customer outcome "
        "had answered (a default is never given when every delivered item has one)"
    )
    value: float
    is_default: bool = Field(
        description="the policy config's default_reward, the wait having run out"
    )
    after_default: bool = Field(description="a customer reward stored after the event's default")
    late: bool = Field(
        description="a customer reward stored after the reward wait (reward_due_at) or after the "
        "default: kept for replay, and the learner uses learned_instead in its place"
    )
    learned_instead: float | None = Field(
        description="for a late reward, the default reward the learner uses in its place for "
        "the policy's items among item_ids; null otherwise"
    )
    rewarded_at: str = Field(description="ISO 8601, UTC: when it was stored")


class WebhookMessage(BaseModel):
    """The signed JSON body POSTed to a webhook endpoint for each event change."""

    delivery_id: str = Field(description="the same on every retry and replay: deduplicate on it")
    type: EventChangeKind
    event_id: str
    change_id: int = Field(description="increases with each change the system records")
    occurred_at: str
    data: dict[str, object] = Field(
        description="delivered: {delivered_at, delivered_slate}; corrected: {correction}; "
        "reinstated: {verified_at, curator_id}; rewarded: RewardedData {item_id, item_ids, "
        "value, is_default, after_default, late, learned_instead, rewarded_at}. New fields may "
        "be added to data: ignore the ones you do not know"
    )


WEBHOOK_HEADERS: dict[str, str] = {
    "Hitl-Delivery-Id": "the delivery id (also in the body)",
    "Hitl-Event-Type": "delivered, corrected, reinstated or rewarded",
    "Hitl-Timestamp": "Unix seconds when this attempt was signed",
    "Hitl-Signature": "v1=<hex HMAC-SHA256 of '{timestamp}.{body}' with the endpoint's secret>",
}
SIGNATURE_SCHEME: Literal["v1"] = "v1"
