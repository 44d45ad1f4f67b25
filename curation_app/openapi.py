"""The OpenAPI 3.1 document of the JSON API, served at /api/v1/openapi.json.

Everything in it comes from the code that answers: request bodies from the pydantic models that
validate them (new fields appear by themselves), answers from the models in api_responses,
path parameters from the same id types and column ranges the routes check, and the error
statuses from one table per operation. A test checks every API route is described here, and
schemathesis checks the server keeps to the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, TypeAdapter

from bandit.db.limits import ROW_ID_MAX
from curation_app import api_responses as answers
from curation_app.api import ChoiceBody, EventId, RankBody, RewardBatchBody, RewardBody
from curation_app.event_schemas import WEBHOOK_HEADERS, EventDocument, RewardedData, WebhookMessage
from curation_app.review_api import LeaseBody, SubmitBody

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
REF = "#/components/schemas/{model}"
CLIENT_TOKEN: list[dict[str, list[str]]] = [{"clientToken": []}]
CURATOR_TOKEN: list[dict[str, list[str]]] = [{"curatorToken": []}]
PUBLIC: list[dict[str, list[str]]] = []

ERROR_MEANINGS = {
    400: "invalid body, field or path (the message names it); nothing changed",
    401: "missing, invalid or revoked bearer token (WWW-Authenticate says how to send one)",
    403: "the wrong kind of token: the review API takes only a token bound to an active "
    "curator, every other endpoint only a token bound to none",
    404: "no such task or event",
    409: "a conflict with what is stored (a lost lease, the same curator twice, a reward or "
    "choice that contradicts the stored one); nothing changed",
    413: "request body larger than the server's limit",
    415: "the body is not labelled Content-Type: application/json",
    422: "no eligible items for this request, or a context the policy cannot score",
    429: "more requests than the deployment's per-token limit (HITL_API_RATE_LIMIT); retry "
    "after Retry-After seconds",
}
RETRY_AFTER = {
    "Retry-After": {"description": "seconds until the limit resets", "schema": {"type": "integer"}}
}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "the bearer challenge", "schema": {"type": "string"}}
}
# Every POST may be refused for its body's size or label; every authenticated call for its
# token (missing or bad: 401; of the other kind: 403) or the rate limit; any call for a NUL in
# its path or query.
ANY_CALL = (400,)
WITH_BODY = (400, 413, 415)
AUTHENTICATED = (401, 403, 429)


def _string_schema(annotated: Any) -> dict[str, Any]:
    return TypeAdapter(annotated).json_schema()


EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "schema": _string_schema(EventId),
}
TASK_ID = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": ROW_ID_MAX},
}


POLLING_PARAMETERS: list[dict[str, Any]] = [
    {"name": "include", "in": "query", "required": False,
     "schema": {"type": "string", "enum": ["candidates"]},
     "description": "add the candidate list"},
    {"name": "wait", "in": "query", "required": False,
     "schema": {"type": "number", "minimum": 0, "maximum": 30},
     "description": "hold the request until the document changes (or this many seconds pass)"},
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "the ETag you hold: 304 while the document is unchanged"},
]  # fmt: skip
POLLING_HEADERS = {
    "ETag": {"schema": {"type": "string"}, "description": "send back in If-None-Match"},
    "Retry-After": {"schema": {"type": "integer"},
                    "description": "while pending: seconds to wait before polling again"},
}  # fmt: skip


def _with_polling(item: dict[str, Any]) -> dict[str, Any]:
    """The event's GET: its answers carry ETag and Retry-After, and 304 has no body."""
    item["responses"]["200"]["headers"] = POLLING_HEADERS
    item["responses"]["304"] = {
        "description": "unchanged since the ETag in If-None-Match",
        "headers": POLLING_HEADERS,
    }
    return item


@dataclass(frozen=True)
class Operation:
    """One route of the API as the document describes it."""

    path: str
    summary: str
    security: list[dict[str, list[str]]]
    ok_status: int
    ok: str
    answer: type[BaseModel]
    errors: tuple[int, ...]
    body: type[BaseModel] | None = None
    parameters: list[dict[str, Any]] = field(default_factory=list)
    more_ok: dict[int, str] = field(default_factory=dict)
    method: str = "post"


OPERATIONS = (
    Operation(
        "/api/v1/openapi.json",
        "This document",
        PUBLIC,
        200,
        "the OpenAPI document",
        answers.OpenApiDocument,
        ANY_CALL,
        method="get",
    ),
    Operation(
        "/api/v1/rank",
        "Propose a slate for a context (a repeated event id returns the stored one)",
        CLIENT_TOKEN,
        200,
        "the stored decision (a repeated event id)",
        answers.RankAnswer,
        WITH_BODY + AUTHENTICATED + (422,),
        body=RankBody,
        more_ok={201: "a new decision"},
    ),
    Operation(
        "/api/v1/events/{event_id}",
        "An event, cheap to poll (ETag/If-None-Match, ?wait= long-poll)",
        CLIENT_TOKEN,
        200,
        "the event: delivered slate as sent, corrections, current slate, lifecycle, review due "
        "time",
        EventDocument,
        ANY_CALL + AUTHENTICATED + (404,),
        parameters=[EVENT_ID, *POLLING_PARAMETERS],
        method="get",
    ),
    Operation(
        "/api/v1/events/{event_id}/reward",
        "Report a delayed reward for the event or one delivered item",
        CLIENT_TOKEN,
        202,
        "reward accepted (duplicate: the same reward again)",
        answers.RewardAnswer,
        WITH_BODY + AUTHENTICATED + (404, 409),
        body=RewardBody,
        parameters=[EVENT_ID],
    ),
    Operation(
        "/api/v1/rewards",
        "Report delayed rewards for many events at once: all stored, or none",
        CLIENT_TOKEN,
        202,
        "every reward accepted, in the order sent (duplicate: the same reward again)",
        answers.RewardBatchAnswer,
        WITH_BODY + AUTHENTICATED + (404, 409),
        body=RewardBatchBody,
    ),
    Operation(
        "/api/v1/events/{event_id}/choice",
        "Apprentice mode: report the slate the client delivered itself (imitated)",
        CLIENT_TOKEN,
        202,
        "choice accepted (or the same choice again)",
        answers.ChoiceAnswer,
        WITH_BODY + AUTHENTICATED + (404, 409),
        body=ChoiceBody,
        parameters=[EVENT_ID],
    ),
    Operation(
        "/api/v1/review/claim",
        "Lease the most informative waiting task (or the one already held)",
        CURATOR_TOKEN,
        200,
        "{task: ...} with lease, slate and alternates, or {task: null}",
        answers.ClaimAnswer,
        (400, 413) + AUTHENTICATED,
    ),
    Operation(
        "/api/v1/review/{task_id}",
        "Submit one verdict per slate position (idempotent per lease)",
        CURATOR_TOKEN,
        200,
        "recorded, or duplicate of the same lease's submit",
        answers.SubmitAnswer,
        WITH_BODY + AUTHENTICATED + (404, 409),
        body=SubmitBody,
        parameters=[TASK_ID],
    ),
    Operation(
        "/api/v1/review/{task_id}/release",
        "Give a held task back to the queue",
        CURATOR_TOKEN,
        200,
        "released",
        answers.ReleaseAnswer,
        WITH_BODY + AUTHENTICATED + (404, 409),
        body=LeaseBody,
        parameters=[TASK_ID],
    ),
    Operation(
        "/api/v1/review/{task_id}/heartbeat",
        "Renew a live lease for another lease period",
        CURATOR_TOKEN,
        200,
        "the new lease end",
        answers.HeartbeatAnswer,
        WITH_BODY + AUTHENTICATED + (404, 409),
        body=LeaseBody,
        parameters=[TASK_ID],
    ),
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _responses(operation: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {"description": text, "content": _json(operation.answer)}
        for status, text in {operation.ok_status: operation.ok, **operation.more_ok}.items()
    }
    for status in sorted(set(operation.errors)):
        response: dict[str, Any] = {
            "description": ERROR_MEANINGS[status],
            "content": _json(answers.ErrorAnswer),
        }
        if status == 429:
            response["headers"] = RETRY_AFTER
        if status == 401:
            response["headers"] = WWW_AUTHENTICATE
        responses[str(status)] = response
    return responses


def _path_item(operation: Operation) -> dict[str, Any]:
    described: dict[str, Any] = {
        "summary": operation.summary,
        "security": operation.security,
        "responses": _responses(operation),
    }
    if operation.parameters:
        described["parameters"] = operation.parameters
    if operation.body is not None:
        described["requestBody"] = {"required": True, "content": _json(operation.body)}
    return described


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def build_document() -> dict[str, Any]:
    """The whole API as an OpenAPI 3.1 document."""
    bodies = [o.body for o in OPERATIONS if o.body is not None]
    models: list[type[BaseModel]] = [*bodies, answers.ErrorAnswer, *(o.answer for o in OPERATIONS)]
    unique_models: dict[type[BaseModel], None] = dict.fromkeys(
        [*models, WebhookMessage, RewardedData]
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "HITL recommender API",
            "version": "1",
            "description": "Rank/reward for client services; a review API for curators' tools. "
            "Every error is JSON {error: message}; a method a path does not offer gets 405 with "
            "an Allow header.",
        },
        "paths": {
            o.path: {
                o.method: _with_polling(_path_item(o))
                if o.path == "/api/v1/events/{event_id}"
                else _path_item(o)
            }
            for o in OPERATIONS
        },
        "components": {
            "securitySchemes": {
                "clientToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token made with `hitl token create NAME` (no --curator)",
                },
                "curatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token made with `hitl token create NAME --curator USER`",
                },
            },
            "schemas": _schemas(*unique_models),
        },
        "webhooks": {"eventChange": _webhook_operation()},
    }


def _webhook_operation() -> dict[str, Any]:
    return {
        "post": {
            "summary": "An event change, sent to each endpoint registered for its type "
            "(`hitl webhook add URL --events delivered,corrected,rewarded`)",
            "description": "At least once: retried with exponential backoff and jitter until "
            "a 2xx answer or the retry window ends. Verify Hitl-Signature (HMAC-SHA256 over "
            "'{Hitl-Timestamp}.{raw body}') and drop repeats of a Hitl-Delivery-Id.",
            "parameters": [
                {
                    "name": name,
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": text,
                }
                for name, text in WEBHOOK_HEADERS.items()
            ],  # fmt: skip
            "requestBody": {"required": True, "content": _json(WebhookMessage)},
            "responses": {"2XX": {"description": "received; any other answer is retried"}},
        }
    }


@bp.get("/openapi.json")
def document() -> ResponseReturnValue:
    """The OpenAPI 3 description of the whole API (public, like any API reference)."""
    return jsonify(build_document())
