"""The curators' console and the JSON API, served by one Flask application."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session, sessionmaker

    from bandit.services.change_feed import ChangeFeed


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: storage, engine runtime, login, CSRF and the blueprints."""
    # Imported here, not at the top: every `hitl` command imports this package, and the
    # offline ones (`hitl replay`) must not pay for Flask, SQLAlchemy and the engine runtime.
    import numpy as np
    from flask import Flask

    from bandit.db.session import database_url, make_engine, make_session_factory
    from bandit.engine.native_threads import one_blas_thread
    from bandit.services.runtime import EngineRuntime

    one_blas_thread()  # request threads, not BLAS threads, share this process's cores

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
        # Failed log-ins: per account, and (looser, for a whole office behind one address) per IP.
        LOGIN_RATE_LIMIT="10 per minute",
        LOGIN_IP_RATE_LIMIT="100 per minute",
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_HEADERS_ENABLED=True,
        # Per client token over the whole JSON API, e.g. "1200 per minute"; unset, no limit.
        API_RATE_LIMIT=os.environ.get("HITL_API_RATE_LIMIT") or None,
        ENGINE_SEED=None,
        # "notify": serving processes learn of new models, configs and catalogs from
        # PostgreSQL LISTEN/NOTIFY (a half-second poll on SQLite) instead of checking storage
        # on every rank; "request" (the default) checks on every request.
        CHANGE_FEED=os.environ.get("HITL_CHANGE_FEED", "request"),
        # Catalog pictures given as paths (not URLs) are served from this folder.
        MEDIA_FOLDER=os.environ.get("HITL_MEDIA_FOLDER"),
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
    feed = _change_feed(app.config["CHANGE_FEED"], session_factory)
    rng = np.random.default_rng(app.config["ENGINE_SEED"])
    app.extensions["hitl.rng"] = rng
    app.extensions["hitl.runtime"] = EngineRuntime(rng, feed)

    from curation_app import (
        api,
        auth,
        console,
        dashboard,
        db,
        errors,
        lessons,
        logs,
        openapi,
        ops,
        personalizer,
        pictures,
        quality,
        review_api,
        security,
        settings,
        webhooks_admin,
    )

    # First, so every later hook and handler (and the log line) sees the request id.
    logs.init_app(app)
    ops.init_app(app)
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
    app.register_blueprint(webhooks_admin.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(personalizer.bp)
    app.register_blueprint(lessons.bp)
    app.register_blueprint(pictures.bp)
    app.add_template_global(pictures.picture_url)
    return app


def _change_feed(mode: str, session_factory: sessionmaker[Session]) -> ChangeFeed | None:
    from sqlalchemy import Engine

    from bandit.services.change_feed import ChangeFeed

    if mode == "request":
        return None
    if mode != "notify":
        raise ValueError(f"HITL_CHANGE_FEED: must be 'notify' or 'request', not {mode!r}")
    engine = session_factory.kw.get("bind")
    if not isinstance(engine, Engine):
        raise ValueError("HITL_CHANGE_FEED=notify needs a session factory bound to an engine")
    return ChangeFeed(engine)


def _instance_secret() -> str:
    """A secret kept under ./instance/, so curators stay logged in across restarts."""
    path = Path("instance") / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()
