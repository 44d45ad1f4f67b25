"""The console page "What your reviews taught the model", per model version and curator."""

from __future__ import annotations

from collections.abc import Collection
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
    # False: only other items' reviews moved it (shared features); listed apart.
    own: bool = True


def _counts(verdicts: dict[str, int], names: Collection[str]) -> str:
    return ", ".join(
        f"{count} {VERDICT_WORDS.get(name, name)}"
        for name, count in sorted(verdicts.items())
        if name in names
    )


def _words(row: ReviewLesson, yours: bool) -> LessonLine:
    details = row.details or {}
    verdicts: dict[str, int] = details.get("verdicts", {})
    direction = _direction(row.change)
    own = lessons.moved_by_own_rounds(row.change, details)
    segments = ", ".join(sorted(details.get("segments", {})))
    who = "Your" if yours else "Curators'"
    of_this = f"of this {details.get('category', 'item')} (customers: {segments or 'all'})"
    measure = MEASURE_NOTES.get(str(details.get("measure", "")), "") if yours else ""
    if not own:
        taught = details.get("taught")
        if taught is None:  # a row stored before `taught` was: by what its verdicts teach
            taught = sorted({lessons.verdict_push(v) for v in verdicts} - {None})
        pushing = {v for v in verdicts if lessons.verdict_push(v) in taught} or set(verdicts)
        if taught:
            their = f"{who} {_counts(verdicts, pushing)} {of_this} pushed it {' and '.join(taught)}"
            rest = _counts(verdicts, set(verdicts) - pushing)
            their += f" ({rest} taught it nothing by themselves)" if rest else ""
        else:
            their = f"{who} {_counts(verdicts, verdicts)} {of_this} taught it nothing by themselves"
        because = (
            f"{their}; the reviews of other items moved it {direction}, through the features it "
            "shares with them"
        )
        return LessonLine(row.item_id, direction, abs(row.change), because, measure, own=False)
    # Only the verdicts that push the way it moved are its cause (in apprentice mode a keep
    # is imitated, so when none of them does, they all are).
    pushing = {v for v in verdicts if lessons.verdict_push(v) == direction} or set(verdicts)
    because = f"{who} {_counts(verdicts, pushing)} {of_this}"
    rest = _counts(verdicts, set(verdicts) - pushing)
    if rest and direction != "unchanged":
        because += f"; also {rest}, which did not push it {direction}"
    return LessonLine(row.item_id, direction, abs(row.change), because, measure)


def _direction(change: float) -> str:
    # The page shows three decimals: a smaller move is none.
    if abs(change) < lessons.VISIBLE_CHANGE:
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
    words = [_words(row, mine) for row in rows]
    return render_template(
        "lessons.html",
        version=version,
        versions=lessons.lesson_versions(session),
        mine=mine,
        probe_contexts=lessons.PROBE_CONTEXTS,
        lines=[line for line in words if line.own],
        shared=[line for line in words if not line.own],
    )
