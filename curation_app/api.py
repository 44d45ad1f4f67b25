"""JSON API v1 for client services: rank, read an event, report rewards (one or a batch)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, TypeVar

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from bandit.db.models import utcnow
from bandit.engine.policy import UnscorableContext
from bandit.engine.recommender import NoEligibleItems
from bandit.engine.vocabulary import ApiSurface
from bandit.services import accounts, apprentice, decisions, rewards
from curation_app import event_polling, event_views
from curation_app.api_context import Context
from curation_app.db import get_runtime, get_session, transaction
from curation_app.errors import status_for
from curation_app.ops import metrics_of
from curation_app.security import api_rate_limit, csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
api_rate_limit(bp)

# No "/" in event ids: the id is a single path segment of /events/<event_id>.
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")
]
# Item ids are whatever the catalog holds (1 to 128 characters); control characters never are.
ItemId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
RewardValue = Annotated[
    float, Field(allow_inf_nan=False, ge=-rewards.MAX_ABS_REWARD, le=rewards.MAX_ABS_REWARD)
]


class ApiError(Exception):
    """An error answered as JSON with a status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RankBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    context: Context
    event_id: EventId | None = None
    slate_size: Annotated[int, Field(ge=1, le=50)] | None = None
    exclude: Annotated[list[ItemId], Field(max_length=1000)] = []
    fallback: FallbackBody | None = None
    # Each slate item's "why" (feature contributions) in the answer; off, it is computed
    # later, when a curator opens the task, and the rank costs half the VW work.
    explain: bool = False


class FallbackBody(BaseModel):
    """Deliver a review-before slate unreviewed if no curator has taken it by then."""

    model_config = ConfigDict(extra="forbid", strict=True)

    deliver_unreviewed_after_seconds: Annotated[int, Field(ge=0, le=30 * 86_400)]


class ChoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    items: Annotated[list[ItemId], Field(min_length=1, max_length=100)]


class RewardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: RewardValue
    item_id: ItemId | None = None


class RewardBatchEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    event_id: EventId
    value: RewardValue
    item_id: ItemId | None = None


# A thousand rewards are about 80 KB of JSON, well inside the server's body limit.
MAX_BATCH_REWARDS = 1000


class RewardBatchBody(BaseModel):
    """Rewards for many events in one call: all are stored, or none (the error names which)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rewards: Annotated[list[RewardBatchEntry], Field(min_length=1, max_length=MAX_BATCH_REWARDS)]


Body = TypeVar("Body", bound=BaseModel)


@bp.errorhandler(ApiError)
def handle_api_error(error: ApiError) -> ResponseReturnValue:
    """An ApiError as a JSON body with its status (and the bearer challenge on 401)."""
    headers = {"WWW-Authenticate": 'Bearer realm="hitl"'} if error.status == 401 else {}
    return jsonify(error=error.message), error.status, headers


def _describe(error: ValidationError) -> str:
    messages = []
    for problem in error.errors():
        parts = [str(part) for part in problem["loc"]]
        if parts and parts[-1] == "[key]":
            # A bad key of a mapping: pydantic puts the key itself in the location.
            where = ".".join(parts[:-2]) or "body"
            messages.append(f"{where}: key {parts[-2]!r}: {problem['msg']}")
            continue
        where = ".".join(parts) or "body"
        if problem["type"] == "extra_forbidden":
            messages.append(f"{where}: unknown field")
        elif problem["type"] == "missing":
            messages.append(f"{where}: required field is missing")
        else:
            messages.append(f"{where}: {problem['msg']}")
    # A union reports one line per alternative; the first few distinct ones say enough.
    return "; ".join(list(dict.fromkeys(messages))[:4])


def _json_kind(document: Any) -> str:
    if isinstance(document, bool):
        return "a boolean"
    if isinstance(document, int | float):
        return "a number"
    if isinstance(document, list):
        return "an array"
    return "a string" if isinstance(document, str) else "null"


def _is_json_type(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def parse_body(model: type[Body]) -> Body:
    """The request's JSON body validated by `model`; an ApiError naming the problem otherwise."""
    # A body without a Content-Type is read as JSON; one labelled as something else is refused
    # by name (curl -d labels JSON as a form, which would otherwise read as "malformed JSON").
    if request.mimetype and not _is_json_type(request.mimetype):
        raise ApiError(
            415,
            f"Content-Type: the body must be sent as application/json, not {request.mimetype} "
            "(with curl, add -H 'Content-Type: application/json')",
        )
    raw = request.get_data(cache=False)
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"malformed JSON: {error}") from error
    except RecursionError as error:
        raise ApiError(400, "malformed JSON: nested too deeply") from error
    if not isinstance(document, dict):
        raise ApiError(400, f"body: must be a JSON object, not {_json_kind(document)}")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise ApiError(400, _describe(error)) from error


class TokenUse(Enum):
    """Which API tokens an endpoint admits: a token serves one side, never both."""

    # Unbound tokens, for client services: rank, events, rewards, choice, Personalizer.
    CLIENT = "client"
    # Tokens bound to an active curator, who acts through them: the review API.
    REVIEW = "review"


# The client endpoints hand out routes and statuses and take rewards by event id, and the
# review API hands curators event ids: a curator's token on them would tell audits apart.
CURATOR_TOKEN_ON_CLIENT_API = (
    "a token bound to a curator may use the review API only (/api/v1/review/...); "
    "client endpoints take a token made without --curator"
)


def admit_token(
    token: str,
    admits: TokenUse,
    unknown_message: str = "Authorization: invalid or revoked bearer token",
) -> None:
    """Check `token` is valid and of the kind `admits`; set who calls on g, or raise ApiError.

    `unknown_message` is the 401's, naming where the token came from. Sets g.api_client_id
    and g.api_client_name; for TokenUse.REVIEW also g.curator.
    """
    session = get_session()
    if admits is TokenUse.REVIEW:
        client, g.curator = accounts.curator_client_for_token(session, token)
    else:
        # The client's own row says whether it is bound: no join on the hot path (rank).
        client = accounts.client_for_token(session, token)
    if client is None:
        raise ApiError(401, unknown_message)
    if admits is TokenUse.REVIEW and g.curator is None:
        raise ApiError(
            403,
            "this token is not bound to an active curator; create one with "
            "`hitl token create NAME --curator USERNAME`",
        )
    # Bound at all, even to an admin or to a curator since switched off: not a client's token.
    if admits is TokenUse.CLIENT and client.curator_id is not None:
        raise ApiError(403, CURATOR_TOKEN_ON_CLIENT_API)
    g.api_client_id, g.api_client_name = client.id, client.name


def bearer_required(
    admits: TokenUse = TokenUse.CLIENT,
) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
    """Let the request through only with a valid `Authorization: Bearer` token of the kind
    `admits` (see admit_token)."""

    def decorate(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(
                    401,
                    "Authorization: missing bearer token; send 'Authorization: Bearer <token>'",
                )
            admit_token(token.strip(), admits)
            return view(*args, **kwargs)

        return wrapped

    return decorate


require_token = bearer_required()


@bp.post("/rank")
@require_token
def rank() -> ResponseReturnValue:
    """Propose a slate for a context; a repeated event id returns the stored decision."""
    body = parse_body(RankBody)
    session = get_session()
    request_record = decisions.RankRequest(
        context=body.context,
        event_id=body.event_id,
        slate_size=body.slate_size,
        exclude=tuple(body.exclude),
        fallback_seconds=body.fallback.deliver_unreviewed_after_seconds if body.fallback else None,
        explain=body.explain,
    )
    try:
        with transaction():
            decision, created = decisions.rank(
                session, get_runtime(), request_record, api_client_id=g.api_client_id
            )
    except (decisions.UnknownItems, decisions.FallbackNotAllowed) as error:
        raise ApiError(400, str(error)) from error
    except (NoEligibleItems, UnscorableContext) as error:
        raise ApiError(422, str(error)) from error
    # Answered only once committed: an acknowledged decision is durable.
    if created:
        metrics_of(current_app).observe_decision(
            decision.route, ApiSurface.V1, decision.model_version
        )
    return jsonify(event_views.rank_response(decision)), 201 if created else 200


@bp.get("/events/<event_id>")
@require_token
def event(event_id: str) -> ResponseReturnValue:
    """The event document: cheap to poll (ETag, If-None-Match, ?wait= long-poll)."""
    try:
        return event_polling.poll_event(event_id)
    except event_polling.PollError as error:
        raise ApiError(error.status, error.message) from error


@bp.post("/events/<event_id>/reward")
@require_token
def reward(event_id: str) -> ResponseReturnValue:
    """Record a delayed reward for the event (or one of its delivered items)."""
    session = get_session()
    body = parse_body(RewardBody)
    try:
        # An unknown event is refused inside (EventNotFound: 404) by the one read of the event.
        with transaction():
            outcome, created = rewards.record_reward(
                session, event_id, body.value, body.item_id, source=f"client:{g.api_client_name}"
            )
    except rewards.RewardError as error:
        raise ApiError(status_for(error), str(error)) from error
    return jsonify(
        event_id=event_id,
        item_id=body.item_id,
        value=outcome.value,
        accepted=True,
        duplicate=not created,
    ), 202


@bp.post("/rewards")
@require_token
def reward_batch() -> ResponseReturnValue:
    """Record delayed rewards for many events in one transaction (a stream's batch)."""
    session = get_session()
    body = parse_body(RewardBatchBody)
    entries = [rewards.RewardEntry(r.event_id, r.item_id, r.value) for r in body.rewards]
    try:
        with transaction():
            answers = rewards.record_reward_batch(
                session, entries, source=f"client:{g.api_client_name}"
            )
    except rewards.RewardError as error:
        raise ApiError(status_for(error), _batch_message(error)) from error
    created = sum(new for _, new in answers)
    return jsonify(
        accepted=True,
        created=created,
        duplicates=len(answers) - created,
        rewards=[
            {
                "event_id": entry.event_id,
                "item_id": entry.item_id,
                "value": outcome.value,
                "duplicate": not new,
            }
            for entry, (outcome, new) in zip(entries, answers, strict=True)
        ],
    ), 202


def _batch_message(error: rewards.RewardError) -> str:
    """The service's message, located in the batch as pydantic locates a bad field."""
    if error.index is None:
        return str(error)
    message = str(error)
    field, _, rest = message.partition(": ")
    if rest and field in ("value", "item_id"):
        return f"rewards.{error.index}.{message}"
    return f"rewards.{error.index}.event_id: {message}"


@bp.post("/events/<event_id>/choice")
@require_token
def choice(event_id: str) -> ResponseReturnValue:
    """In apprentice mode: the slate the client delivered itself, for the policy to imitate."""
    session = get_session()
    decision = decisions.find_decision(session, event_id)
    if decision is None:
        raise ApiError(404, f"unknown event {event_id!r}")
    body = parse_body(ChoiceBody)
    try:
        with transaction():
            created = apprentice.record_client_choice(session, decision, body.items, utcnow())
    except apprentice.ChoiceError as error:
        raise ApiError(status_for(error), str(error)) from error
    return jsonify(event_id=event_id, items=body.items, accepted=True, duplicate=not created), 202
