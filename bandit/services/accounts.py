"""Curators with hashed passwords, and API clients with bearer tokens."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from bandit.db.models import ApiClient, Curator

ROLES = ("curator", "admin")
MIN_PASSWORD_LENGTH = 8


class AccountError(ValueError):
    """A username, role, password or token name is not acceptable."""


def add_curator(session: Session, username: str, password: str, role: str = "curator") -> Curator:
    """Create a curator; refuses duplicates, unknown roles and short passwords."""
    username = username.strip()
    if not username or len(username) > 80:
        raise AccountError("username must be 1 to 80 characters")
    _refuse_control_characters(username, "username")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if find_curator(session, username) is not None:
        raise AccountError(f"curator {username!r} already exists")
    curator = Curator(username=username, password_hash=generate_password_hash(password), role=role)
    session.add(curator)
    session.flush()
    return curator


def _refuse_control_characters(value: str, what: str) -> None:
    # Names are shown in the console and audit log; PostgreSQL refuses NUL in text outright.
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise AccountError(f"{what} must not contain control characters (NUL, tab, newline)")


def find_curator(session: Session, username: str) -> Curator | None:
    """The curator with this username, if any."""
    return session.scalars(select(Curator).where(Curator.username == username)).first()


def authenticate(session: Session, username: str, password: str) -> Curator | None:
    """The active curator whose password matches, else None."""
    curator = find_curator(session, username)
    if curator is None or not curator.active:
        return None
    return curator if check_password_hash(curator.password_hash, password) else None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    session: Session, name: str, replace: bool = False, curator_username: str | None = None
) -> str:
    """Register an API client and return its token; only the hash is stored.

    With `replace`, an existing client of that name gets a new token and the old one stops
    working. With `curator_username`, the token acts as that curator on the review API.
    """
    name = name.strip()
    if not name or len(name) > 120:
        raise AccountError("token name must be 1 to 120 characters")
    _refuse_control_characters(name, "token name")
    curator_id = None
    if curator_username is not None:
        curator = find_curator(session, curator_username.strip())
        if curator is None:
            raise AccountError(f"no curator named {curator_username!r}")
        curator_id = curator.id
    token = "hitl_" + secrets.token_urlsafe(32)
    existing = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
    if existing is None:
        session.add(ApiClient(name=name, token_hash=_token_hash(token), curator_id=curator_id))
    elif replace:
        existing.token_hash, existing.active = _token_hash(token), True
        existing.curator_id = curator_id
    else:
        raise AccountError(f"an API client named {name!r} already exists (use --replace)")
    session.flush()
    return token


def client_for_token(session: Session, token: str) -> ApiClient | None:
    """The active API client holding `token`, else None."""
    client = session.scalars(_by_token_hash(), {"token_hash": _token_hash(token)}).first()
    return client if client is not None and client.active else None


def curator_client_for_token(
    session: Session, token: str
) -> tuple[ApiClient | None, Curator | None]:
    """`client_for_token` and the active curator the token acts as (None when it is bound to
    none, or to one no longer active), read in one query: every review-API call asks both."""
    found = session.execute(_by_token_hash_with_curator(), {"token_hash": _token_hash(token)})
    row = found.first()
    if row is None or not row[0].active:
        return None, None
    client, curator = row
    return client, curator if curator is not None and curator.active else None


# Built once per process and bound per call: every API request looks its token up.
@cache
def _by_token_hash() -> Select[ApiClient]:
    return select(ApiClient).where(ApiClient.token_hash == bindparam("token_hash"))


@cache
def _by_token_hash_with_curator() -> Select[ApiClient, Curator]:
    # An outer join: an unbound token still finds its client (and no curator).
    return (
        select(ApiClient, Curator)
        .outerjoin(Curator, Curator.id == ApiClient.curator_id)
        .where(ApiClient.token_hash == bindparam("token_hash"))
    )
