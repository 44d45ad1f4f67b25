"""The curators' console and the JSON API, served by one Flask application."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask

from bandit.db.session import database_url, make_engine, make_session_factory
from bandit.services.runtime import EngineRuntime


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: storage, engine runtime, login, CSRF and the blueprints."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("HITL_SECRET_KEY"),
        DATABASE_URL=None,
        MAX_CONTENT_LENGTH=256 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure unless told otherwise: plain-HTTP development sets HITL_SECURE_COOKIES=0.
        SESSION_COOKIE_SECURE=os.environ.get("HITL_SECURE_COOKIES", "1") != "0",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=os.environ.get("HITL_SECURE_COOKIES", "1") != "0",
        # One shift: a forgotten browser stops being signed in.
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        WTF_CSRF_TIME_LIMIT=None,
        LOGIN_RATE_LIMIT="10 per minute",
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_HEADERS_ENABLED=True,
        ENGINE_SEED=None,
    )
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret()
    session_factory = app.config.get("SESSION_FACTORY")
    if session_factory is None:
        engine = make_engine(database_url(app.config["DATABASE_URL"]))
        session_factory = make_session_factory(engine)
    app.extensions["hitl.session_factory"] = session_factory
    app.extensions["hitl.runtime"] = EngineRuntime(np.random.default_rng(app.config["ENGINE_SEED"]))

    from curation_app import (
        api,
        auth,
        console,
        dashboard,
        db,
        errors,
        lessons,
        openapi,
        quality,
        review_api,
        security,
        settings,
    )

    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    auth.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(review_api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(settings.bp)
    app.register_blueprint(quality.bp)
    app.register_blueprint(lessons.bp)
    return app


def _instance_secret() -> str:
    """A secret kept under ./instance/, so curators stay logged in across restarts."""
    path = Path("instance") / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()
