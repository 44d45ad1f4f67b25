"""Azure Personalizer's REST shapes, so its clients can point at this service unchanged.

Rank and multi-slot rank over actions sent inline, reward, and activate for deferred events,
under /personalizer/v1.0. The key travels as `Ocp-Apim-Subscription-Key` (or as a bearer
token): it is an API token made with `hitl token create`, never one bound to a curator (403).
Errors keep Personalizer's shape, `{"error": {"code", "message"}}`. See docs/personalizer.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bandit.engine.policy import UnscorableContext
from bandit.engine.recommender import NoEligibleItems
from bandit.engine.vocabulary import ApiSurface, PersonalizerErrorCode
from bandit.services import personalizer, rewards
from bandit.services.personalizer import InlineAction, InlineRank
from curation_app.api import (
    ApiError,
    EventId,
    ItemId,
    RewardValue,
    TokenUse,
    _describe,
    admit_token,
    parse_body,
)
from curation_app.api_context import ContextKey, ContextValue, feature_numbers_in_range
from curation_app.db import get_runtime, get_session, transaction
from curation_app.errors import shape_errors_under, status_for
from curation_app.ops import metrics_of
from curation_app.security import csrf

# Every path under this prefix, not only v1.0's routes, answers errors in Personalizer's shape.
PATH_PREFIX = "/personalizer/"
bp = Blueprint("personalizer", __name__, url_prefix=PATH_PREFIX + "v1.0")
csrf.exempt(bp)

KEY_HEADER = "Ocp-Apim-Subscription-Key"
MAX_ACTIONS = 500
MAX_SLOTS = 50
# Other 4xx (405, 413, 415, 422) are a request to change, so BadArgument; 5xx are ours.
ERROR_CODES = {
    401: PersonalizerErrorCode.UNAUTHORIZED,
    403: PersonalizerErrorCode.UNAUTHORIZED,
    404: PersonalizerErrorCode.NOT_FOUND,
    409: PersonalizerErrorCode.CONFLICT,
}

FeatureList = Annotated[list[dict[str, Any]], Field(max_length=100)]
_FLAT_FEATURES: TypeAdapter[dict[str, Any]] = TypeAdapter(
    Annotated[dict[ContextKey, ContextValue], Field(max_length=100)]
)


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: ItemId
    features: FeatureList = []


class Slot(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: ItemId  # Personalizer's slot ids are free text ("Main Article")
    baselineAction: ItemId | None = None
    positionFeatures: FeatureList | None = None
    excludedActions: list[ItemId] | None = None


class RankBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    contextFeatures: FeatureList = []
    actions: Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)]
    excludedActions: Annotated[list[ItemId], Field(max_length=MAX_ACTIONS)] | None = None
    eventId: EventId | None = None
    deferActivation: bool = False


class MultiSlotRankBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    contextFeatures: FeatureList = []
    actions: Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)]
    slots: Annotated[list[Slot], Field(min_length=1, max_length=MAX_SLOTS)]
    eventId: EventId | None = None
    deferActivation: bool = False


class RewardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: RewardValue


class SlotReward(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    slotId: ItemId
    value: RewardValue


class MultiSlotRewardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reward: Annotated[list[SlotReward], Field(min_length=1, max_length=MAX_SLOTS)]


def error_code(status: int) -> PersonalizerErrorCode:
    """Personalizer's `error.code` for an HTTP status."""
    if status >= 500:
        return PersonalizerErrorCode.INTERNAL
    return ERROR_CODES.get(status, PersonalizerErrorCode.BAD_ARGUMENT)


def error_document(status: int, message: str) -> dict[str, Any]:
    """Personalizer's error document: {"error": {"code", "message"}}."""
    return {"error": {"code": error_code(status), "message": message}}


@bp.record_once
def _personalizer_errors_everywhere(state: BlueprintSetupState) -> None:
    shape_errors_under(state.app, PATH_PREFIX, error_document)


@bp.errorhandler(ApiError)
def handle_error(error: ApiError) -> ResponseReturnValue:
    """An ApiError as Personalizer's error document, with its status."""
    return jsonify(error_document(error.status, error.message)), error.status


def flatten(features: list[dict[str, Any]], field: str) -> dict[str, Any]:
    """Personalizer's feature objects as one flat mapping; nested keys joined with '.'."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner, f"{where}.{key}")
            return
        if prefix in flat:
            raise ApiError(400, f"{where}: feature {prefix!r} is given twice")
        flat[prefix] = value

    for index, document in enumerate(features):
        walk("", document, f"{field}[{index}]")
    try:
        return feature_numbers_in_range(_FLAT_FEATURES.validate_python(flat))
    except ValidationError as error:
        raise ApiError(400, f"{field}: {_describe(error)}") from error
    except ValueError as error:
        raise ApiError(400, f"{field}: {error}") from error


def key_required(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """Let the request through with a valid client key (Personalizer's header, or a bearer
    token); a token bound to a curator is refused (403), as on every client endpoint."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        key = request.headers.get(KEY_HEADER, "").strip()
        if not key:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else ""
        if not key:
            raise ApiError(401, f"{KEY_HEADER}: missing; send the API token made by hitl token")
        # A client's token only: rank answers carry the route, and rewards reach learning.
        admit_token(key, TokenUse.CLIENT, f"{KEY_HEADER}: invalid or revoked key")
        return view(*args, **kwargs)

    return wrapped


def _actions(actions: list[Action]) -> list[InlineAction]:
    seen: set[str] = set()
    result = []
    for index, action in enumerate(actions):
        if action.id in seen:
            raise ApiError(400, f"actions[{index}].id: {action.id!r} is given twice")
        seen.add(action.id)
        result.append(InlineAction(action.id, flatten(action.features, f"actions[{index}]")))
    return result


def _rank(inline: InlineRank) -> personalizer.RankedEvent:
    try:
        with transaction() as session:
            ranked = personalizer.rank_inline(
                session, get_runtime(), current_app.extensions["hitl.rng"], inline, g.api_client_id
            )
    except personalizer.PersonalizerError as error:
        raise ApiError(400, str(error)) from error
    except personalizer.EventIdTaken as error:
        raise ApiError(409, str(error)) from error
    except (NoEligibleItems, UnscorableContext) as error:
        raise ApiError(422, str(error)) from error
    # Counted only once committed.
    if ranked.created:
        metrics_of(current_app).observe_decision(
            ranked.decision.route, ApiSurface.PERSONALIZER, ranked.decision.model_version
        )
    return ranked


def _extension(ranked: personalizer.RankedEvent) -> dict[str, Any]:
    """Fields Personalizer never had: who acts on this slate (the human route)."""
    return {"route": ranked.decision.route, "status": ranked.decision.status}


@bp.post("/rank")
@key_required
def rank() -> ResponseReturnValue:
    """Rank the request's actions; rewardActionId is the one to show (once delivered, the
    one that went out)."""
    body = parse_body(RankBody)
    excluded = list(body.excludedActions or [])
    unknown = sorted(set(excluded) - {a.id for a in body.actions})
    if unknown:
        raise ApiError(400, f"excludedActions: not among the actions: {', '.join(unknown[:10])}")
    ranked = _rank(
        InlineRank(
            context=flatten(body.contextFeatures, "contextFeatures"),
            actions=_actions(body.actions),
            excluded=excluded,
            event_id=body.eventId,
            defer_activation=body.deferActivation,
        )
    )
    decision = ranked.decision
    chosen = decision.proposed[0].item_id
    pmf = {c["item_id"]: float(c["pmf"]) for c in decision.candidates}
    others = sorted((i for i in pmf if i != chosen), key=lambda i: -pmf[i])
    ranking = [{"id": i, "probability": pmf[i]} for i in [chosen, *others]]
    ranking += [{"id": i, "probability": 0.0} for i in decision.exclude]
    return jsonify(
        ranking=ranking,
        eventId=decision.event_id,
        # What the customer got, which a review-before curator may have changed from `chosen`.
        rewardActionId=personalizer.slot_items(decision)[0],
        **_extension(ranked),
    ), 201 if ranked.created else 200


@bp.post("/multislot/rank")
@key_required
def multislot_rank() -> ResponseReturnValue:
    """One distinct action per slot, in slot order (slot i is slate position i); once
    delivered, what went out in each."""
    body = parse_body(MultiSlotRankBody)
    slot_ids = [s.id for s in body.slots]
    if len(set(slot_ids)) != len(slot_ids):
        raise ApiError(400, "slots: slot ids must be distinct")
    action_ids = {a.id for a in body.actions}
    for index, slot in enumerate(body.slots):
        named = [slot.baselineAction] if slot.baselineAction else []
        missing = sorted(set(named + list(slot.excludedActions or [])) - action_ids)
        if missing:
            raise ApiError(400, f"slots[{index}]: not among the actions: {', '.join(missing)}")
    ranked = _rank(
        InlineRank(
            context=flatten(body.contextFeatures, "contextFeatures"),
            actions=_actions(body.actions),
            event_id=body.eventId,
            defer_activation=body.deferActivation,
            slot_ids=slot_ids,
        )
    )
    stored_slots = ranked.event.slot_ids or []
    held = personalizer.slot_items(ranked.decision)
    slots = [
        {"id": slot_id, "rewardActionId": item_id}
        for slot_id, item_id in zip(stored_slots, held, strict=False)
    ]
    return jsonify(
        slots=slots, eventId=ranked.decision.event_id, **_extension(ranked)
    ), 201 if ranked.created else 200


def _reward_call(record: Callable[[], object]) -> ResponseReturnValue:
    """Run one reward or activation as one transaction; 204 once committed."""
    try:
        with transaction():
            record()
    except rewards.RewardError as error:
        raise ApiError(status_for(error), str(error)) from error
    return "", 204


@bp.post("/events/<event_id>/reward")
@key_required
def reward(event_id: str) -> ResponseReturnValue:
    """The reward of the event's one delivered action (its rewardActionId once delivered)."""
    body = parse_body(RewardBody)
    source = f"client:{g.api_client_name}"
    return _reward_call(
        lambda: personalizer.record_event_reward(get_session(), event_id, body.value, source)
    )


@bp.post("/multislot/events/<event_id>/reward")
@key_required
def multislot_reward(event_id: str) -> ResponseReturnValue:
    """Rewards by slot id, each for the action delivered in that slot."""
    body = parse_body(MultiSlotRewardBody)
    values = {r.slotId: r.value for r in body.reward}
    if len(values) != len(body.reward):
        raise ApiError(400, "reward: each slotId at most once")
    source = f"client:{g.api_client_name}"
    return _reward_call(
        lambda: personalizer.record_slot_rewards(get_session(), event_id, values, source)
    )


@bp.post("/events/<event_id>/activate")
@bp.post("/multislot/events/<event_id>/activate")
@key_required
def activate(event_id: str) -> ResponseReturnValue:
    """The client showed a deferred event: it may now be rewarded and learned."""
    return _reward_call(lambda: personalizer.activate(get_session(), event_id))
