"""Errors as JSON for the API and as plain pages for the console; never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, jsonify, render_template, request
from flask.sansio.app import App
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from bandit.services.apprentice import ChoiceConflict
from bandit.services.review import LeaseLost, SameCurator, TaskNotFound
from bandit.services.review.undo import UndoRefused
from bandit.services.rewards import EventNotFound, RewardConflict

# Service exceptions know nothing of HTTP; this is where their meaning becomes a status code.
_STATUS_BY_ERROR: tuple[tuple[type[Exception], int], ...] = (
    (TaskNotFound, 404),
    (EventNotFound, 404),
    (LeaseLost, 409),
    (SameCurator, 409),
    (UndoRefused, 409),
    (RewardConflict, 409),
    (ChoiceConflict, 409),
)


# Paths answered in JSON (client APIs and the probes); the console gets HTML pages.
JSON_PATHS = ("/api/", "/personalizer/", "/healthz", "/readyz")

# The JSON error document for a status and message; {"error": message} unless a blueprint
# whose clients expect another shape (Personalizer's) registered one for its paths.
ErrorDocument = Callable[[int, str], dict[str, Any]]
_DOCUMENTS = "hitl.error_documents"


def status_for(error: Exception) -> int:
    """The HTTP status that answers a service error (400 unless a more specific one fits)."""
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


def shape_errors_under(app: App, path_prefix: str, document: ErrorDocument) -> None:
    """Answer every JSON error under `path_prefix` with `document(status, message)`.

    Routing errors (404, 405) never reach a blueprint's own handlers, and the app-wide ones
    here answer the others (413, 500), so the shape is chosen here, by path.
    """
    app.extensions.setdefault(_DOCUMENTS, {})[path_prefix] = document


def _json_error(status: int, message: str) -> dict[str, Any]:
    for prefix, document in current_app.extensions.get(_DOCUMENTS, {}).items():
        if request.path.startswith(prefix):
            return document(status, message)
    return {"error": message}


def _wants_json() -> bool:
    # The console's own scripts send JSON (heartbeat) or ask for it (submit without reload).
    if request.path.startswith(JSON_PATHS) or request.is_json:
        return True
    return request.accept_mimetypes.best == "application/json"


def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    message = error.description or error.name
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
        message = f"request body too large (the limit is {limit // 1024} KiB)"
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        allowed = ", ".join(sorted(error.valid_methods))
        message = f"method {request.method} is not allowed here; use {allowed}"
    # Keep what the exception says besides its body: Allow on 405, Retry-After on 429.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if _wants_json():
        return jsonify(_json_error(status, message)), status, headers
    return render_template("error.html", status=status, message=message), status, headers


def _csrf_error(error: CSRFError) -> ResponseReturnValue:
    message = "the form expired or was not sent from this site; reload the page and try again"
    if _wants_json():
        return jsonify(_json_error(400, f"csrf: {message}")), 400
    return render_template("error.html", status=400, message=message), 400


def _unexpected(error: Exception) -> ResponseReturnValue:
    if isinstance(error, HTTPException):
        return _http_error(error)
    current_app.logger.exception("unhandled error")
    if _wants_json():
        return jsonify(_json_error(500, "internal error")), 500
    return render_template("error.html", status=500, message="internal error"), 500


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
