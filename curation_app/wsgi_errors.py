"""JSON instead of gunicorn's HTML error pages, and the request limits we set on purpose.

gunicorn answers requests it cannot parse (an over-long request line, too many or too large
headers, an invalid header or request line) itself, before the application runs, with a small
HTML page. An API client expects `{"error": ...}` like every other answer, so each worker
process replaces that page writer. It is replaced for every path, not only /api/: for most of
these errors gunicorn has not read the path, and a browser shows a JSON line just as well.
Install it with the gunicorn server hook `post_worker_init`; this module is also a valid
gunicorn config for that hook: `gunicorn -c python:curation_app.wsgi_errors ...`.

The limits are chosen, not inherited: our longest URL is an event path with a 128-character id
and no query, a request carries a handful of headers, and the largest header is a session
cookie or a bearer token of well under 1 KiB.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util

# The request line: method, path and query, and the protocol.
LIMIT_REQUEST_LINE = 2048
# How many header fields a request may carry.
LIMIT_REQUEST_FIELDS = 50
# The size of one header field, name and value.
LIMIT_REQUEST_FIELD_SIZE = 8190


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


def write_error(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's util.write_error with a JSON body (same status line, closes the connection)."""
    body = error_body(status, reason, message)
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def post_worker_init(worker: Any) -> None:
    """gunicorn server hook: runs in each worker process after it has loaded the app."""
    # gunicorn's worker looks the writer up on its util module at every error.
    util.write_error = write_error
