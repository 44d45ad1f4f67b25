"""API edges beyond the body fields: ids past the key column's range, bodies labelled as forms,
405 with Allow, the per-token rate limit, and an OpenAPI document that says what is accepted."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.limits import ROW_ID_MAX
from curation_app import create_app
from curation_app.api import RankBody
from curation_app.openapi import build_document
from tests.api_support import (
    DELIVER_AT_ONCE,
    RANK_URL,
    activate_config,
    ranked,
    reward_url,
    snapshot,
)
from tests.conftest import DemoCatalog


@pytest.fixture
def stored_event(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> str:
    activate_config(session_factory, **DELIVER_AT_ONCE)
    event_id: str = ranked(client, auth_headers, dict(demo_catalog.customers[1]))["event_id"]
    return event_id


@pytest.mark.usefixtures("stored_event")
@pytest.mark.parametrize(
    "action", ["", "/release", "/heartbeat"], ids=["submit", "release", "heartbeat"]
)
@pytest.mark.parametrize("task_id", [ROW_ID_MAX + 1, 2**63 - 1, 2**63, 10**30])
def test_task_ids_past_the_key_column_are_404_on_both_backends(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    task_id: int,
    action: str,
) -> None:
    before = snapshot(session_factory)

    response = client.post(
        f"/api/v1/review/{task_id}{action}", json={"lease_token": "x"}, headers=auth_headers
    )

    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json() == {"error": "no such record"}
    assert snapshot(session_factory) == before


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("target", "body"),
    [("rank", b'{"context": {"segment": "student"}}'), ("reward", b'{"value": 1.0}')],
)
@pytest.mark.parametrize("content_type", [FORM, "text/plain", "multipart/form-data; boundary=x"])
def test_json_labelled_as_something_else_gets_415_naming_the_header(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    stored_event: str,
    target: str,
    body: bytes,
    content_type: str,
) -> None:
    url = RANK_URL if target == "rank" else reward_url(stored_event)
    before = snapshot(session_factory)

    # What `curl -d '{...}' URL` sends: JSON, labelled as a form.
    response = client.post(url, data=body, content_type=content_type, headers=auth_headers)

    assert response.status_code == 415, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error.startswith("Content-Type:") and "application/json" in error
    assert "malformed" not in error
    assert snapshot(session_factory) == before


@pytest.mark.usefixtures("demo_catalog")
def test_a_json_body_without_content_type_is_read_as_json(
    client: FlaskClient, auth_headers: dict[str, str]
) -> None:
    response = client.post(
        RANK_URL, data=b'{"context": {"segment": "student"}}', headers=auth_headers
    )

    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", RANK_URL, {"POST", "OPTIONS"}),
        ("DELETE", "/api/v1/events/e-1", {"GET", "HEAD", "OPTIONS"}),
        ("PUT", "/api/v1/review/claim", {"POST", "OPTIONS"}),
    ],
)
def test_405_names_the_allowed_methods(
    client: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    response = client.open(path, method=method)

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == allowed
    assert "POST" in response.get_json()["error"] or "GET" in response.get_json()["error"]


@pytest.fixture
def limited_app(database_url: str, session_factory: sessionmaker[Session]) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SESSION_FACTORY": session_factory,
            "SECRET_KEY": "test-secret",
            "API_RATE_LIMIT": "3 per minute",
        }
    )


def test_the_rate_limit_is_per_token_and_answers_json_429(
    limited_app: Flask, auth_headers: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    client = limited_app.test_client()
    answers = [client.get("/api/v1/events/none", headers=auth_headers) for _ in range(4)]

    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    refused = answers[-1]
    assert refused.mimetype == "application/json"
    assert "too many requests" in refused.get_json()["error"]
    assert int(refused.headers["Retry-After"]) > 0
    other = client.get("/api/v1/events/none", headers={"Authorization": "Bearer other"})
    assert other.status_code == 401
    assert client.get("/api/v1/openapi.json").status_code == 200


# --- the document says what the validators accept -------------------------------------------

DOCUMENT = build_document()


def _context_validator() -> Any:
    schema = {**DOCUMENT["components"]["schemas"]["RankBody"]["properties"]["context"]}
    return jsonschema_rs.Draft202012Validator(schema)


CONTEXTS: dict[str, Any] = {
    "empty": {},
    "text-number-flag-null-list": {
        "segment": "s",
        "budget": 80.5,
        "vip": True,
        "x": None,
        "t": [1, "a"],
    },
    "key-with-space": {"no spaces": 1},
    "key-starting-with-digit": {"1st": 1},
    "key-too-long": {"k" * 65: 1},
    "key-longest": {"k" * 64: 1},
    "feature-above-range": {"budget": 1_000_001},
    "feature-at-range": {"budget": 1_000_000},
    "identifier-above-feature-range": {"customer_id": 123_456_789},
    "identifier-above-2-53": {"customer_id": 2**53 + 1},
    "list-feature-above-range": {"taste": [0.5, -2e6]},
    "text-too-long": {"note": "x" * 201},
    "text-longest": {"note": "x" * 200},
    "text-with-nul": {"note": "a\x00b"},
    "nested-object": {"profile": {}},
    "list-of-lists": {"taste": [[1]]},
    "list-with-null": {"taste": [None]},
    "list-too-long": {"taste": [1] * 101},
    "too-many-keys": {f"k{i}": i for i in range(101)},
}


@pytest.mark.parametrize("context", list(CONTEXTS.values()), ids=list(CONTEXTS))
def test_the_documented_context_rule_is_the_validated_one(context: dict[str, Any]) -> None:
    try:
        RankBody.model_validate({"context": context})
        accepted = True
    except ValueError:
        accepted = False

    assert _context_validator().is_valid(context) == accepted


def test_every_operation_documents_its_error_statuses_with_bodies() -> None:
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            if operation["security"]:
                assert {"400", "401", "429"} <= statuses, (method, path)
                assert "Retry-After" in operation["responses"]["429"]["headers"]
            if "requestBody" in operation:
                assert {"413", "415"} <= statuses, (method, path)
            for status, response in operation["responses"].items():
                if status == "304":  # Not Modified has no body, by definition
                    assert "content" not in response, (method, path)
                    continue
                assert "application/json" in response["content"], (method, path, status)
    assert "409" in DOCUMENT["paths"]["/api/v1/events/{event_id}/reward"]["post"]["responses"]
    task_id = DOCUMENT["paths"]["/api/v1/review/{task_id}"]["post"]["parameters"][0]
    assert task_id["schema"]["maximum"] == ROW_ID_MAX


def test_no_schema_lets_unchecked_keys_through() -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "patternProperties" in node:
                # Every key is held to the key rule, whatever patternProperties matches.
                assert "propertyNames" in node and node.get("additionalProperties") is not True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(DOCUMENT)
