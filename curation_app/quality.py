"""Admins' curator quality page: double-review agreement, per-curator rates and shift drift."""

from __future__ import annotations

import io
import math
from datetime import datetime, timedelta

import numpy as np
from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from matplotlib.figure import Figure

from bandit.db.models import utcnow
from bandit.engine.quality import MIN_SHIFT_TASKS, SHIFT_GAP, CuratorStats
from bandit.services.curator_quality import quality_report
from curation_app.auth import admin_required
from curation_app.db import get_session

bp = Blueprint("quality", __name__, url_prefix="/quality")
WINDOWS_DAYS = (1, 7, 30, 365)
DEFAULT_DAYS = 30


def _days() -> int:
    raw = request.args.get("days", str(DEFAULT_DAYS))
    if not raw.isdigit() or int(raw) not in WINDOWS_DAYS:
        allowed = ", ".join(str(d) for d in WINDOWS_DAYS)
        abort(400, description=f"days must be one of {allowed}; got {raw[:20]!r}")
    return int(raw)


def _since() -> datetime:
    return utcnow() - timedelta(days=_days())


def percent(value: float) -> str:
    """A share as a whole percentage, or a dash when it is undefined."""
    return "–" if math.isnan(value) else f"{value * 100:.0f}%"


def number(value: float, digits: int = 2) -> str:
    """A number rounded for the table, or a dash when it is undefined."""
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


@bp.get("")
@admin_required
def index() -> ResponseReturnValue:
    """Agreement overall and per curator pair, and every curator's rates and drift."""
    days = _days()
    report = quality_report(get_session(), _since())
    return render_template(
        "quality.html",
        report=report,
        days=days,
        windows=WINDOWS_DAYS,
        percent=percent,
        number=number,
        shift_gap_hours=f"{SHIFT_GAP.total_seconds() / 3600:g}",
        min_shift_tasks=MIN_SHIFT_TASKS,
    )


def drift_figure(curators: list[CuratorStats]) -> Figure:
    """Per curator, acceptance and seconds per task in the first vs last third of their shifts."""
    # Figure, not pyplot: pyplot keeps global state that threads of one server would share.
    figure = Figure(figsize=(7.2, 3.0), dpi=100, layout="constrained")
    acceptance, seconds = figure.subplots(1, 2)
    if not curators:
        for axes in (acceptance, seconds):
            axes.text(
                0.5, 0.5, "no reviews yet", ha="center", va="center", transform=axes.transAxes
            )
        return figure
    names = [c.curator for c in curators]
    x = np.arange(len(names))
    width = 0.38
    pairs = (
        (acceptance, "acceptance_first_third", "acceptance_last_third", "acceptance rate"),
        (seconds, "seconds_first_third", "seconds_last_third", "median s per task"),
    )
    for axes, first, last, label in pairs:
        axes.bar(
            x - width / 2,
            [getattr(c, first) for c in curators],
            width,
            label="first third of shifts",
            color="#9db4f0",
        )
        axes.bar(
            x + width / 2,
            [getattr(c, last) for c in curators],
            width,
            label="last third of shifts",
            color="#2f5bd3",
        )
        axes.set_xticks(x, names, rotation=30, fontsize="small")
        axes.set_ylabel(label)
    acceptance.set_ylim(0, 1.05)
    acceptance.legend(loc="lower left", fontsize="small")
    return figure


@bp.get("/drift.svg")
@admin_required
def drift_chart() -> ResponseReturnValue:
    """The shift-drift chart as an SVG image."""
    report = quality_report(get_session(), _since())
    buffer = io.StringIO()
    drift_figure(report.curators).savefig(buffer, format="svg")
    return Response(buffer.getvalue(), mimetype="image/svg+xml")
