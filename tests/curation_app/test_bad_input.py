"""Bad requests get the right 4xx, a JSON error naming the field, and change nothing stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api_support import (
    DELIVER_AT_ONCE,
    RANK_URL,
    activate_config,
    event_url,
    ranked,
    reward_url,
    snapshot,
)
from tests.conftest import DemoCatalog

VALID = "valid"
TOO_LARGE = 256 * 1024 + 1


@dataclass(frozen=True)
class Bad:
    """One bad request: where it goes, what it sends, and the answer it must get."""

    target: str  # "rank", "reward" (to the stored event), "event" (GET the stored event)
    status: int
    names: str  # the error message must contain this
    body: Any = None
    raw: bytes | None = None
    authorization: str | None = VALID
    event_id: str | None = None  # overrides the stored event's id


GOOD_CONTEXT = {"segment": "student", "budget": 80.0}
CASES = {
    # Body syntax and shape.
    "malformed-json": Bad("rank", 400, "JSON", raw=b'{"context": {'),
    "body-not-object": Bad("rank", 400, "object", body=[{"context": {}}]),
    "body-a-string": Bad("rank", 400, "object", body="context"),
    "body-empty": Bad("rank", 400, "JSON", raw=b""),
    "deeply-nested": Bad("rank", 400, "JSON", raw=b"[" * 100_000 + b"]" * 100_000),
    "not-utf8": Bad("rank", 400, "JSON", raw=b'{"context": {"x": "\xff"}}'),
    # Rank fields.
    "missing-context": Bad("rank", 400, "context", body={"slate_size": 3}),
    "unknown-field": Bad("rank", 400, "colour", body={"context": GOOD_CONTEXT, "colour": "red"}),
    "slate-size-string": Bad("rank", 400, "slate_size", body={"context": {}, "slate_size": "5"}),
    "slate-size-zero": Bad("rank", 400, "slate_size", body={"context": {}, "slate_size": 0}),
    "slate-size-bool": Bad("rank", 400, "slate_size", body={"context": {}, "slate_size": True}),
    "slate-size-float": Bad("rank", 400, "slate_size", body={"context": {}, "slate_size": 2.5}),
    "slate-size-huge": Bad("rank", 400, "slate_size", body={"context": {}, "slate_size": 10**6}),
    "explain-string": Bad("rank", 400, "explain", body={"context": {}, "explain": "yes"}),
    "explain-number": Bad("rank", 400, "explain", body={"context": {}, "explain": 1}),
    "context-a-list": Bad("rank", 400, "context", body={"context": [["budget", 80]]}),
    "context-value-dict": Bad("rank", 400, "context.profile", body={"context": {"profile": {}}}),
    "context-value-nan": Bad("rank", 400, "context.budget", raw=b'{"context": {"budget": NaN}}'),
    "context-value-huge": Bad("rank", 400, "context.budget", raw=b'{"context": {"budget": 1e999}}'),
    "context-value-huge-int": Bad(
        "rank", 400, "context.budget", body={"context": {"budget": 10**400}}
    ),
    "context-number-overflows-vw": Bad("rank", 400, "budget", body={"context": {"budget": 3e38}}),
    "context-list-number-overflows-vw": Bad(
        "rank", 400, "taste", body={"context": {"taste": [0.5, -1e30]}}
    ),
    "context-text-with-nul": Bad(
        "rank", 400, "context.segment", body={"context": {"segment": "a\x00"}}
    ),
    "exclude-with-nul": Bad("rank", 400, "exclude", body={"context": {}, "exclude": ["a\x00b"]}),
    "context-list-of-lists": Bad("rank", 400, "context.taste", body={"context": {"taste": [[1]]}}),
    "context-bad-key": Bad("rank", 400, "context", body={"context": {"no spaces": 1}}),
    "context-long-text": Bad("rank", 400, "context.note", body={"context": {"note": "x" * 201}}),
    "exclude-not-list": Bad("rank", 400, "exclude", body={"context": {}, "exclude": "sku-1"}),
    "exclude-unknown-items": Bad(
        "rank", 400, "exclude", body={"context": {}, "exclude": ["no-such-item"]}
    ),
    "event-id-with-slash": Bad("rank", 400, "event_id", body={"context": {}, "event_id": "a/b"}),
    "event-id-number": Bad("rank", 400, "event_id", body={"context": {}, "event_id": 42}),
    # Reward fields.
    "reward-value-string": Bad("reward", 400, "value", body={"value": "1.0"}),
    "reward-value-bool": Bad("reward", 400, "value", body={"value": True}),
    "reward-value-missing": Bad("reward", 400, "value", body={"item_id": "x"}),
    "reward-value-nan": Bad("reward", 400, "value", raw=b'{"value": NaN}'),
    "reward-value-infinite": Bad("reward", 400, "value", raw=b'{"value": 1e999}'),
    "reward-value-huge": Bad("reward", 400, "value", body={"value": 1e300}),
    "reward-unknown-field": Bad("reward", 400, "reason", body={"value": 1.0, "reason": "kept"}),
    "reward-item-id-number": Bad("reward", 400, "item_id", body={"value": 1.0, "item_id": 7}),
    "reward-body-not-object": Bad("reward", 400, "object", body=[1.0]),
    # Events that do not exist.
    "reward-unknown-event": Bad(
        "reward", 404, "no-such-event", body={"value": 1.0}, event_id="no-such-event"
    ),
    "get-unknown-event": Bad("event", 404, "no-such-event", event_id="no-such-event"),
    "get-event-id-with-nul": Bad("event", 400, "NUL", event_id="nul%00id"),
    "reward-event-id-with-nul": Bad("reward", 400, "NUL", body={"value": 1.0}, event_id="x%00"),
    "reward-item-id-with-nul": Bad(
        "reward", 400, "item_id", body={"value": 1.0, "item_id": "\x00"}
    ),
    # Authorization.
    "rank-missing-token": Bad(
        "rank", 401, "Authorization", body={"context": {}}, authorization=None
    ),
    "rank-wrong-token": Bad(
        "rank", 401, "token", body={"context": {}}, authorization="Bearer hitl_wrong"
    ),
    "rank-basic-auth": Bad(
        "rank", 401, "Authorization", body={"context": {}}, authorization="Basic dXNlcjpwdw=="
    ),
    "rank-bearer-no-token": Bad(
        "rank", 401, "Authorization", body={"context": {}}, authorization="Bearer "
    ),
    "rank-token-no-scheme": Bad(
        "rank", 401, "Authorization", body={"context": {}}, authorization="hitl_abc"
    ),
    "reward-missing-token": Bad(
        "reward", 401, "Authorization", body={"value": 1.0}, authorization=None
    ),
    "reward-wrong-token": Bad(
        "reward", 401, "token", body={"value": 1.0}, authorization="Bearer nope"
    ),
    "get-event-missing-token": Bad("event", 401, "Authorization", authorization=None),
    # Size.
    "rank-too-large": Bad(
        "rank", 413, "body", raw=b'{"context": {"x": "' + b"a" * TOO_LARGE + b'"}}'
    ),
    "reward-too-large": Bad(
        "reward", 413, "body", raw=b'{"value": 1.0, "pad": "' + b" " * TOO_LARGE + b'"}'
    ),
}


@pytest.fixture
def stored_event(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> str:
    """A delivered event with one reward already stored, so there are values to protect."""
    activate_config(session_factory, **DELIVER_AT_ONCE)
    decision = ranked(client, auth_headers, dict(demo_catalog.customers[3]))
    event_id: str = decision["event_id"]
    item_id = decision["slate"][0]["item_id"]
    response = client.post(
        reward_url(event_id), json={"value": 1.0, "item_id": item_id}, headers=auth_headers
    )
    assert response.status_code == 202
    return event_id


def _send(client: FlaskClient, case: Bad, event_id: str, token_header: str) -> Any:
    headers = {}
    if case.authorization == VALID:
        headers["Authorization"] = token_header
    elif case.authorization is not None:
        headers["Authorization"] = case.authorization
    target_event = case.event_id or event_id
    if case.target == "event":
        return client.get(event_url(target_event), headers=headers)
    url = RANK_URL if case.target == "rank" else reward_url(target_event)
    data = case.raw if case.raw is not None else json.dumps(case.body).encode()
    return client.post(url, data=data, content_type="application/json", headers=headers)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_requests_are_refused_by_name_and_change_nothing(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    stored_event: str,
    case: Bad,
) -> None:
    before = snapshot(session_factory)

    response = _send(client, case, stored_event, auth_headers["Authorization"])

    assert response.status_code == case.status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error, str)
    assert case.names in error
    assert snapshot(session_factory) == before


@pytest.mark.parametrize("authorization", [None, "Bearer nope"], ids=["missing", "wrong"])
def test_a_refused_token_says_how_to_authenticate(
    client: FlaskClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.post(RANK_URL, json={"context": {}}, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_errors_never_echo_a_traceback(
    client: FlaskClient, auth_headers: dict[str, str], stored_event: str
) -> None:
    response = client.post(
        RANK_URL, data=b'{"context": {', content_type="application/json", headers=auth_headers
    )

    assert "Traceback" not in response.get_data(as_text=True)
    assert set(response.get_json()) == {"error"}
