"""Structured logs: one JSON object per line, each request's with its request id.

The request id comes from the client's `X-Request-ID` when it is a plausible id (so a trace
crosses services), else a new one; it is returned in the same response header.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request
from flask.typing import ResponseReturnValue

REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_LOGGER = "hitl.request"
# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            document["request_id"] = g.request_id
        document.update(
            {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in document}
        )
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def json_handler() -> logging.Handler:
    """A stderr handler writing JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    return handler


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr as JSON (the CLI's long-running commands)."""
    root = logging.getLogger()
    root.handlers[:] = [json_handler()]
    root.setLevel(level)


def gunicorn_log_config() -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its own and the app's records as JSON on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"level": "INFO", "handlers": ["json"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
            # Each request is logged once, by the app, with its request id.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def _start_request() -> None:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _finish_request(response: Any) -> ResponseReturnValue:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    started = g.get("request_started")
    elapsed = 0.0 if started is None else time.perf_counter() - started
    logging.getLogger(REQUEST_LOGGER).info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "endpoint": request.endpoint,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 3),
        },
    )
    return response


def init_app(app: Flask) -> None:
    """Give every request an id, return it as a header and log the request as JSON."""
    app.before_request(_start_request)
    app.after_request(_finish_request)
