"""gunicorn itself, with our limits and hook: the requests it refuses itself get JSON."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from curation_app import wsgi_errors

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def gunicorn_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """gunicorn on 127.0.0.1 with the limits and the JSON error hook; stopped afterwards.

    No request here reaches the database (gunicorn refuses them, or routing does), so one
    server serves the module and its database file is never opened.
    """
    port = _free_port()
    environment = {
        **os.environ,
        "HITL_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('gunicorn') / 'unused.db'}",
        "HITL_SECURE_COOKIES": "0",
        "HITL_SECRET_KEY": "gunicorn-test",
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2",
        "--log-level", "error", "-c", "python:curation_app.wsgi_errors",
        *wsgi_errors.gunicorn_limit_arguments(), "curation_app:create_app()",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=environment)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("gunicorn did not start within 60 s") from None
                time.sleep(0.3)
        yield "127.0.0.1", port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _raw(address: tuple[str, int], request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes after an error)."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received:
                head, _, body = received.partition(b"\r\n\r\n")
                headers = dict(
                    line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:]
                )
                length = int(headers.get("Content-Length", "-1"))
                if length >= 0 and len(body) >= length:
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    return status, {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}, body


def _get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


EVENT_PATH = "/api/v1/events/"
REFUSED = {
    "request-line-too-long": (
        _get(EVENT_PATH + "x" * wsgi_errors.LIMIT_REQUEST_LINE),
        414,
        "uri too long",
    ),
    "too-many-headers": (
        _get(
            EVENT_PATH + "e1",
            *(f"X-Extra-{i}: 1" for i in range(wsgi_errors.LIMIT_REQUEST_FIELDS + 5)),
        ),
        431,
        "header",
    ),
    "header-too-large": (
        _get(EVENT_PATH + "e1", "X-Big: " + "b" * (wsgi_errors.LIMIT_REQUEST_FIELD_SIZE + 10)),
        431,
        "header",
    ),
    "invalid-header-name": (_get(EVENT_PATH + "e1", "Bad Name: x"), 400, "bad request"),
    "invalid-request-line": (b"NOT A REQUEST\r\n\r\n", 400, "bad request"),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_gunicorn_refusals_are_json(gunicorn_base: tuple[str, int], case: str) -> None:
    request, status, words = REFUSED[case]

    answered, headers, body = _raw(gunicorn_base, request)

    assert answered == status, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert words in error.lower()


def test_limits_leave_room_for_real_requests(gunicorn_base: tuple[str, int]) -> None:
    longest_event_path = EVENT_PATH + "e" * 128 + "/reward?" + "q" * 200
    cookie = "Cookie: session=" + "c" * 4000

    status, headers, body = _raw(gunicorn_base, _get(longest_event_path, cookie))

    # Past gunicorn to the application, which answers as it does for any GET on this path.
    assert status == 405, body
    assert set(headers["allow"].split(", ")) == {"OPTIONS", "POST"}
    assert headers["content-type"] == "application/json"
    assert "POST" in json.loads(body)["error"]


def test_console_paths_get_json_too(gunicorn_base: tuple[str, int]) -> None:
    status, headers, body = _raw(gunicorn_base, _get("/review", "Bad Name: x"))

    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "bad request" in json.loads(body)["error"]


def test_the_production_server_uses_these_limits_and_the_json_hook() -> None:
    """`hitl serve` (curation_app/serving.py) runs gunicorn with the same limits and hook."""
    from curation_app import serving, wsgi_errors

    options = serving.ServerSettings().gunicorn_options()
    assert options["limit_request_line"] == wsgi_errors.LIMIT_REQUEST_LINE
    assert options["limit_request_fields"] == wsgi_errors.LIMIT_REQUEST_FIELDS
    assert options["limit_request_field_size"] == wsgi_errors.LIMIT_REQUEST_FIELD_SIZE
    assert options["post_worker_init"] is wsgi_errors.post_worker_init
