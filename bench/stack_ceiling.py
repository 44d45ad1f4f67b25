"""The serving stack's ceiling: the least a durable, authenticated JSON request can cost here.

`bench/serve.py` serves this app with the same gunicorn settings, database and client as the
rank, as the reference its figures are read against. One route, `POST /ceiling`, does what
every rank must do and nothing else: parse the JSON body, look the bearer token up (the API's
own query), insert one row and commit, and answer JSON. No engine, no ORM unit of work, no
request hooks. Whatever rate this reaches on a machine bounds what any rank can reach on it.

    gunicorn --pythonpath bench 'stack_ceiling:create_app()'   (HITL_DATABASE_URL set)
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.dialects.postgresql import JSONB

from bandit.db.session import make_engine, make_session_factory
from bandit.services import accounts

metadata = MetaData()
# A table of its own, created by `create_table` in serve.py's scratch database.
ceiling_rows = Table(
    "bench_ceiling_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(128), unique=True, nullable=False),
    Column("context", JSONB, nullable=False),
)


def create_table(url: str) -> None:
    """Create the route's table (serve.py calls it once, before gunicorn starts)."""
    engine = make_engine(url)
    metadata.create_all(engine)
    engine.dispose()


def create_app() -> Flask:
    """The one-route app gunicorn serves."""
    sessions = make_session_factory(make_engine(os.environ["HITL_DATABASE_URL"]))
    app = Flask(__name__)

    @app.post("/ceiling")
    def ceiling() -> Any:
        body = request.get_json()
        token = request.headers.get("Authorization", "").partition(" ")[2]
        with sessions.begin() as session:
            client = accounts.client_for_token(session, token)
            if client is None:
                return jsonify(error="Authorization: invalid token"), 401
            row_id = session.execute(
                insert(ceiling_rows)
                .values(event_id=body["event_id"], context=body["context"])
                .returning(ceiling_rows.c.id)
            ).scalar_one()
        return jsonify(id=row_id, event_id=body["event_id"]), 201

    return app
