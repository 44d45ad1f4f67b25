"""Curator login and logout (hashed passwords, CSRF-protected form, rate-limited), and roles."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from bandit.db.models import Curator
from bandit.engine.vocabulary import AuditAction
from bandit.services import accounts, audit
from curation_app.db import get_session
from curation_app.security import limiter

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to review recommendations."
# A session cookie replayed from another browser (other address or agent) is dropped.
login_manager.session_protection = "strong"
ADMIN = "admin"


class CuratorUser(UserMixin):
    """The logged-in curator, detached from any database session."""

    def __init__(self, curator: Curator) -> None:
        self.id = curator.id
        self.username = curator.username
        self.role = curator.role

    def get_id(self) -> str:
        return str(self.id)


@login_manager.user_loader
def _load_user(user_id: str) -> CuratorUser | None:
    if not user_id.isdigit():
        return None
    curator = get_session().get(Curator, int(user_id))
    return CuratorUser(curator) if curator is not None and curator.active else None


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect would let a phishing link bounce through us.
    if target and target.startswith("/") and not urlsplit(target).netloc and "//" not in target:
        return target
    return url_for("console.queue")


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _failed_login(response: Response) -> bool:
    # Only refused attempts count against the limit: a successful login redirects.
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    _login_limit,
    methods=["POST"],
    deduct_when=_failed_login,
    error_message="Too many failed log-in attempts; wait a minute and try again.",
)
def login() -> Response | str:
    """Show the login form and sign curators in."""
    form = LoginForm()
    if form.validate_on_submit():
        session = get_session()
        username = form.username.data or ""
        curator = accounts.authenticate(session, username, form.password.data or "")
        if curator is not None:
            login_user(CuratorUser(curator))
            audit.record(session, AuditAction.LOGIN, curator.username, curator.id)
            session.commit()
            return redirect(_safe_next(request.args.get("next")))
        audit.record(
            session, AuditAction.LOGIN_REFUSED, username[:80], None, ip=request.remote_addr
        )
        session.commit()
        flash("Unknown username or wrong password.", "error")
    return render_template("login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Sign out."""
    session = get_session()
    audit.record(session, AuditAction.LOGOUT, current_user.username, current_curator_id())
    session.commit()
    logout_user()
    return redirect(url_for("auth.login"))


def admin_required(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """Let only signed-in admins through; curators get a 403 page."""

    @functools.wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if current_user.role != ADMIN:
            return render_template(
                "error.html", status=403, message="This page is for admins only."
            ), 403
        return view(*args, **kwargs)

    return wrapped


def current_username() -> str:
    """The logged-in curator's username."""
    return str(current_user.username)


def current_curator_id() -> int:
    """The id of the logged-in curator."""
    return int(current_user.id)


def init_app(app: Flask) -> None:
    """Attach the login manager."""
    login_manager.init_app(app)
