"""Dashboards: the numbers behind the charts, and every chart served as an SVG picture."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import RiskThreshold, utcnow
from bandit.services import metrics
from curation_app.dashboard import (
    BOUND_LABEL,
    CHARTS,
    FAILED_LABEL,
    PROJECTED_LABEL,
    TARGET_LABEL,
    _promise,
)
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
    assert (
        "Mean customer reward per delivered position (swap-ins included), by policy version" in page
    )
    assert (
        "Mean customer reward per delivered position (swap-ins included), by customer segment"
        in page
    )
    chart = client.get("/dashboard/charts/reward-by-policy.svg").get_data(as_text=True)
    # matplotlib writes each text it draws as a comment beside its outline.
    assert "<!-- default v1 -->" in chart and "<!-- 0.60 (10 positions) -->" in chart
    assert "<!-- 0.33" not in chart


def _pass(version: int, target: float, **figures: Any) -> RiskThreshold:
    """A learn pass's stored threshold row (its audits measured none)."""
    row: dict[str, Any] = {"threshold": None, "n": 0, "overrides": 0, "rate": None, "bound": None}
    row |= {"projected_automation": None, "evidence": 1500, "confidence_level": 0.9}
    return RiskThreshold(
        model_version=version, target=target, details={"audits": {}}, **(row | figures)
    )


def test_the_promise_chart_draws_the_projection_failed_bounds_and_each_passs_target(
    session: Session,
) -> None:
    """Pass 2 tested nothing (no projection), pass 3's first test failed at 0.61, pass 4
    automated after the target was raised from 5% to 10%."""
    session.add_all(
        [
            _pass(2, 0.05),
            _pass(3, 0.05, n=229, overrides=126, rate=0.55, bound=0.61, projected_automation=0.0),
            _pass(
                4,
                0.10,
                threshold=0.8,
                n=300,
                overrides=9,
                rate=0.03,
                bound=0.08,
                projected_automation=0.4,
            ),
        ]
    )
    session.flush()
    axes = _promise(session).axes[0]
    lines = {line.get_label(): line for line in axes.lines}
    assert "automated share" not in lines  # the projection is not what happened

    def ys(label: str) -> list[float]:
        return [float(y) for y in np.asarray(lines[label].get_ydata())]

    projected = ys(PROJECTED_LABEL)
    assert math.isnan(projected[0]) and projected[1:] == [0.0, 0.4]
    bound, failed = ys(BOUND_LABEL), ys(FAILED_LABEL)
    assert math.isnan(bound[0]) and math.isnan(bound[1]) and bound[2] == 0.08
    assert math.isnan(failed[0]) and failed[1] == 0.61 and math.isnan(failed[2])
    target = lines[TARGET_LABEL]
    # A step centred on each pass at the target its bound was tested against.
    xs, ys_ = np.asarray(target.get_xdata()).tolist(), np.asarray(target.get_ydata()).tolist()
    steps = dict(zip(xs, ys_, strict=True))
    assert [steps[x] for x in (1.5, 2.5, 3.5)] == [0.05, 0.05, 0.10]
    assert set(axes.get_legend_handles_labels()[1]) >= {PROJECTED_LABEL, FAILED_LABEL}
