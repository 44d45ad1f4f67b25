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
            "/api/v1/events/{event_id}": {
                "get": _operation(
                    "A decision with its review, verifications, final slate and outcomes",
                    CLIENT_TOKEN,
                    _answers("the event", 401, 404),
                    parameters=[EVENT_ID],
                )
            },
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
                **_schemas(RankBody, RewardBody, ChoiceBody, SubmitBody, LeaseBody),
            },
        },
    }


@bp.get("/openapi.json")
def document() -> ResponseReturnValue:
    """The OpenAPI 3 description of the whole API (public, like any API reference)."""
    return jsonify(build_document())
