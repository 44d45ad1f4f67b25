"""Curator login and logout (hashed passwords, CSRF-protected form)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
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
from bandit.services import accounts
from curation_app.db import get_session

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to review recommendations."


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


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    """Show the login form and sign curators in."""
    form = LoginForm()
    if form.validate_on_submit():
        curator = accounts.authenticate(
            get_session(), form.username.data or "", form.password.data or ""
        )
        if curator is not None:
            login_user(CuratorUser(curator))
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown username or wrong password.", "error")
    return render_template("login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Sign out."""
    logout_user()
    return redirect(url_for("auth.login"))


def current_curator_id() -> int:
    """The id of the logged-in curator."""
    return int(current_user.id)


def init_app(app: Flask) -> None:
    """Attach the login manager."""
    login_manager.init_app(app)
