"""Dashboards: the numbers behind the charts, and every chart served as an SVG picture."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import utcnow
from bandit.services import metrics
from curation_app.dashboard import CHARTS
from tests.api_support import activate_config, ranked, reward_url
from tests.curation_app.test_console import login


def test_metrics_count_routes_automation_coverage_and_rewards(
    client: FlaskClient, auth_headers: dict[str, str], session_factory: sessionmaker[Session],
    demo_catalog: Any,
) -> None:  # fmt: skip
    activate_config(session_factory, routing_mode="review_after")
    events = [ranked(client, auth_headers, c) for c in demo_catalog.customers[:3]]
    activate_config(session_factory, auto_threshold=0.0, review_threshold=0.0)
    events += [ranked(client, auth_headers, c) for c in demo_catalog.customers[3:4]]
    for event, value in zip(events[:2], (1.0, 0.0), strict=True):
        assert client.post(reward_url(event["event_id"]), json={"value": value},
                           headers=auth_headers).status_code == 202  # fmt: skip
    now = utcnow()
    with session_factory() as session:
        by_route = metrics.decisions_by_route(session, now.replace(hour=0, minute=0), now)
        rate = metrics.automation_rate(by_route)
        coverage = metrics.catalog_coverage(session)
        by_policy = metrics.mean_reward_by(session, "policy")
        by_segment = metrics.mean_reward_by(session, "segment")
    assert sum(by_route.lines["review_after"]) == 3 and sum(by_route.lines["auto"]) == 1
    assert rate.lines["automated share"][-1] == 0.25
    proposed = {p["item_id"] for e in events for p in e["slate"]}
    assert sum(coverage.values()) > 0 and all(0 <= v <= 1 for v in coverage.values())
    expected_share = len(proposed) / len(demo_catalog.item_ids)
    assert abs(sum(coverage.values()) / len(coverage) - expected_share) < 0.5
    # Each event's reward covers its whole delivered slate: 0.5 per position either way.
    assert {k: v.mean for k, v in by_policy.items()} == {"default v1": 0.5}
    segments = {str(c.get("segment")) for c in demo_catalog.customers[:2]}
    assert set(by_segment) == segments


def test_every_chart_is_an_svg_and_the_page_shows_them(
    client: FlaskClient, curator_account: tuple[str, str], demo_catalog: Any
) -> None:
    assert client.get("/dashboard").status_code == 302  # login first
    login(client, *curator_account)
    page = client.get("/dashboard?hours=72").get_data(as_text=True)
    for slug, (title, _) in CHARTS.items():
        assert title.replace("'", "&#39;") in page
        assert f"/dashboard/charts/{slug}.svg?range=7d" in page
        chart = client.get(f"/dashboard/charts/{slug}.svg")
        assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
        assert "<svg" in chart.get_data(as_text=True)
    assert client.get("/dashboard/charts/nope.svg").status_code == 404


def test_the_automation_curve_leaves_empty_buckets_blank_and_counts_audits_as_reviewed() -> None:
    """Reference by hand: bucket 1 has 3 auto of 4 (one an audit, routed review-after),
    bucket 2 none at all (NaN, not 0%), bucket 3 no auto of 2 (0%)."""
    import math
    from datetime import UTC, datetime, timedelta

    from bandit.engine.vocabulary import Route
    from bandit.services.metrics import HourlySeries, automation_rate

    start = datetime(2026, 1, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=i) for i in range(3)]
    series = HourlySeries(
        hours,
        {
            Route.AUTO: [3.0, 0.0, 0.0],
            Route.REVIEW_AFTER: [1.0, 0.0, 1.0],
            Route.REVIEW_BEFORE: [0.0, 0.0, 1.0],
        },
    )
    share = automation_rate(series).lines["automated share"]
    assert share[0] == 0.75 and math.isnan(share[1]) and share[2] == 0.0


def test_the_reward_charts_show_the_mean_per_delivered_position_and_say_so(
    client: FlaskClient, auth_headers: dict[str, str], curator_account: tuple[str, str],
    session_factory: sessionmaker[Session], demo_catalog: Any,
) -> None:  # fmt: skip
    """Event X rewards its five items 1, 0, 0, 0, 0; event Y the whole event 1.0, which the
    learner applies to its five positions: the bar reads 0.60 (6 / 10), not 0.33 (2 / 6)."""
    activate_config(session_factory, routing_mode="review_after", slate_size=5)
    x, y = (ranked(client, auth_headers, c) for c in demo_catalog.customers[:2])
    assert len(x["slate"]) == 5
    for position, entry in enumerate(x["slate"]):
        body = {"value": 1.0 if position == 0 else 0.0, "item_id": entry["item_id"]}
        assert client.post(reward_url(x["event_id"]), json=body,
                           headers=auth_headers).status_code == 202  # fmt: skip
    assert client.post(reward_url(y["event_id"]), json={"value": 1.0},
                       headers=auth_headers).status_code == 202  # fmt: skip
    login(client, *curator_account)
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Mean customer reward per delivered position, by policy version" in page
    assert "Mean customer reward per delivered position, by customer segment" in page
    chart = client.get("/dashboard/charts/reward-by-policy.svg").get_data(as_text=True)
    # matplotlib writes each text it draws as a comment beside its outline.
    assert "<!-- default v1 -->" in chart and "<!-- 0.60 (10 positions) -->" in chart
    assert "<!-- 0.33" not in chart
