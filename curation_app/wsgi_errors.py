"""JSON instead of gunicorn's HTML error pages for the API, and the request limits we set.

gunicorn answers requests it cannot parse (an over-long request line, too many or too large
headers, an invalid header) itself, before the application runs, with a small HTML page. An API
client expects `{"error": ...}` like every other answer, so in each worker process we replace
the page writer: API paths, and requests whose path could not even be read, get JSON; console
paths keep gunicorn's page. Install it with the gunicorn server hook `post_worker_init` (this
module is also a valid gunicorn config: `gunicorn -c python:curation_app.wsgi_errors ...`).

The limits are chosen, not inherited: our longest URL is an event path with a 128-character id
and no query, a request carries a handful of headers, and the largest header is a session
cookie or a bearer token of well under 1 KiB.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from gunicorn import util

# The request line: method, path and query, and the protocol.
LIMIT_REQUEST_LINE = 2048
# How many header fields a request may carry.
LIMIT_REQUEST_FIELDS = 50
# The size of one header field, name and value.
LIMIT_REQUEST_FIELD_SIZE = 8190
API_PREFIX = "/api/"

_html_error_page = util.write_error
_failing_request = threading.local()


def gunicorn_limit_arguments() -> list[str]:
    """The command-line flags that set the limits above."""
    return [
        "--limit-request-line", str(LIMIT_REQUEST_LINE),
        "--limit-request-fields", str(LIMIT_REQUEST_FIELDS),
        "--limit-request-field_size", str(LIMIT_REQUEST_FIELD_SIZE),
    ]  # fmt: skip


def error_body(status: int, reason: str, message: str) -> bytes:
    """The JSON body of an error answered by the server itself."""
    detail = message.strip() or ("internal error" if status >= 500 else reason)
    return json.dumps({"error": f"{reason.lower()}: {detail}"}).encode()


def _wants_json() -> bool:
    path = getattr(_failing_request, "path", None)
    return path is None or path.startswith(API_PREFIX)


def write_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's util.write_error, answering JSON for the API (same status and headers)."""
    if not _wants_json():
        _html_error_page(sock, status, reason, message)
        return
    body = error_body(status, reason, message)
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def _path_of(request: Any) -> str | None:
    path = getattr(request, "path", None)
    return path if isinstance(path, str) else None


def install(worker: Any) -> None:
    """Make this worker process answer its own errors as JSON on API paths."""
    original = worker.handle_error

    def handle_error(req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        # The path is known only when the request line was read (an invalid header keeps it on
        # the exception); the page writer below runs in this same thread.
        _failing_request.path = _path_of(req) or _path_of(getattr(exc, "req", None))
        try:
            original(req, client, addr, exc)
        finally:
            _failing_request.path = None

    worker.handle_error = handle_error
    util.write_error = write_error


def post_worker_init(worker: Any) -> None:
    """gunicorn server hook: runs in each worker process after it has loaded the app."""
    install(worker)
