"""The event document's `routing.reason` states the rule that routed the decision, in every
routing mode, and names the route that rule gives (the reference: the routing functions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import ModelVersion
from bandit.engine.config import PolicyConfig
from bandit.engine.routing import route_for
from bandit.engine.vocabulary import Route
from bandit.services import configs, decisions
from bandit.services.runtime import EngineRuntime
from curation_app import event_views
from tests.conftest import DemoCatalog
from tests.services.test_audits import trusted_model

ENDINGS = {
    Route.AUTO: "delivered automatically",
    Route.REVIEW_AFTER: "reviews it after delivery",
    Route.REVIEW_BEFORE: "reviews it before delivery",
}


def _documents(
    sessions: sessionmaker[Session], catalog: DemoCatalog, count: int
) -> list[dict[str, Any]]:
    runtime = EngineRuntime(np.random.default_rng(3))
    documents = []
    with sessions() as session:
        for index in range(count):
            context = catalog.customers[index % len(catalog.customers)]
            decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
            session.commit()
            documents.append(event_views.event_view(session, decision, include_candidates=False))
    return documents


def _activate(sessions: sessionmaker[Session], **settings: Any) -> PolicyConfig:
    config = PolicyConfig(**settings)
    with sessions() as session:
        configs.save_config(session, config, created_by="test", activate=True)
        session.commit()
    return config


@pytest.mark.parametrize(
    ("mode", "phrase"),
    [
        ("review_before", "review every slate before delivery"),
        ("review_after", "review every slate after delivery"),
        ("apprentice", "chooses every slate before delivery"),
    ],
)
def test_a_fixed_mode_says_every_slate_is_reviewed_as_it_is(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, mode: str, phrase: str
) -> None:
    _activate(session_factory, routing_mode=mode)
    for document in _documents(session_factory, demo_catalog, 3):
        assert phrase in document["routing"]["reason"]


@pytest.mark.parametrize(
    ("auto_threshold", "review_threshold", "route"),
    [(0.0, 0.0, Route.AUTO), (1.0, 0.0, Route.REVIEW_AFTER), (1.0, 1.0, Route.REVIEW_BEFORE)],
)
def test_partial_routing_names_the_confidence_the_thresholds_and_the_route_they_give(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    auto_threshold: float,
    review_threshold: float,
    route: Route,
) -> None:
    config = _activate(
        session_factory,
        routing_mode="partial",
        auto_threshold=auto_threshold,
        review_threshold=review_threshold,
    )
    for document in _documents(session_factory, demo_catalog, 3):
        routing = document["routing"]
        assert document["route"] == route == route_for(routing["confidence"], config)
        assert routing["reason"].startswith(f"the policy's confidence {routing['confidence']:.3f}")
        assert routing["reason"].endswith(ENDINGS[route])


@pytest.mark.parametrize(
    ("threshold", "review_threshold", "route", "phrase"),
    [
        (0.5, 0.5, Route.AUTO, "met the auto threshold 0.500"),
        (0.9, 0.5, Route.REVIEW_AFTER, "below the auto threshold 0.900, at or above the review"),
        (0.9, 0.95, Route.REVIEW_BEFORE, "below the auto threshold 0.900, below the review"),
        (None, 0.5, Route.REVIEW_AFTER, "no auto threshold in force"),
        (None, 0.95, Route.REVIEW_BEFORE, "no auto threshold in force"),
    ],
)
def test_risk_controlled_routing_names_the_approval_and_both_thresholds(
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    threshold: float | None,
    review_threshold: float,
    route: Route,
    phrase: str,
) -> None:
    # Every slate's approval is 0.95 ** 3 = 0.857 under this model.
    trusted_model(session_factory, threshold, audit_share=0.0, review_threshold=review_threshold)
    for document in _documents(session_factory, demo_catalog, 3):
        reason = document["routing"]["reason"]
        assert document["route"] == route
        assert reason.startswith("approval 0.857") and phrase in reason, reason
        if route != Route.AUTO:
            assert reason.endswith(ENDINGS[route]), reason


def test_risk_controlled_routing_without_an_approval_model_says_every_slate_is_reviewed_first(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    _activate(session_factory, routing_mode="risk_controlled")
    for document in _documents(session_factory, demo_catalog, 3):
        assert document["route"] == Route.REVIEW_BEFORE
        assert document["routing"]["reason"] == (
            "no approval model yet, so a curator reviews every slate before delivery"
        )


def test_no_threshold_after_a_failed_first_test_names_the_bound_not_too_little_evidence(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    """The served approval state's pass tested 0.61 on 229 slates and it failed: routing's
    reason says so, not that evidence is lacking."""
    trusted_model(session_factory, None, audit_share=0.0, review_threshold=0.5)
    failed = {"threshold": 0.61, "n": 229, "overrides": 126, "rate": 0.55, "bound": 0.603}
    with session_factory() as session:
        saved = session.scalars(select(ModelVersion)).one()
        risk = {"threshold": None, "target": 0.05, "chosen": failed, "first_failure": failed}
        saved.approval_state = {**(saved.approval_state or {}), "risk": risk}
        session.commit()
    for document in _documents(session_factory, demo_catalog, 2):
        reason = document["routing"]["reason"]
        assert document["route"] == Route.REVIEW_AFTER
        assert "too little evidence" not in reason, reason
        assert (
            "no auto threshold in force (the override bound at the highest testable threshold "
            "0.61 is 60.3% from 229 reviewed slates (126 overrides), above the target 5.0%)"
        ) in reason, reason
        assert reason.endswith(ENDINGS[Route.REVIEW_AFTER])
