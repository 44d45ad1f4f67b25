"""JSON API v1 for client services: rank, read an event, report a reward."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bandit.engine import NoEligibleItems
from bandit.services import accounts, decisions, rewards
from curation_app.db import get_runtime, get_session
from curation_app.security import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@/-]+$")
]
ContextText = Annotated[str, StringConstraints(max_length=200)]
Scalar = bool | int | float | ContextText
ContextValue = Scalar | None | Annotated[list[Scalar], Field(max_length=100)]
ContextKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
]


class ApiError(Exception):
    """An error answered as JSON with a status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RankBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    context: Annotated[dict[ContextKey, ContextValue], Field(max_length=100)]
    event_id: Identifier | None = None
    slate_size: Annotated[int, Field(ge=1, le=50)] | None = None
    exclude: Annotated[list[Identifier], Field(max_length=1000)] = []


class RewardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: float
    item_id: Identifier | None = None


Body = TypeVar("Body", bound=BaseModel)


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> ResponseReturnValue:
    return jsonify(error=error.message), error.status


def _describe(error: ValidationError) -> str:
    messages = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        if problem["type"] == "extra_forbidden":
            messages.append(f"{where}: unknown field")
        elif problem["type"] == "missing":
            messages.append(f"{where}: required field is missing")
        else:
            messages.append(f"{where}: {problem['msg']}")
    # A union reports one line per alternative; the first few distinct ones say enough.
    return "; ".join(list(dict.fromkeys(messages))[:4])


def _parse(model: type[Body]) -> Body:
    raw = request.get_data(cache=False)
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"malformed JSON: {error}") from error
    if not isinstance(document, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise ApiError(400, _describe(error)) from error


def require_token(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """Let the request through only with a valid `Authorization: Bearer` token."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'")
        client = accounts.client_for_token(get_session(), token.strip())
        if client is None:
            raise ApiError(401, "invalid or revoked token")
        g.api_client_id = client.id
        g.api_client_name = client.name
        return view(*args, **kwargs)

    return wrapped


@bp.post("/rank")
@require_token
def rank() -> ResponseReturnValue:
    """Propose a slate for a context; a repeated event id returns the stored decision."""
    body = _parse(RankBody)
    session = get_session()
    request_record = decisions.RankRequest(
        context=body.context,
        event_id=body.event_id,
        slate_size=body.slate_size,
        exclude=tuple(body.exclude),
    )
    try:
        decision, created = decisions.rank(
            session, get_runtime(), request_record, api_client_id=g.api_client_id
        )
    except decisions.UnknownItems as error:
        raise ApiError(400, str(error)) from error
    except NoEligibleItems as error:
        raise ApiError(422, str(error)) from error
    return jsonify(decisions.rank_response(decision)), 201 if created else 200


@bp.get("/events/<event_id>")
@require_token
def event(event_id: str) -> ResponseReturnValue:
    """The decision, its status, the curator's actions, the final slate and its outcomes."""
    session = get_session()
    decision = decisions.find_decision(session, event_id)
    if decision is None:
        raise ApiError(404, f"unknown event {event_id!r}")
    return jsonify(decisions.event_view(session, decision))


@bp.post("/events/<event_id>/reward")
@require_token
def reward(event_id: str) -> ResponseReturnValue:
    """Record a delayed reward for the event (or one of its delivered items)."""
    session = get_session()
    if decisions.find_decision(session, event_id) is None:
        raise ApiError(404, f"unknown event {event_id!r}")
    body = _parse(RewardBody)
    try:
        outcome, created = rewards.record_reward(
            session, event_id, body.value, body.item_id, source=f"client:{g.api_client_name}"
        )
    except rewards.RewardError as error:
        raise ApiError(error.status, str(error)) from error
    return jsonify(
        event_id=event_id,
        item_id=body.item_id,
        value=outcome.value,
        accepted=True,
        duplicate=not created,
    ), 202
