"""The task page shows each proposed item's explanation ("why") once the model has learned."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import ReviewTask
from tests.api_support import activate_config
from tests.conftest import DemoCatalog
from tests.curation_app.test_console import login, make_tasks, open_next
from tests.services.test_model_versions import _train_version


def test_task_page_lists_the_features_behind_each_proposal(
    app: Flask,
    client: FlaskClient,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
) -> None:
    context: dict[str, Any] = dict(demo_catalog.customers[0])
    activate_config(session_factory, routing_mode="review_before")
    _train_version(session_factory, context, favourite=4)
    make_tasks(app, session_factory, [context])
    login(client, *curator_account)
    task_id, html, _ = open_next(client)
    with session_factory() as db:
        task = db.get(ReviewTask, task_id)
        assert task is not None
        explained = [p.why for p in task.decision.proposed if p.why]
    assert explained, "a trained model explains its proposals"
    assert html.count('class="why"') == len(explained)
    for why in explained:
        feature = why[0]["feature"].replace("(", "&#40;").replace(")", "&#41;")
        assert why[0]["feature"] in html or feature in html
