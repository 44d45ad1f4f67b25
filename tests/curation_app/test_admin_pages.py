"""Admin pages people can use: settings help and errors, version diffs, the audit log, ranges."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import AuditEntry, PolicyConfigRow, utcnow
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, audit, review
from bandit.services.review import overflow
from bandit.services.review import queue as review_queue
from curation_app.settings_help import HELP
from tests.api_support import activate_config, snapshot
from tests.curation_app.test_console_review import rank_contexts
from tests.curation_app.test_settings import admin, form_of

__all__ = ["admin"]


def test_every_field_has_a_label_unit_and_help_and_parameters_follow_the_algorithm(
    admin: FlaskClient,
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    for name, shown in HELP.items():
        assert shown.label in page and shown.help.replace("'", "&#39;") in page, name
    assert "(seconds)" in page and "(share 0-1)" in page
    # Exploration parameters carry their algorithm, so only the selected one's are shown.
    assert re.search(r'class="field param-for-bag"[^>]*for="setting-bag_size"', page)
    assert re.search(
        r'class="field param-for-epsilon_greedy param-for-bag param-for-cover param-for-rnd"'
        r'[^>]*for="setting-epsilon"',
        page,
    )
    assert 'class="field" for="setting-review_sla_seconds"' in page


def test_every_setting_has_its_own_help_and_the_thresholds_say_what_they_mean_when_risk_controlled(
    admin: FlaskClient,
) -> None:
    assert [f.name for f in fields(PolicyConfig) if f.name not in HELP] == []
    page = admin.get("/settings").get_data(as_text=True)
    units = {
        "max_override_rate": "share in (0, 0.5]",
        "confidence_level": "level in [0.5, 0.999]",
        "audit_share": "share in [0, 0.5]",
        "risk_window": "reviewed slates, 50-1000000",
    }
    for name, unit in units.items():
        label = re.search(rf'for="setting-{name}"><span class="field-label">([^<]+)', page)
        assert label is not None and label.group(1).strip() == HELP[name].label, name
        assert f"({unit})" in page, name
    # Risk-controlled routing ignores auto_threshold and reads review_threshold on the
    # approval scale: the help must not promise otherwise.
    assert "Not used when risk-controlled" in page
    assert "(confidence 0-1; approval 0-1 when risk-controlled)" in page


def test_every_invalid_field_is_marked_at_once_and_nothing_is_saved(
    admin: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    before = snapshot(session_factory)
    bad = form_of(
        page,
        epsilon="1.5",
        bag_size="lots",
        vw_bits="40",
        review_sla_seconds="",
        review_threshold="0.99",  # above auto_threshold: a rule between two fields
    )
    response = admin.post("/settings", data=bad)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    marked = set(re.findall(r'class="field-error" data-field="([a-z_]+)"', html))
    assert marked == {"epsilon", "bag_size", "vw_bits", "review_sla_seconds", "review_threshold"}
    assert "5 fields to correct" in html
    assert snapshot(session_factory) == before


def test_any_two_versions_are_compared_and_activations_listed(
    admin: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    page = admin.get("/settings").get_data(as_text=True)
    admin.post("/settings", data=form_of(page, epsilon=0.2))
    admin.post("/settings", data=form_of(page, epsilon=0.3, auto_threshold=0.8))
    with session_factory() as db:
        ids = [r.id for r in db.query(PolicyConfigRow).order_by(PolicyConfigRow.version)]
    html = admin.get(f"/settings/history?a={ids[0]}&b={ids[2]}").get_data(as_text=True)
    diff = html[html.index('id="version-diff"') : html.index("Activations")]
    assert "epsilon" in diff and "<del>0.1</del>" in diff and "<ins>0.3</ins>" in diff
    assert "auto_threshold" in diff
    assert "same" in admin.get(f"/settings/history?a={ids[1]}&b={ids[1]}").get_data(as_text=True)
    activations = html[html.index('id="activations"') :]
    assert activations.count("saved and activated") == 2 and "default v3" in activations
    assert admin.get("/settings/history?a=999999").status_code == 400
    assert admin.get("/settings/history?a=x").status_code == 400


def test_the_audit_log_is_paged_and_filtered_by_date_curator_action_and_target(
    admin: FlaskClient, session_factory: sessionmaker[Session]
) -> None:
    now = utcnow()
    with session_factory() as db:
        for index in range(120):
            audit.record(db, "task.submit", "ana", None, f"task {index % 3}", now=now)
        audit.record(db, "task.skip", "ben", None, "task 7", now=now - timedelta(days=3))
        db.commit()
    first = admin.get("/settings/audit").get_data(as_text=True)
    assert "page 1 of 3" in first and 'rel="next"' in first
    last = admin.get("/settings/audit?page=3").get_data(as_text=True)
    assert last.count("<tr>") - 1 == 122 - 100  # 120 + ben + the admin's login
    only_ben = admin.get("/settings/audit?actor=ben").get_data(as_text=True)
    assert "1 entry" in only_ben and "task.skip" in only_ben
    today = now.date().isoformat()
    recent = admin.get(f"/settings/audit?from={today}&to={today}").get_data(as_text=True)
    assert "task.skip" not in recent.split('id="audit-entries"')[1]
    by_target = admin.get("/settings/audit?target=task+1&action=task.submit").get_data(as_text=True)
    assert "40 entries for <strong>task 1</strong>" in by_target
    assert 'href="/settings/audit?target=task+1"' in by_target  # each entry links its target
    bad = admin.get("/settings/audit?from=yesterday&page=0")
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "from: a date as YYYY-MM-DD" in text and "page: a whole number" in text
    with session_factory() as db:
        assert db.query(AuditEntry).count() == 122


def test_dashboard_ranges_pick_fitting_buckets_and_numbers_agree_with_the_queue(
    admin: FlaskClient,
) -> None:
    for key, bucket in (("1h", "5 min"), ("24h", "1 h"), ("7d", "6 h"), ("30d", "1 d")):
        page = admin.get(f"/dashboard?range={key}").get_data(as_text=True)
        assert f"one point per {bucket}" in page
        assert f"/dashboard/charts/queue.svg?range={key}" in page
        chart = admin.get(f"/dashboard/charts/decisions-by-route.svg?range={key}")
        assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    queue = admin.get("/").get_data(as_text=True)
    dash = admin.get("/dashboard").get_data(as_text=True)
    for queue_id, dash_id in (("count-open", "dash-open"), ("count-claimed", "dash-claimed")):
        shown = re.search(rf'id="{queue_id}">(\d+)<', queue)
        on_dash = re.search(rf'id="{dash_id}">(\d+)<', dash)
        assert shown and on_dash and shown.group(1) == on_dash.group(1)
    assert "last 24 hours" in admin.get("/dashboard?range=bogus").get_data(as_text=True)


def _counts(page: str) -> dict[str, int]:
    return {
        label: int(number)
        for label, number in re.findall(r"<dt>([^<]+)</dt><dd[^>]*>(\d+)</dd>", page)
    }


def test_the_dashboard_names_each_queue_count_as_the_queue_page_does(
    admin: FlaskClient, app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    # Capacity for one task within the SLA, then hold: one open task, three held, one claimed.
    activate_config(
        session_factory,
        routing_mode="review_before",
        curator_capacity_per_hour=1,
        review_sla_seconds=3600,
        overflow_policy="hold",
    )
    rank_contexts(app, session_factory, demo_catalog.customers[:4])
    with session_factory() as session:
        lead = accounts.find_curator(session, "lead")
        assert lead is not None and review.claim_next(session, lead.id) is not None
        session.commit()
        summary = review_queue.queue_summary(session, utcnow())
    assert (summary.open, summary.claimed, summary.held) == (3, 1, 3)

    queue, dash = (
        _counts(admin.get("/").get_data(as_text=True)),
        _counts(admin.get("/dashboard").get_data(as_text=True)),
    )

    assert {"Open", "Claimed", "Held", "Checks overdue", "Overflowed"} <= queue.keys() & dash.keys()
    for label in queue.keys() & dash.keys():
        assert dash[label] == queue[label], label
    assert dash["Waiting (open + claimed)"] == queue["Open"] + queue["Claimed"]


def test_under_hold_overdue_checks_of_delivered_slates_are_shown_apart_from_held_ones(
    admin: FlaskClient, app: Flask, session_factory: sessionmaker[Session], demo_catalog: Any
) -> None:
    # Review-after: both slates went out at rank, so past the SLA nothing is held.
    activate_config(
        session_factory,
        routing_mode="review_after",
        review_sla_seconds=3600,
        overflow_policy="hold",
    )
    rank_contexts(app, session_factory, demo_catalog.customers[:2])
    with session_factory() as session:
        report = overflow.upkeep(session, utcnow() + timedelta(seconds=3601))
        session.commit()
    assert (report.held, report.checks_overdue) == (0, 2)

    for page in ("/", "/dashboard"):
        counts = _counts(admin.get(page).get_data(as_text=True))
        assert (counts["Open"], counts["Held"], counts["Checks overdue"]) == (2, 0, 2), page
