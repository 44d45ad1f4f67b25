"""The JSON answers of the API as pydantic models, for the OpenAPI document.

Each lists the fields a client can rely on; `extra="allow"` because documents grow (new fields
are additions, never removals), so a newer server still conforms to an older client's schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorAnswer(BaseModel):
    """Every 4xx and 5xx of the API: one message naming the field or the problem."""

    model_config = ConfigDict(extra="forbid")

    error: str


class SlateEntry(_Answer):
    item_id: str
    probability: float
    score: float
    why: list[Any]


class RankAnswer(_Answer):
    event_id: str
    slate: list[SlateEntry]
    route: str
    status: str
    uncertainty: dict[str, Any]
    policy_version: str
    model_version: int


class EventAnswer(RankAnswer):
    context: dict[str, Any]
    created_at: str
    delivered_at: str | None
    proposed_slate: list[dict[str, Any]]
    final_slate: list[dict[str, Any]] | None
    outcomes: list[dict[str, Any]]


class RewardAnswer(_Answer):
    event_id: str
    item_id: str | None
    value: float
    accepted: bool
    duplicate: bool


class BatchRewardAnswer(_Answer):
    event_id: str
    item_id: str | None
    value: float
    duplicate: bool


class RewardBatchAnswer(_Answer):
    accepted: bool
    created: int
    duplicates: int
    rewards: list[BatchRewardAnswer]


class ChoiceAnswer(_Answer):
    event_id: str
    items: list[str]
    accepted: bool
    duplicate: bool


class TaskDocument(_Answer):
    task_id: int
    lease_token: str | None
    leased_until: str | None
    # "review" and null for a curator not told the route (risk-controlled routing's audits).
    route: str
    already_delivered: bool | None
    review_round: int
    event_id: str
    context: dict[str, Any]
    slate: list[dict[str, Any]]
    alternates: list[dict[str, Any]]


class ClaimAnswer(_Answer):
    task: TaskDocument | None


class SubmitAnswer(_Answer):
    task_id: int
    recorded: bool
    duplicate: bool
    message: str


class ReleaseAnswer(_Answer):
    task_id: int
    released: bool


class HeartbeatAnswer(_Answer):
    task_id: int
    leased_until: str


class OpenApiDocument(_Answer):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
