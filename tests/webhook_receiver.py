"""A real webhook receiver for tests: a threaded HTTP server on 127.0.0.1 that checks every
signature the way the README tells clients to, and can fail, hang or be down."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_SECONDS = 300
MAX_HANG_SECONDS = 30.0


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """The README's check: HMAC-SHA256 over "{timestamp}.{body}", constant-time, fresh."""
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(timestamp)) <= TOLERANCE_SECONDS
    return fresh and hmac.compare_digest(f"v1={expected.hexdigest()}", header)


@dataclass
class Received:
    """One request as the receiver saw it."""

    delivery_id: str
    event_type: str
    signature_valid: bool
    body: dict[str, Any]
    answered: int


@dataclass
class Receiver:
    """The server's state: what came in, and how it should answer next."""

    secret: str = ""
    received: list[Received] = field(default_factory=list)
    # Answer the first attempt of each delivery with 500, to force a retry (a duplicate).
    fail_first: bool = False
    hang: threading.Event | None = None
    hanging: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, delivery_id: str) -> int:
        with self.lock:
            return sum(r.delivery_id == delivery_id for r in self.received)


def free_port() -> int:
    """A port nothing listens on right now (the webhook target while the receiver is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(receiver: Receiver, port: int = 0) -> ThreadingHTTPServer:
    """Serve on 127.0.0.1:port in a daemon thread; stop it with `stop(server)`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            delivery_id = self.headers.get("Hitl-Delivery-Id", "")
            valid = verify(
                receiver.secret,
                self.headers.get("Hitl-Timestamp", "0"),
                body,
                self.headers.get("Hitl-Signature", ""),
            )
            if receiver.hang is not None:
                receiver.hanging.set()
                receiver.hang.wait(MAX_HANG_SECONDS)
            status = 500 if receiver.fail_first and receiver.seen(delivery_id) == 0 else 204
            if not valid:
                status = 401
            with receiver.lock:
                receiver.received.append(
                    Received(delivery_id, self.headers.get("Hitl-Event-Type", ""), valid,
                             json.loads(body), status)
                )  # fmt: skip
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()
