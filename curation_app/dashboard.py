"""Dashboards: charts of the loop drawn on the server by matplotlib as SVG, no front-end build."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required
from matplotlib import dates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sqlalchemy.orm import Session

from bandit.db.models import utcnow
from bandit.engine.vocabulary import Route
from bandit.services import metrics, trust_status
from bandit.services.review import queue as review_queue
from curation_app import route_blinding
from curation_app.auth import ADMIN
from curation_app.db import get_session
from curation_app.review_forms import describe_age

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
# Each range with a bucket that gives a readable number of points (12 to 30).
RANGES: dict[str, tuple[str, timedelta, timedelta]] = {
    "1h": ("last hour", timedelta(hours=1), timedelta(minutes=5)),
    "24h": ("last 24 hours", timedelta(hours=24), timedelta(hours=1)),
    "7d": ("last 7 days", timedelta(days=7), timedelta(hours=6)),
    "30d": ("last 30 days", timedelta(days=30), timedelta(days=1)),
}
DEFAULT_RANGE = "24h"
# Older links said ?hours=N; they keep working, read as the nearest range.
_HOURS_TO_RANGE = {"1": "1h", "24": "24h", "72": "7d", "168": "7d", "720": "30d"}


def _figure() -> tuple[Figure, Axes]:
    # Figure, not pyplot: pyplot keeps global state that threads of one server would share.
    figure = Figure(figsize=(6.4, 3.0), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def _lines(series: metrics.HourlySeries, ylabel: str, share: bool = False) -> Figure:
    figure, axes = _figure()
    hours = dates.date2num(series.hours)
    axes.xaxis_date()
    if len(hours) > 1:
        # The whole window, even where a line has no data (NaN) to scale the axis by.
        axes.set_xlim(float(hours[0]), float(hours[-1]))
    for name, values in series.lines.items():
        axes.plot(hours, values, marker="o", markersize=3, label=name.replace("_", " "))
    axes.set_ylabel(ylabel)
    if share:
        axes.set_ylim(0, 1.05)
    axes.legend(loc="upper left", fontsize="small")
    axes.tick_params(axis="x", labelrotation=30, labelsize="small")
    return figure


def _count_bars(series: metrics.HourlySeries, ylabel: str) -> Figure:
    """Counts per bucket as stacked bars, one colour per line."""
    figure, axes = _figure()
    starts = dates.date2num(series.hours)
    axes.xaxis_date()
    width = float(starts[1] - starts[0]) * 0.85 if len(starts) > 1 else 0.03
    bottom = [0.0] * len(starts)
    for name, values in series.lines.items():
        axes.bar(
            starts, values, width=width, bottom=bottom, align="edge", label=name.replace("_", " ")
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_ylabel(ylabel)
    axes.legend(loc="upper left", fontsize="small")
    axes.tick_params(axis="x", labelrotation=30, labelsize="small")
    return figure


def _bars(
    values: dict[str, float], ylabel: str, share: bool = False, notes: list[str] | None = None
) -> Figure:
    figure, axes = _figure()
    if values:
        bars = axes.bar(list(values), list(values.values()), color="#2f5bd3")
        if notes is not None:
            axes.bar_label(bars, labels=notes, fontsize="small")
            axes.margins(y=0.15)  # room above the tallest bar for its note
    else:
        axes.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel(ylabel)
    if share:
        axes.set_ylim(0, 1.05)
    axes.tick_params(axis="x", labelrotation=30, labelsize="small")
    return figure


def _reward_bars(session: Session, key: str) -> Figure:
    """Mean customer reward per delivered position by `key` (every position the customer got,
    curators' swap-ins included), each bar with its mean and n."""
    means = metrics.mean_reward_by(session, key)
    return _bars(
        {label: m.mean for label, m in means.items()},
        "mean customer reward per position",
        notes=[f"{m.mean:.2f} ({m.positions} positions)" for m in means.values()],
    )


PROJECTED_LABEL = "projected automated share (next routing)"
BOUND_LABEL = "bound on auto override rate"
FAILED_LABEL = "bound of the failed first test (nothing automated)"
TARGET_LABEL = "target of each pass"


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _promise(session: Session) -> Figure:
    """The bootstrapping curve of the promise, one point per learn pass."""
    figure, axes = _figure()
    rows = trust_status.threshold_history(session)
    if not rows:
        axes.text(0.5, 0.5, "no learn pass yet", ha="center", va="center", transform=axes.transAxes)
        return figure
    versions = [r.model_version for r in rows]
    audits = [(r.details or {}).get("audits") or {} for r in rows]
    rate = [_or_nan(a.get("rate")) for a in audits]
    low = [_or_nan(a.get("low") if a.get("n") else None) for a in audits]
    high = [_or_nan(a.get("high") if a.get("n") else None) for a in audits]
    # A projection (the window re-scored at the new threshold), not what routing did: the
    # automation-rate chart shows that. None (not computed) is a gap, not 0.
    axes.plot(versions, [_or_nan(r.projected_automation) for r in rows], marker="o",
              markersize=3, label=PROJECTED_LABEL)  # fmt: skip
    axes.plot(versions, [_or_nan(r.bound) if r.threshold is not None else math.nan for r in rows],
              marker=".", label=BOUND_LABEL)  # fmt: skip
    # The first test failed (nothing automated): its bound, apart, so that a pass failing on
    # plenty of evidence is not drawn as one without any.
    failed = [_or_nan(r.bound) if r.threshold is None else math.nan for r in rows]
    if not all(math.isnan(bound) for bound in failed):
        axes.plot(versions, failed, linestyle="none", marker="x", color="#b00020",
                  label=FAILED_LABEL)  # fmt: skip
    axes.plot(versions, rate, marker="s", markersize=3, label="audited override rate")
    axes.fill_between(versions, low, high, alpha=0.2, label="its interval")
    # Each pass's bound against the target it was tested for: a step per pass, centred on it.
    edges = [versions[0] - 0.5, *((a + b) / 2 for a, b in itertools.pairwise(versions)),
             versions[-1] + 0.5]  # fmt: skip
    targets = [r.target for r in rows]
    axes.step(edges, [*targets, targets[-1]], where="post", color="#b00020", linestyle="--",
              label=TARGET_LABEL)  # fmt: skip
    axes.set_xlabel("model version (learn pass)")
    axes.set_ylim(0, 1.05)
    axes.legend(loc="upper left", fontsize="x-small")
    return figure


def _reliability(session: Session) -> Figure:
    """Reliability diagram of the approval model on recent held-out verdicts."""
    figure, axes = _figure()
    status = trust_status.promise_status(session)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    if status.reliability:
        axes.plot(
            [r["predicted"] for r in status.reliability],
            [r["observed"] for r in status.reliability],
            marker="o",
            label=f"approval model (ECE {status.ece:.3f}, Brier {status.brier:.3f})"
            if status.ece is not None and status.brier is not None
            else "approval model",
        )
    else:
        axes.text(0.5, 0.5, "no held-out verdicts yet", ha="center", va="center",
                  transform=axes.transAxes)  # fmt: skip
    axes.set(xlabel="predicted P(curator keeps the item)", ylabel="observed share kept")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.05)
    axes.legend(loc="upper left", fontsize="small")
    return figure


def range_key() -> str:
    """The chosen range ('1h', '24h', '7d' or '30d'; 24h unless the request names one)."""
    chosen = request.args.get("range", "")
    if chosen in RANGES:
        return chosen
    return _HOURS_TO_RANGE.get(request.args.get("hours", ""), DEFAULT_RANGE)


def _window(session: Session) -> tuple[datetime, datetime, timedelta]:
    _, span, bucket = RANGES[range_key()]
    now = utcnow()
    return now - span, now, bucket


CHARTS: dict[str, tuple[str, Callable[[Session], Figure]]] = {
    "decisions-by-route": (
        "Decisions by route",
        lambda s: _count_bars(metrics.decisions_by_route(s, *_window(s)), "decisions per bucket"),
    ),
    "automation-rate": (
        "Automation rate over time (the bootstrapping curve)",
        lambda s: _lines(
            metrics.automation_rate(metrics.decisions_by_route(s, *_window(s))),
            "share automated",
            share=True,
        ),
    ),
    "promise": (
        "The promise per learn pass: projected automated share, override bound against its "
        "target, audited override rate",
        _promise,
    ),
    "verdict-rates": (
        "Curator acceptance, swap and removal rates",
        lambda s: _lines(metrics.verdict_rates(s, *_window(s)), "share of positions", True),
    ),
    "queue": (
        "Queue: tasks waiting (open or held) and the oldest wait",
        lambda s: _lines(metrics.queue_history(s, *_window(s)), "tasks / hours"),
    ),
    "reward-by-policy": (
        "Mean customer reward per delivered position (swap-ins included), by policy version",
        lambda s: _reward_bars(s, "policy"),
    ),
    "coverage": (
        "Catalog coverage: share of items ever proposed, by category",
        lambda s: _bars(metrics.catalog_coverage(s), "share proposed", share=True),
    ),
    "reward-by-segment": (
        "Mean customer reward per delivered position (swap-ins included), by customer segment",
        lambda s: _reward_bars(s, "segment"),
    ),
}


@bp.get("")
@login_required
def index() -> ResponseReturnValue:
    """Every chart, and the queue's numbers now."""
    session = get_session()
    summary = review_queue.queue_summary(session, utcnow())
    since, now, bucket = _window(session)
    routes = metrics.decisions_by_route(session, since, now, bucket)
    decided = sum(sum(line) for line in routes.lines.values())
    automated = sum(routes.lines.get(Route.AUTO, []))
    return render_template(
        "dashboard.html",
        charts=[(slug, title) for slug, (title, _) in CHARTS.items()],
        range_key=range_key(),
        ranges=[(key, label) for key, (label, _, _) in RANGES.items()],
        bucket=describe_age(bucket.total_seconds()),
        decided=int(decided),
        automated_share=automated / decided if decided else None,
        summary=summary,
        overdue_merged=route_blinding.overdue_counts_merged(session, current_user.role == ADMIN),
        oldest_hours=None
        if summary.oldest_wait_seconds is None
        else math.floor(summary.oldest_wait_seconds / 360) / 10,
    )


@bp.get("/reliability.png")
@login_required
def reliability() -> ResponseReturnValue:
    """The approval model's reliability diagram as a PNG."""
    buffer = io.BytesIO()
    _reliability(get_session()).savefig(buffer, format="png")
    return Response(buffer.getvalue(), mimetype="image/png")


@bp.get("/charts/<slug>.svg")
@login_required
def chart(slug: str) -> ResponseReturnValue:
    """One chart as an SVG image."""
    if slug not in CHARTS:
        abort(404, description=f"no chart named {slug!r}")
    figure = CHARTS[slug][1](get_session())
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return Response(buffer.getvalue(), mimetype="image/svg+xml")
