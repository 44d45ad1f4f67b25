"""CSRF protection for every form, security headers on every response, and a guard that turns
input no database can store into a clear 4xx before any view runs."""

from __future__ import annotations

from flask import Flask, Response, abort, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
# No default limits: only routes that say so (the login form) are limited.
limiter = Limiter(key_func=get_remote_address)


def _headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    response.headers.setdefault(
        "Content-Security-Policy",
        # Catalog pictures may live on the team's image CDN (image_url is http(s) or a path).
        "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; "
        "script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    return response


# Database integer keys are signed 64-bit; a larger id in a URL can name nothing.
MAX_ROW_ID = 2**63 - 1


def _refuse_unstorable_input() -> None:
    # PostgreSQL refuses NUL in text, so a NUL would otherwise surface as a server error.
    texts = [request.path, *request.args.keys(), *request.args.values()]
    if request.method == "POST" and request.mimetype != "application/json":
        texts += [*request.form.keys(), *request.form.values()]
    if any("\x00" in text for text in texts):
        abort(400, description="the request contains a NUL character")
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and value > MAX_ROW_ID:
            abort(404, description="no such record")


def init_app(app: Flask) -> None:
    """Protect forms, guard input and add headers."""
    app.before_request(_refuse_unstorable_input)
    csrf.init_app(app)
    limiter.init_app(app)
    app.after_request(_headers)
