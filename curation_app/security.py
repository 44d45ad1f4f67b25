"""CSRF protection for every form, security headers on every response, and a guard that turns
input no database can store into a clear 4xx before any view runs."""

from __future__ import annotations

import hashlib

from flask import Blueprint, Flask, Response, abort, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from bandit.db.limits import ROW_ID_MAX

csrf = CSRFProtect()
# No default limits: only routes that say so (the login form, the API) are limited.
limiter = Limiter(key_func=get_remote_address)
API_RATE_LIMIT_SCOPE = "api"


def _api_limit() -> str:
    return str(current_app.config.get("API_RATE_LIMIT") or "")


def _api_limit_off() -> bool:
    return not current_app.config.get("API_RATE_LIMIT")


def _api_client_key() -> str:
    """One budget per bearer token (hashed: the limiter's storage never holds a secret)."""
    header = request.headers.get("Authorization", "")
    if not header:
        return f"address:{get_remote_address()}"
    return "token:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()


def api_rate_limit(bp: Blueprint) -> None:
    """Share the deployment's API_RATE_LIMIT (e.g. "600 per minute") over every API route of
    `bp`, per client token; over it, the answer is 429 with Retry-After. Unset: no limit."""
    limiter.shared_limit(
        _api_limit,
        scope=API_RATE_LIMIT_SCOPE,
        key_func=_api_client_key,
        exempt_when=_api_limit_off,
        error_message="too many requests for this token; wait for Retry-After seconds",
    )(bp)


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


# A larger id in a URL can name nothing: the key columns are 32-bit INTEGER on PostgreSQL, and
# SQLite is held to the same range so both backends answer alike (404, never a DataError).
MAX_ROW_ID = ROW_ID_MAX


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
