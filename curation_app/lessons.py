"""The console page "What your reviews taught the model", per model version and curator."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import login_required

from bandit.db.models import ReviewLesson
from bandit.services import lessons
from curation_app.auth import current_curator_id
from curation_app.db import get_session

bp = Blueprint("lessons", __name__, url_prefix="/lessons")
VERDICT_WORDS = {
    "kept": "keeps",
    "removed": "removals",
    "swapped": "swaps out",
    lessons.SWAPPED_IN: "swaps in",
}

MEASURE_NOTES = {
    lessons.WITHOUT_ALL_CURATORS: (
        "all curators' reviews together: too many curators changed the proposals in this "
        f"learn pass to measure each alone (at most {lessons.MAX_CURATORS_MEASURED}, fewer "
        "in a large pass), and yours were not measured alone"
    ),
    lessons.NO_CURATOR_ROUNDS: "none of your verdicts in this pass changed the proposals",
}


@dataclass(frozen=True)
class LessonLine:
    """One row of the page, already in words."""

    item_id: str
    direction: str
    change: float
    because: str
    # Said when a curator's row is not their own reviews' share (see MEASURE_NOTES).
    note: str = ""


def _words(row: ReviewLesson, yours: bool) -> LessonLine:
    details = row.details or {}
    verdicts = ", ".join(
        f"{count} {VERDICT_WORDS.get(name, name)}"
        for name, count in sorted(details.get("verdicts", {}).items())
    )
    segments = ", ".join(sorted(details.get("segments", {})))
    who = "Your" if yours else "Curators'"
    because = (
        f"{who} {verdicts} of this {details.get('category', 'item')} "
        f"(customers: {segments or 'all'})"
    )
    return LessonLine(
        row.item_id,
        _direction(row.change),
        abs(row.change),
        because,
        MEASURE_NOTES.get(str(details.get("measure", "")), "") if yours else "",
    )


def _direction(change: float) -> str:
    # The page shows three decimals: a smaller move (a kept item's is exactly 0) is none.
    if abs(change) < 0.0005:
        return "unchanged"
    return "up" if change > 0 else "down"


@bp.get("")
@login_required
def index() -> ResponseReturnValue:
    """Which items rose or fell on the probe contexts because of reviews, and whose."""
    session = get_session()
    raw_version = request.args.get("version", "")
    if raw_version and not raw_version.isdigit():
        abort(400, description=f"version must be a model version number; got {raw_version[:20]!r}")
    mine = request.args.get("who", "me") == "me"
    curator_id = current_curator_id() if mine else None
    version, rows = lessons.lessons_for(
        session, int(raw_version) if raw_version else None, curator_id
    )
    return render_template(
        "lessons.html",
        version=version,
        versions=lessons.lesson_versions(session),
        mine=mine,
        probe_contexts=lessons.PROBE_CONTEXTS,
        lines=[_words(row, mine) for row in rows],
    )
