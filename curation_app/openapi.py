"""The OpenAPI 3 document of the JSON API, served at /api/v1/openapi.json.

Request bodies come from the same pydantic models that validate them, so the schemas cannot
drift from what the API accepts; a test checks that every API route is described here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel

from curation_app.api import ChoiceBody, RankBody, RewardBody
from curation_app.event_schemas import WEBHOOK_HEADERS, EventDocument, WebhookMessage
from curation_app.review_api import LeaseBody, SubmitBody

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
REF = "#/components/schemas/{model}"
ERROR = {"$ref": "#/components/schemas/Error"}
CLIENT_TOKEN: list[dict[str, list[str]]] = [{"clientToken": []}]
CURATOR_TOKEN: list[dict[str, list[str]]] = [{"curatorToken": []}]
TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "integer"}}
EVENT_ID = {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _body(model: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
    }


def _answers(ok: str, *errors: int, status: str = "200") -> dict[str, Any]:
    described = {
        400: "invalid body or verdict (the message names the field)",
        401: "missing, invalid or revoked bearer token",
        403: "the token is not bound to an active curator",
        404: "no such task or event",
        409: "a conflict with what is stored (a lost lease, or a slate already decided); "
        "nothing changed",
        422: "no eligible items for this request",
    }
    answers: dict[str, Any] = {status: {"description": ok}}
    for code in errors:
        answers[str(code)] = {
            "description": described[code],
            "content": {"application/json": {"schema": ERROR}},
        }
    return answers


def _operation(summary: str, security: list[Any], responses: dict[str, Any], **more: Any) -> Any:
    return {"summary": summary, "security": security, "responses": responses, **more}


def build_document() -> dict[str, Any]:
    """The whole API as an OpenAPI 3.1 document."""
    lease_errors = (400, 401, 403, 404, 409)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "HITL recommender API",
            "version": "1",
            "description": "Rank/reward for client services; a review API for curators' tools.",
        },
        "paths": {
            "/api/v1/openapi.json": {
                "get": _operation("This document", [], _answers("the OpenAPI document"))
            },
            "/api/v1/rank": {
                "post": _operation(
                    "Propose a slate for a context (a repeated event id returns the stored one)",
                    CLIENT_TOKEN,
                    _answers("the stored decision (repeat)", 400, 401, 422)
                    | {"201": {"description": "a new decision"}},
                    requestBody=_body("RankBody"),
                )
            },
            "/api/v1/events/{event_id}": {"get": _event_operation()},
            "/api/v1/events/{event_id}/reward": {
                "post": _operation(
                    "Report a delayed reward for the event or one delivered item",
                    CLIENT_TOKEN,
                    _answers("reward accepted", 400, 401, 404, status="202"),
                    parameters=[EVENT_ID],
                    requestBody=_body("RewardBody"),
                )
            },
            "/api/v1/events/{event_id}/choice": {
                "post": _operation(
                    "Apprentice mode: report the slate the client delivered itself (imitated)",
                    CLIENT_TOKEN,
                    _answers(
                        "choice accepted (or the same choice again)",
                        400,
                        401,
                        404,
                        409,
                        status="202",
                    ),
                    parameters=[EVENT_ID],
                    requestBody=_body("ChoiceBody"),
                )
            },
            "/api/v1/review/claim": {
                "post": _operation(
                    "Lease the most informative waiting task (or the one already held)",
                    CURATOR_TOKEN,
                    _answers(
                        "{task: ...} with lease, slate and alternates, or {task: null}", 401, 403
                    ),
                )
            },
            "/api/v1/review/{task_id}": {
                "post": _operation(
                    "Submit one verdict per slate position (idempotent per lease)",
                    CURATOR_TOKEN,
                    _answers("recorded, or duplicate of the same lease's submit", *lease_errors),
                    parameters=[TASK_ID],
                    requestBody=_body("SubmitBody"),
                )
            },
            "/api/v1/review/{task_id}/release": {
                "post": _operation(
                    "Give a held task back to the queue",
                    CURATOR_TOKEN,
                    _answers("released", *lease_errors),
                    parameters=[TASK_ID],
                    requestBody=_body("LeaseBody"),
                )
            },
            "/api/v1/review/{task_id}/heartbeat": {
                "post": _operation(
                    "Renew a live lease for another lease period",
                    CURATOR_TOKEN,
                    _answers("the new lease end", *lease_errors),
                    parameters=[TASK_ID],
                    requestBody=_body("LeaseBody"),
                )
            },
        },
        "components": {
            "securitySchemes": {
                "clientToken": {"type": "http", "scheme": "bearer"},
                "curatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token made with `hitl token create NAME --curator USER`",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                },
                **_schemas(
                    RankBody,
                    RewardBody,
                    ChoiceBody,
                    SubmitBody,
                    LeaseBody,
                    EventDocument,
                    WebhookMessage,
                ),
            },
        },
        "webhooks": {"eventChange": _webhook_operation()},
    }


def _event_operation() -> dict[str, Any]:
    query = [
        ("include", {"type": "string", "enum": ["candidates"]}, "add the candidate list"),
        ("wait", {"type": "number", "minimum": 0, "maximum": 30},
         "hold the request until the document changes (or this many seconds pass)"),
    ]  # fmt: skip
    parameters = [EVENT_ID] + [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
        for name, schema, text in query
    ]
    parameters.append({
        "name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "the ETag you hold: 304 while the document is unchanged",
    })  # fmt: skip
    headers = {
        "ETag": {"schema": {"type": "string"}, "description": "send back in If-None-Match"},
        "Retry-After": {"schema": {"type": "integer"},
                        "description": "while pending: seconds to wait before polling again"},
    }  # fmt: skip
    answers = _answers("the event", 400, 401, 404)
    answers["200"] = {
        "description": "the event: delivered slate as sent, corrections, current slate, "
        "lifecycle, review due time",
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="EventDocument")}}},
    }
    answers["304"] = {
        "description": "unchanged since the ETag in If-None-Match",
        "headers": headers,
    }
    return _operation(
        "An event, cheap to poll (ETag/If-None-Match, ?wait= long-poll)",
        CLIENT_TOKEN,
        answers,
        parameters=parameters,
    )


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
            "requestBody": _body("WebhookMessage"),
            "responses": {"2XX": {"description": "received; any other answer is retried"}},
        }
    }


@bp.get("/openapi.json")
def document() -> ResponseReturnValue:
    """The OpenAPI 3 description of the whole API (public, like any API reference)."""
    return jsonify(build_document())
