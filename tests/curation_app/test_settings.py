"""The admins' settings page and audit log; roles enforced on every admin route."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import AuditEntry, PolicyConfigRow
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs
from tests.api_support import snapshot
from tests.curation_app.test_console import csrf_token, login

ADMIN_PASSWORD = "admin-long-password"


@pytest.fixture
def admin(client: FlaskClient, session_factory: sessionmaker[Session]) -> FlaskClient:
    """The test client, signed in as an admin."""
    with session_factory() as session:
        accounts.add_curator(session, "lead", ADMIN_PASSWORD, role="admin")
        configs.active_config(session)
        session.commit()
    assert login(client, "lead", ADMIN_PASSWORD).status_code == 302
    return client


def form_of(page: str, **changes: Any) -> dict[str, str]:
    """The settings form as the page filled it, with some fields changed."""
    config = PolicyConfig()
    data = {
        name: ("on" if value else "") if isinstance(value, bool) else str(value)
        for name, value in config.to_document().items()
    }
    data = {k: v for k, v in data.items() if v != ""}
    data.update({"csrf_token": csrf_token(page), "activate": "on"})
    data.update({k: str(v) for k, v in changes.items()})
    return data


def test_admin_saves_a_new_version_with_who_and_a_diff(
    admin: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    assert "Policy settings" in page and "default version 1" in page
    response = admin.post("/settings", data=form_of(page, auto_threshold=0.8, epsilon=0.2))
    assert response.status_code == 302
    after = admin.get("/settings").get_data(as_text=True)
    assert "Saved default version 2 and activated." in after
    assert "default version 2" in after
    assert "auto_threshold</span>: <del>0.9</del> → <ins>0.8</ins>" in after
    assert "epsilon</span>: <del>0.1</del> → <ins>0.2</ins>" in after
    with session_factory() as session:
        row, config = configs.active_config(session)
        assert (row.version, row.created_by, config.auto_threshold) == (2, "lead", 0.8)
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "config.save")).one()
    assert entry.actor == "lead" and entry.details["changes"]["epsilon"] == [0.1, 0.2]


def test_an_older_version_can_be_activated_again(
    admin: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    admin.post("/settings", data=form_of(page, routing_mode="review_after"))
    with session_factory() as session:
        first = session.scalars(select(PolicyConfigRow).where(PolicyConfigRow.version == 1)).one()
    page = admin.get("/settings").get_data(as_text=True)
    response = admin.post(
        f"/settings/configs/{first.id}/activate", data={"csrf_token": csrf_token(page)}
    )
    assert response.status_code == 302
    assert "default version 1 is now active" in admin.get("/settings").get_data(as_text=True)
    with session_factory() as session:
        row, config = configs.active_config(session)
    assert row.version == 1 and config.routing_mode == "partial"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"auto_threshold": "1.5"}, "auto_threshold", "must be in [0.0, 1.0]"),
        ({"epsilon": "lots"}, "epsilon", "must be a number"),
        ({"review_sla_seconds": "2.5"}, "review_sla_seconds", "must be a whole number"),
        ({"review_threshold": "0.95"}, "review_threshold", "must not exceed auto_threshold"),
        ({"routing_mode": "sometimes"}, "routing_mode", "must be one of"),
        ({"review_lease_seconds": "7200", "review_sla_seconds": "3600"}, "review_lease_seconds",
         "must not exceed review_sla_seconds"),
        ({"epsilon": ""}, "epsilon", "is required"),
        ({"double_review_share": "nan"}, "double_review_share", "must be a finite number"),
    ],
)  # fmt: skip
def test_invalid_settings_are_refused_by_field_and_store_nothing(
    admin: FlaskClient, session_factory: sessionmaker[Session], changes: dict[str, str],
    field: str, message: str,
) -> None:  # fmt: skip
    page = admin.get("/settings").get_data(as_text=True)
    before = snapshot(session_factory)
    response = admin.post("/settings", data=form_of(page, **changes))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Not saved: correct the fields marked below." in html
    assert f'data-field="{field}"' in html
    assert message in html.replace("&#39;", "'")
    assert snapshot(session_factory) == before


ADMIN_ROUTES = [
    ("get", "/settings"),
    ("post", "/settings"),
    ("post", "/settings/configs/1/activate"),
    ("get", "/settings/audit"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_curators_are_refused_from_every_admin_route(
    client: FlaskClient, curator_account: tuple[str, str], session_factory: sessionmaker[Session],
    method: str, path: str,
) -> None:  # fmt: skip
    login(client, *curator_account)
    queue = client.get("/").get_data(as_text=True)
    before = snapshot(session_factory)
    if method == "get":
        response = client.get(path)
    else:
        response = client.post(path, data=form_of(queue, epsilon=0.5))
    assert response.status_code == 403
    assert "for admins only" in response.get_data(as_text=True)
    assert snapshot(session_factory) == before
    assert "Settings" not in queue  # the nav hides the link from curators too


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_need_a_login(client: FlaskClient, method: str, path: str) -> None:
    response = client.get(path) if method == "get" else client.post(path)
    assert response.status_code in (302, 400)  # a POST without CSRF token fails first


def test_a_forged_csrf_token_on_settings_changes_nothing(
    admin: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    before = snapshot(session_factory)
    data = form_of(page, epsilon=0.3)
    data["csrf_token"] = "forged." + data["csrf_token"][7:]
    response = admin.post("/settings", data=data)
    assert response.status_code == 400 and "reload the page" in response.get_data(as_text=True)
    assert snapshot(session_factory) == before


def test_the_audit_log_shows_logins_and_config_changes_escaped(
    admin: FlaskClient, client: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    admin.post("/settings", data=form_of(page, name="<b>spring</b>"))
    log = admin.get("/settings/audit").get_data(as_text=True)
    assert "login" in log and "config.save" in log
    assert "&lt;b&gt;spring&lt;/b&gt; v1" in log and "<b>spring</b>" not in log
    only_saves = admin.get("/settings/audit?action=config.save").get_data(as_text=True)
    assert '<td class="mono">config.save</td>' in only_saves
    assert '<td class="mono">login</td>' not in only_saves


class _FormValues(HTMLParser):
    """What a browser would post for the settings form as the page rendered it."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name") or ""
        if tag == "input" and name:
            if a.get("type") != "checkbox":
                self.values[name] = a.get("value") or ""
            elif "checked" in a:
                self.values[name] = "on"
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def test_saving_the_untouched_page_stores_the_same_config_and_records_no_change(
    admin: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    odd = PolicyConfig(
        learning_rate=0.1234567, default_reward=-0.00012345678, epsilon=0.1 + 0.2,
        uncertainty_temperature=5e-324, squarecb_gamma_scale=123456.78901234567,
    )  # fmt: skip
    with session_factory() as session:
        configs.save_config(session, odd, "t", activate=True)
        session.commit()
    form = _FormValues()
    form.feed(admin.get("/settings").get_data(as_text=True))
    assert admin.post("/settings", data=form.values).status_code == 302
    with session_factory() as session:
        _, active = configs.active_config(session)
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "config.save")).one()
    assert active.to_document() == odd.to_document()
    assert entry.details["changes"] == {}
