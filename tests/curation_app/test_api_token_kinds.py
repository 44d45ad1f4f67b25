"""Which token each API takes: a token bound to a curator works on the review API only.

The review API hands a curator the event id of the task in hand; any client endpoint that
took the same token would answer with that event's route (rank replay), tell review-before
from review-after by its error (reward probe), or let the curator write client rewards, and
so unblind the audits (docs/trust.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bandit.services import accounts
from tests.api_support import DELIVER_AT_ONCE, activate_config, ranked, snapshot
from tests.conftest import CURATOR_PASSWORD, DemoCatalog

P = "/personalizer/v1.0"
ACTIONS = [
    {"id": "pasta", "features": [{"taste": "salty"}]},
    {"id": "salad", "features": [{"taste": "fresh"}]},
    {"id": "juice", "features": [{"taste": "sweet"}]},
]
SLOTS = [{"id": "Main"}, {"id": "Side"}]


@dataclass(frozen=True)
class World:
    """Stored events every client endpoint can act on, each in the state its call needs."""

    customer: dict[str, Any]
    delivered: dict[str, Any]  # a v1 decision that went out at once
    apprentice: dict[str, Any]  # a v1 apprentice decision waiting for the client's choice
    live: str  # Personalizer events that went out at once
    live_multislot: str
    deferred: str  # Personalizer events ranked with deferActivation
    deferred_multislot: str


@dataclass(frozen=True)
class Call:
    method: str
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any] | None]
    client_status: int  # what an ordinary client token gets for the same call


def _item(world: World) -> str:
    return str(world.delivered["slate"][0]["item_id"])


CLIENT_CALLS = {
    "v1-rank-new": Call("post", lambda w: "/api/v1/rank", lambda w: {"context": w.customer}, 201),
    "v1-rank-replay": Call(
        "post",
        lambda w: "/api/v1/rank",
        lambda w: {"context": {}, "event_id": w.delivered["event_id"], "exclude": ["no-such"]},
        200,
    ),
    "v1-event-document": Call(
        "get", lambda w: f"/api/v1/events/{w.delivered['event_id']}", lambda w: None, 200
    ),
    "v1-reward": Call(
        "post",
        lambda w: f"/api/v1/events/{w.delivered['event_id']}/reward",
        lambda w: {"value": 1.0, "item_id": _item(w)},
        202,
    ),
    "v1-reward-probe-unknown-item": Call(
        "post",
        lambda w: f"/api/v1/events/{w.delivered['event_id']}/reward",
        lambda w: {"value": 1.0, "item_id": "no-such-item"},
        400,
    ),
    "v1-reward-batch": Call(
        "post",
        lambda w: "/api/v1/rewards",
        lambda w: {
            "rewards": [{"event_id": w.delivered["event_id"], "value": 1.0, "item_id": _item(w)}]
        },
        202,
    ),
    "v1-choice": Call(
        "post",
        lambda w: f"/api/v1/events/{w.apprentice['event_id']}/choice",
        lambda w: {"items": [i["item_id"] for i in w.apprentice["slate"]]},
        202,
    ),
    "personalizer-rank-new": Call(
        "post", lambda w: f"{P}/rank", lambda w: {"actions": ACTIONS}, 201
    ),
    "personalizer-rank-replay": Call(
        "post", lambda w: f"{P}/rank", lambda w: {"actions": ACTIONS, "eventId": w.live}, 200
    ),
    "personalizer-multislot-rank": Call(
        "post", lambda w: f"{P}/multislot/rank", lambda w: {"actions": ACTIONS, "slots": SLOTS}, 201
    ),
    "personalizer-reward": Call(
        "post", lambda w: f"{P}/events/{w.live}/reward", lambda w: {"value": 1.0}, 204
    ),
    "personalizer-multislot-reward": Call(
        "post",
        lambda w: f"{P}/multislot/events/{w.live_multislot}/reward",
        lambda w: {"reward": [{"slotId": "Main", "value": 1.0}]},
        204,
    ),
    "personalizer-activate": Call(
        "post", lambda w: f"{P}/events/{w.deferred}/activate", lambda w: None, 204
    ),
    "personalizer-multislot-activate": Call(
        "post",
        lambda w: f"{P}/multislot/events/{w.deferred_multislot}/activate",
        lambda w: None,
        204,
    ),
}


def _personalizer_rank(client: FlaskClient, headers: dict[str, str], path: str, **body: Any) -> str:
    response = client.post(f"{P}{path}", json={"actions": ACTIONS, **body}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["eventId"])


@pytest.fixture
def world(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> World:
    activate_config(session_factory, routing_mode="apprentice")
    apprentice = ranked(client, auth_headers, dict(demo_catalog.customers[4]), slate_size=3)
    activate_config(session_factory, **DELIVER_AT_ONCE)
    return World(
        customer=dict(demo_catalog.customers[3]),
        delivered=ranked(client, auth_headers, dict(demo_catalog.customers[2]), slate_size=3),
        apprentice=apprentice,
        live=_personalizer_rank(client, auth_headers, "/rank"),
        live_multislot=_personalizer_rank(client, auth_headers, "/multislot/rank", slots=SLOTS),
        deferred=_personalizer_rank(client, auth_headers, "/rank", deferActivation=True),
        deferred_multislot=_personalizer_rank(
            client, auth_headers, "/multislot/rank", slots=SLOTS, deferActivation=True
        ),
    )


def _bound_token(sessions: sessionmaker[Session], username: str) -> str:
    with sessions() as session:
        token = accounts.create_token(session, f"tool-{username}", curator_username=username)
        session.commit()
    return token


@pytest.fixture
def curator_token(session_factory: sessionmaker[Session], curator_account: tuple[str, str]) -> str:
    return _bound_token(session_factory, curator_account[0])


@pytest.fixture
def admin_token(session_factory: sessionmaker[Session]) -> str:
    with session_factory() as session:
        accounts.add_curator(session, "lead", CURATOR_PASSWORD, role="admin")
        session.commit()
    return _bound_token(session_factory, "lead")


def _decision_counters(client: FlaskClient) -> list[str]:
    text = client.get("/metrics").get_data(as_text=True)
    return [line for line in text.splitlines() if line.startswith("hitl_decisions_total")]


def _send(client: FlaskClient, call: Call, world: World, headers: dict[str, str]) -> Any:
    return client.open(
        call.path(world), method=call.method.upper(), json=call.body(world), headers=headers
    )


# Every client call with a bearer token; Personalizer's also with its own key header.
CASES = [(name, "Authorization") for name in CLIENT_CALLS] + [
    (name, "Ocp-Apim-Subscription-Key") for name in CLIENT_CALLS if name.startswith("personalizer")
]


def _refused_and_nothing_stored(
    client: FlaskClient,
    sessions: sessionmaker[Session],
    world: World,
    call: Call,
    headers: dict[str, str],
) -> None:
    stored, counted = snapshot(sessions), _decision_counters(client)

    refused = _send(client, call, world, headers)

    assert refused.status_code == 403
    error = refused.get_json()["error"]
    if call.path(world).startswith(P):
        assert error["code"] == "Unauthorized"
        error = error["message"]
    assert "review API only" in error
    # Nothing of the event leaks through the refusal, and nothing is written or counted.
    said = refused.get_data(as_text=True)
    assert not any(word in said for word in ("route", "status", "audit", "delivered", "waiting"))
    assert snapshot(sessions) == stored
    assert _decision_counters(client) == counted


def _sent_as(header: str, token: str) -> dict[str, str]:
    return {header: f"Bearer {token}" if header == "Authorization" else token}


# Every client call with a bearer token; Personalizer's also with its own key header.
CASES = [(name, "Authorization") for name in CLIENT_CALLS] + [
    (name, "Ocp-Apim-Subscription-Key") for name in CLIENT_CALLS if name.startswith("personalizer")
]


@pytest.mark.parametrize(("name", "header"), CASES, ids=[f"{n}-{h}" for n, h in CASES])
def test_a_token_bound_to_a_curator_is_refused_on_every_client_endpoint_and_stores_nothing(
    client: FlaskClient,
    session_factory: sessionmaker[Session],
    api_token: str,
    world: World,
    curator_token: str,
    name: str,
    header: str,
) -> None:
    call = CLIENT_CALLS[name]
    _refused_and_nothing_stored(
        client, session_factory, world, call, _sent_as(header, curator_token)
    )
    # The same call with a client's token still works.
    answered = _send(client, call, world, _sent_as(header, api_token))
    assert answered.status_code == call.client_status, answered.get_json()


@pytest.mark.parametrize("name", ["v1-rank-replay", "v1-reward", "personalizer-reward"])
def test_a_token_bound_to_an_admin_is_no_clients_token_either(
    client: FlaskClient,
    session_factory: sessionmaker[Session],
    world: World,
    admin_token: str,
    name: str,
) -> None:
    call = CLIENT_CALLS[name]
    _refused_and_nothing_stored(
        client, session_factory, world, call, _sent_as("Authorization", admin_token)
    )


def test_the_review_api_still_takes_a_curators_token_and_refuses_a_clients(
    client: FlaskClient, auth_headers: dict[str, str], world: World, curator_token: str
) -> None:
    claimed = client.post("/api/v1/review/claim", headers=_sent_as("Authorization", curator_token))
    assert claimed.status_code == 200 and claimed.get_json()["task"] is not None
    refused = client.post("/api/v1/review/claim", headers=auth_headers)
    assert refused.status_code == 403
    assert "not bound to an active curator" in refused.get_json()["error"]
