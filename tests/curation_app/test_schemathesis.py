"""schemathesis against the served OpenAPI document: no 5xx, no answer outside the document.

Bounded on purpose: a fixed seed (derandomized), a fixed number of examples per operation, and
both backends; the counts of what was sent and answered are written to
test-artifacts/schemathesis-<backend>.json for the record.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import ReviewTask
from bandit.services import accounts
from curation_app.openapi import OPERATIONS as DOCUMENTED
from tests.api_support import DELIVER_AT_ONCE, activate_config, ranked
from tests.conftest import DemoCatalog

# Per operation and kind of case (valid, invalid, valid at a stored event or task id).
EXAMPLES_PER_OPERATION = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
# What each backend's run sent and got, written out when the module ends.
COUNTS: dict[str, Counter[str]] = {}


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    for backend, counts in COUNTS.items():
        path = ARTIFACTS / f"schemathesis-{backend}.json"
        path.write_text(json.dumps(dict(sorted(counts.items())), indent=2) + "\n")


@pytest.fixture
def tokens(
    session_factory: sessionmaker[Session], curator_account: tuple[str, str]
) -> dict[str, str]:
    """A client token and a curator-bound token, by security scheme name."""
    with session_factory() as session:
        client = accounts.create_token(session, "fuzz-client")
        curator = accounts.create_token(
            session, "fuzz-curator", curator_username=curator_account[0]
        )
        session.commit()
    return {"clientToken": client, "curatorToken": curator}


@pytest.fixture
def stored_ids(
    app: Flask,
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
    tokens: dict[str, str],
) -> dict[str, Any]:
    """A delivered event with its verify-after-output task, so fuzzed bodies also reach real
    records (random ids alone mostly meet 404s)."""
    activate_config(session_factory, **DELIVER_AT_ONCE)
    client = app.test_client()
    event = ranked(
        client, {"Authorization": f"Bearer {tokens['clientToken']}"}, demo_catalog.customers[0]
    )
    with session_factory() as session:
        task_id = session.scalars(select(ReviewTask.id)).one()
    return {"event_id": event["event_id"], "task_id": task_id}


def test_api_keeps_to_its_document(
    app: Flask,
    stored_ids: dict[str, Any],
    tokens: dict[str, str],
    database_url: str,
    subtests: pytest.Subtests,
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    counts = COUNTS.setdefault(backend, Counter())
    for documented in DOCUMENTED:
        with subtests.test(operation=f"{documented.method.upper()} {documented.path}"):
            _fuzz_operation(schema[documented.path][documented.method], stored_ids, tokens, counts)


def _fuzz_operation(
    operation: Any, stored_ids: dict[str, Any], tokens: dict[str, str], counts: Counter[str]
) -> None:
    """Valid cases, invalid cases, and valid cases at the stored event or task."""
    security = operation.definition.raw.get("security", [])
    schemes = [name for requirement in security for name in requirement]
    headers = {"Authorization": f"Bearer {tokens[schemes[0]]}"} if schemes else {}
    real_ids = {
        name: value for name, value in stored_ids.items() if f"{{{name}}}" in operation.path
    }
    takes_input = bool(real_ids) or "requestBody" in operation.definition.raw

    _fuzz(operation.as_strategy(), "positive", operation, headers, counts)
    if takes_input:  # an operation with no parameters and no body has nothing to negate
        negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        _fuzz(negative, "negative", operation, headers, counts)
    if real_ids:
        stored = operation.as_strategy(path_parameters=real_ids)
        _fuzz(stored, "stored-id", operation, headers, counts)


def _fuzz(
    strategy: Any, kind: str, operation: Any, headers: dict[str, str], counts: Counter[str]
) -> None:
    """Send a fixed number of generated cases to one operation and check every answer."""

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        counts["requests"] += 1
        counts[f"{kind} requests"] += 1
        counts[f"status {response.status_code}"] += 1
        counts[f"operation {operation.method.upper()} {operation.path}"] += 1

    call()
