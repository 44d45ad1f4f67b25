"""JSON API v1 for client services: rank, read an event, report a reward."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from bandit.db.models import utcnow
from bandit.engine.policy import UnscorableContext
from bandit.engine.recommender import NoEligibleItems
from bandit.services import accounts, apprentice, decisions, rewards
from curation_app import event_views
from curation_app.db import get_runtime, get_session, transaction
from curation_app.errors import status_for
from curation_app.security import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

# No "/" in event ids: the id is a single path segment of /events/<event_id>.
EventId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")
]
# Item ids are whatever the catalog holds (1 to 128 characters); control characters never are.
ItemId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
ContextKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
]
MAX_CONTEXT_TEXT = 200
MAX_CONTEXT_LIST = 100
# Integers beyond 2**53 lose precision as JSON numbers and overflow float conversions.
MAX_CONTEXT_INT = 2**53
# Feature numbers are crossed with item features in VW's single-precision arithmetic; beyond
# this they overflow it. Identifiers (keys ending in _id) are not features.
MAX_FEATURE_NUMBER = 1e6
CONTEXT_VALUE_RULE = (
    f"must be a string of at most {MAX_CONTEXT_TEXT} characters, a finite number, a boolean, "
    f"null, or a list of at most {MAX_CONTEXT_LIST} strings, numbers or booleans"
)


def _scalar_ok(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_CONTEXT_INT
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= MAX_CONTEXT_TEXT and "\x00" not in value


def _feature_numbers_in_range(context: dict[str, Any]) -> dict[str, Any]:
    for key, value in context.items():
        if key.endswith("_id"):
            continue
        values = value if isinstance(value, list) else [value]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if any(abs(v) > MAX_FEATURE_NUMBER for v in numbers):
            raise PydanticCustomError(
                "context_number",
                f"{key}: numbers must be within ±{MAX_FEATURE_NUMBER:g}; rescale this feature",
            )
    return context


def _context_value(value: Any) -> Any:
    """One context value: a scalar, null, or a short list of scalars."""
    if value is None or _scalar_ok(value):
        return value
    if isinstance(value, list) and len(value) <= MAX_CONTEXT_LIST:
        if all(_scalar_ok(element) for element in value):
            return value
    raise PydanticCustomError("context_value", CONTEXT_VALUE_RULE)


ContextValue = Annotated[Any, AfterValidator(_context_value)]
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

    context: Annotated[
        dict[ContextKey, ContextValue],
        Field(max_length=100),
        AfterValidator(_feature_numbers_in_range),
    ]
    event_id: EventId | None = None
    slate_size: Annotated[int, Field(ge=1, le=50)] | None = None
    exclude: Annotated[list[ItemId], Field(max_length=1000)] = []


class ChoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    items: Annotated[list[ItemId], Field(min_length=1, max_length=100)]


class RewardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: RewardValue
    item_id: ItemId | None = None


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


def parse_body(model: type[Body]) -> Body:
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


def bearer_required(
    curator: bool = False,
) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., ResponseReturnValue]]:
    """Let the request through only with a valid `Authorization: Bearer` token.

    Sets g.api_client_id and g.api_client_name; with `curator`, the token must also be bound
    to an active curator, who is set as g.curator (the review API).
    """

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
            session = get_session()
            client = accounts.client_for_token(session, token.strip())
            if client is None:
                raise ApiError(401, "Authorization: invalid or revoked bearer token")
            g.api_client_id, g.api_client_name = client.id, client.name
            if curator:
                g.curator = accounts.token_curator(session, client)
                if g.curator is None:
                    raise ApiError(
                        403,
                        "this token is not bound to an active curator; create one with "
                        "`hitl token create NAME --curator USERNAME`",
                    )
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
    )
    try:
        with transaction():
            decision, created = decisions.rank(
                session, get_runtime(), request_record, api_client_id=g.api_client_id
            )
    except decisions.UnknownItems as error:
        raise ApiError(400, str(error)) from error
    except (NoEligibleItems, UnscorableContext) as error:
        raise ApiError(422, str(error)) from error
    # Answered only once committed: an acknowledged decision is durable.
    return jsonify(event_views.rank_response(decision)), 201 if created else 200


@bp.get("/events/<event_id>")
@require_token
def event(event_id: str) -> ResponseReturnValue:
    """The decision, its status, the curator's actions, the final slate and its outcomes."""
    session = get_session()
    decision = decisions.find_decision(session, event_id)
    if decision is None:
        raise ApiError(404, f"unknown event {event_id!r}")
    return jsonify(event_views.event_view(session, decision))


@bp.post("/events/<event_id>/reward")
@require_token
def reward(event_id: str) -> ResponseReturnValue:
    """Record a delayed reward for the event (or one of its delivered items)."""
    session = get_session()
    if decisions.find_decision(session, event_id) is None:
        raise ApiError(404, f"unknown event {event_id!r}")
    body = parse_body(RewardBody)
    try:
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
