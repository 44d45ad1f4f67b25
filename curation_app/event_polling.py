"""Cheap polling of an event: no candidates unless asked, ETag/304, and ?wait= long-polls.

A client that polls sends back the ETag it holds in ``If-None-Match``: while the document is
unchanged it gets ``304 Not Modified`` and no body. With ``?wait=SECONDS`` (at most 30) the
request is held until the document changes or the wait runs out. A pending event carries
``Retry-After`` (seconds) and its ``review_due_at``.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Response, jsonify, request

from bandit.db.models import utcnow
from bandit.db.session import is_postgresql
from bandit.engine.vocabulary import EventInclude
from bandit.services import decisions
from curation_app.db import get_session
from curation_app.event_views import event_view, retry_after_seconds, review_task

MAX_WAIT_SECONDS = 30.0
# How often a long-poll looks again: short enough to feel instant, long enough to be cheap.
POLL_INTERVAL_SECONDS = 0.25
INCLUDES = tuple(EventInclude)


class PollError(Exception):
    """A bad polling request or an unknown event, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_include(values: list[str]) -> set[str]:
    """``?include=candidates`` (comma-separated or repeated) as a checked set."""
    parts = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(parts - set(INCLUDES))
    if unknown:
        raise PollError(400, f"include: unknown part {unknown[0]!r}; one of {', '.join(INCLUDES)}")
    return parts


def parse_wait(value: str | None) -> float:
    """``?wait=SECONDS``: a number from 0 to 30."""
    if value is None or value == "":
        return 0.0
    try:
        seconds = float(value)
    except ValueError as error:
        raise PollError(400, "wait: must be a number of seconds from 0 to 30") from error
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise PollError(400, "wait: must be a number of seconds from 0 to 30")
    return seconds


def poll_event(event_id: str) -> Response:
    """The event document with its ETag, a 304, or (with ?wait=) the next changed document."""
    include = parse_include(request.args.getlist("include"))
    wait = parse_wait(request.args.get("wait"))
    deadline = time.monotonic() + wait
    first_etag: str | None = None
    while True:
        response, etag = _current(event_id, EventInclude.CANDIDATES in include)
        held = request.if_none_match
        unchanged = held.contains_weak(etag) if held else etag == (first_etag or etag)
        first_etag = first_etag or etag
        if not unchanged or time.monotonic() >= deadline:
            break
        # Hold no transaction while asleep: on SQLite a reader would block the writer.
        get_session().rollback()
        time.sleep(min(POLL_INTERVAL_SECONDS, max(0.0, deadline - time.monotonic())))
    if held and held.contains_weak(etag):
        not_modified = Response(status=304)
        not_modified.headers.update(
            {k: v for k, v in response.headers.items() if k in _KEPT_ON_304}
        )
        return not_modified
    return response


_KEPT_ON_304 = ("ETag", "Cache-Control", "Retry-After")


def _current(event_id: str, include_candidates: bool) -> tuple[Response, str]:
    session = get_session()
    # One snapshot per look: under READ COMMITTED each query could see a different commit
    # (a decision before a review, its actions after), giving a torn document and a false ETag.
    session.rollback()
    if is_postgresql(session):
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    decision = decisions.find_decision(session, event_id)
    if decision is None:
        raise PollError(404, f"unknown event {event_id!r}")
    document = event_view(session, decision, include_candidates)
    response = jsonify(document)
    etag = hashlib.sha256(response.get_data()).hexdigest()[:32]
    response.set_etag(etag)
    # Clients may keep the document, but must revalidate it (cheaply, with If-None-Match).
    response.headers["Cache-Control"] = "private, no-cache"
    retry_after = retry_after_seconds(decision, review_task(session, decision), utcnow())
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response, etag
