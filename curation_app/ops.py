"""Operations endpoints: /healthz (alive), /readyz (can serve), /metrics (Prometheus text).

Under gunicorn, prometheus_client's multiprocess mode sums the workers' counters and
histograms from files in PROMETHEUS_MULTIPROC_DIR; the loop's gauges (queue, learner lag,
model, override bound) are read from the database when /metrics is scraped, so every worker
answers the same numbers.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import utcnow
from bandit.services import operations
from curation_app.db import get_runtime, get_session
from curation_app.security import csrf

bp = Blueprint("ops", __name__)
csrf.exempt(bp)

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Probes and scrapes are not traffic: timing them would swamp the latency histograms.
UNTIMED_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "ops.metrics", "static"})


class Metrics:
    """The process's counters and histograms, and the registry /metrics exposes."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(METRICS_DIR_ENV))
        # In multiprocess mode the values live in files; the exposition registry reads them.
        own = None if self.multiprocess else CollectorRegistry()
        self.own_registry = own
        self.request_seconds = Histogram(
            "hitl_http_request_duration_seconds",
            "Request latency by endpoint.",
            ("endpoint", "method"),
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.requests = Counter(
            "hitl_http_requests",
            "Requests by endpoint and status code.",
            ("endpoint", "method", "status"),
            registry=own,
        )
        self.decisions = Counter(
            "hitl_decisions", "Decisions made, by route.", ("route", "api"), registry=own
        )
        self.model_served = Gauge(
            "hitl_model_version_served",
            "Model version this process served its last decision with.",
            multiprocess_mode="livemax",
            registry=own,
        )

    def exposition(self, sessions: sessionmaker[Session]) -> bytes:
        """The Prometheus text of every worker's metrics plus the loop's gauges."""
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            assert self.own_registry is not None
            registry = self.own_registry
        loop = CollectorRegistry()
        loop.register(LoopCollector(sessions))
        return generate_latest(registry) + generate_latest(loop)

    def observe_decision(self, route: str, api: str, model_version: int) -> None:
        """Count a new decision and remember the model version it was made with."""
        self.decisions.labels(route=route, api=api).inc()
        self.model_served.set(model_version)


class LoopCollector(Collector):
    """The loop's gauges, read from the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._sessions() as session:
            gauges = operations.loop_gauges(session, utcnow())
        yield _gauge("hitl_queue_depth", "Review tasks open or claimed.", gauges.queue_depth)
        yield _gauge(
            "hitl_queue_oldest_wait_seconds",
            "Age of the oldest open or claimed review task.",
            gauges.oldest_wait_seconds,
        )
        lag = GaugeMetricFamily(
            "hitl_learner_lag_seconds",
            "Age of the oldest signal the learner has not learned yet.",
            labels=("signal",),
        )
        lag.add_metric(("verdict",), gauges.verdict_lag_seconds)
        lag.add_metric(("reward",), gauges.reward_lag_seconds)
        yield lag
        yield _gauge(
            "hitl_model_version_latest",
            "Newest model version the learner saved.",
            gauges.latest_model_version,
        )
        yield from _promise_gauges(gauges.promise)
        level = f"{gauges.promise.confidence_level:.0%}"
        yield _gauge(
            "hitl_review_after_override_bound",
            f"{level} upper bound on the share of slates curators overturn when verifying "
            "after output (review-after tasks; not audits of automatic slates).",
            gauges.review_after_bound,
        )
        yield _gauge(
            "hitl_review_after_checks",
            "Review-after checks behind hitl_review_after_override_bound.",
            gauges.review_after_checks,
        )


def _promise_gauges(promise: operations.PromiseGauges) -> Iterator[GaugeMetricFamily]:
    level = f"{promise.confidence_level:.0%}"
    yield _gauge(
        "hitl_risk_controlled",
        "1 when the active routing mode is risk_controlled (the promise below is kept).",
        float(promise.risk_controlled),
    )
    yield _gauge(
        "hitl_promise_target",
        "The team's max_override_rate: the most auto-delivered slates curators may change.",
        promise.target,
    )
    yield _gauge(
        "hitl_auto_threshold",
        "Approval threshold in force for automatic delivery (NaN: nothing is automated).",
        math.nan if promise.threshold is None else promise.threshold,
    )
    yield _gauge(
        "hitl_auto_override_bound",
        f"{level} upper bound on the override rate of automatically delivered slates, as the "
        "served learn pass chose the threshold (1 when no threshold was tested).",
        promise.bound,
    )
    yield _gauge(
        "hitl_auto_override_evidence",
        "Reviewed slates at or above the tested threshold behind hitl_auto_override_bound.",
        promise.bound_slates,
    )
    yield _gauge(
        "hitl_auto_override_effective_sample",
        "Kish's effective sample of that evidence (audits weighted by 1 / their share).",
        promise.bound_effective_sample,
    )
    yield _gauge("hitl_audits", "Audits of auto-eligible slates in the window.", promise.audits)
    audited = GaugeMetricFamily(
        "hitl_audited_override_rate",
        f"Override rate of audited auto-eligible slates with its two-sided {level} interval "
        "(rate NaN with no audit).",
        labels=("estimate",),
    )
    audited.add_metric(("rate",), math.nan if promise.audit_rate is None else promise.audit_rate)
    audited.add_metric(("low",), promise.audit_low)
    audited.add_metric(("high",), promise.audit_high)
    yield audited


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def metrics_of(app: Flask) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = app.extensions["hitl.metrics"]
    return metrics


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is alive and answering (no dependency is checked)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready when the database answers, the schema is at head and a model is loaded."""
    state = operations.readiness(get_session(), get_runtime())
    if not state.ready:
        return jsonify(status="not ready", reason=state.problem, detail=state.detail), 503
    return jsonify(status="ready", model_version=state.model_version)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Prometheus text exposition."""
    sessions = current_app.extensions["hitl.session_factory"]
    body = metrics_of(current_app).exposition(sessions)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Any) -> Any:
    endpoint = request.endpoint or "unmatched"
    started = g.get("metrics_started")
    if endpoint in UNTIMED_ENDPOINTS or started is None:
        return response
    metrics = metrics_of(current_app)
    metrics.request_seconds.labels(endpoint, request.method).observe(time.perf_counter() - started)
    metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
    return response


def init_app(app: Flask) -> None:
    """Create the process's metrics and time every request."""
    app.extensions["hitl.metrics"] = Metrics()
    app.before_request(_start_timer)
    app.after_request(_observe)
