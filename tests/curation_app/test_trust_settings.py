"""The promise's settings at their edges: refused by name, nothing stored, on the settings
form and in `hitl policy set` files (there is no JSON API for configs); the edges accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import PolicyConfigRow
from curation_app.cli import main
from tests.api_support import activate_config, snapshot
from tests.curation_app.test_settings import admin, form_of  # noqa: F401

REFUSED = [
    ("max_override_rate", "0"),
    ("max_override_rate", "-0.01"),
    ("max_override_rate", "0.501"),
    ("max_override_rate", "nan"),
    ("confidence_level", "0.49"),
    ("confidence_level", "0.9991"),
    ("confidence_level", "1"),
    ("audit_share", "-0.01"),
    ("audit_share", "0.51"),
    ("audit_share", "inf"),
]
ACCEPTED = [
    ("max_override_rate", "0.5"),
    ("max_override_rate", "0.001"),
    ("confidence_level", "0.5"),
    ("confidence_level", "0.999"),
    ("audit_share", "0"),
    ("audit_share", "0.5"),
]


@pytest.mark.parametrize(("field", "value"), REFUSED)
def test_the_form_refuses_a_promise_outside_its_range_by_name(
    admin: FlaskClient,  # noqa: F811
    session_factory: sessionmaker[Session],
    field: str,
    value: str,
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    before = snapshot(session_factory)
    response = admin.post("/settings", data=form_of(page, **{field: value}))
    assert response.status_code == 400
    assert f'data-field="{field}"' in response.get_data(as_text=True)
    assert snapshot(session_factory) == before


@pytest.mark.parametrize(("field", "value"), ACCEPTED)
def test_the_form_accepts_the_edges_of_the_range(
    admin: FlaskClient,  # noqa: F811
    session_factory: sessionmaker[Session],
    field: str,
    value: str,
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    response = admin.post("/settings", data=form_of(page, **{field: value}))
    assert response.status_code == 302
    with session_factory() as session:
        rows = session.scalars(select(PolicyConfigRow).order_by(PolicyConfigRow.id)).all()
    assert rows[-1].document[field] == pytest.approx(float(value))


@pytest.mark.parametrize(("field", "value"), REFUSED)
def test_a_policy_file_outside_the_range_is_refused_by_name(
    database_url: str,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    field: str,
    value: str,
) -> None:
    activate_config(session_factory, name="live")
    before = snapshot(session_factory)
    path = tmp_path / "policy.toml"
    toml_value = {"nan": "nan", "inf": "inf"}.get(value, value)
    path.write_text(f'name = "live"\nrouting_mode = "risk_controlled"\n{field} = {toml_value}\n')
    result = CliRunner().invoke(main, ["policy", "set", str(path), "--database-url", database_url])
    assert result.exit_code == 1, result.output
    assert f"{field}:" in result.output
    assert snapshot(session_factory) == before


def test_a_policy_file_whose_drift_guard_is_not_a_boolean_is_refused_by_name(
    database_url: str, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    activate_config(session_factory, name="live")
    before = snapshot(session_factory)
    path = tmp_path / "policy.toml"
    path.write_text('name = "live"\nrouting_mode = "risk_controlled"\ndrift_guard = "yes"\n')
    result = CliRunner().invoke(main, ["policy", "set", str(path), "--database-url", database_url])
    assert result.exit_code == 1, result.output
    assert "drift_guard: must be true or false" in result.output
    assert snapshot(session_factory) == before


def test_the_admin_turns_the_drift_guard_on(
    admin: FlaskClient,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    assert 'name="drift_guard"' in page and "Drift guard" in page
    response = admin.post("/settings", data=form_of(page, drift_guard="on"))
    assert response.status_code == 302
    with session_factory() as session:
        rows = session.scalars(select(PolicyConfigRow).order_by(PolicyConfigRow.id)).all()
    assert rows[-1].document["drift_guard"] is True
