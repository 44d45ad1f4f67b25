"""Migration 0007: existing rows get their delivered slate and corrections, on both backends."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, text

from bandit.db import migrate

WHEN = datetime(2026, 11, 1, 12, 0)
VERIFIED = datetime(2026, 11, 1, 13, 30)


def _decision(connection: Connection, pk: int, event_id: str, route: str, delivered: bool) -> None:
    connection.execute(
        text(
            "INSERT INTO decisions (id, event_id, context, exclude, candidates, position_pmfs, "
            "uncertainty, route, status, policy_config_id, policy_name, policy_version, "
            "model_version, created_at, delivered_at) VALUES (:id, :event_id, '{}', '[]', '[]', "
            "'[]', '{}', :route, :status, 1, 'default', 1, 0, :when, :delivered_at)"
        ),
        {"id": pk, "event_id": event_id, "route": route, "when": WHEN,
         "status": "delivered" if delivered else "pending_review",
         "delivered_at": WHEN if delivered else None},
    )  # fmt: skip


def _proposed(connection: Connection, decision_id: int, items: list[str]) -> None:
    for position, item_id in enumerate(items):
        connection.execute(
            text(
                "INSERT INTO proposed_items (decision_id, position, item_id, probability, "
                "candidate_probability, position_probability, score, explored, reasons) VALUES "
                "(:d, :p, :i, 0.5, 1.0, 0.5, 0.1, :no, '[]')"
            ),
            {"d": decision_id, "p": position, "i": item_id, "no": False},
        )


def _final(connection: Connection, decision_id: int, rows: list[tuple[Any, ...]]) -> None:
    for position, item_id, tag, decided_by, replaced in rows:
        connection.execute(
            text(
                "INSERT INTO final_slate_items (decision_id, position, item_id, tag, decided_by, "
                "replaced_item_id) VALUES (:d, :p, :i, :t, :b, :r)"
            ),
            {"d": decision_id, "p": position, "i": item_id, "t": tag, "b": decided_by,
             "r": replaced},
        )  # fmt: skip


def _old_rows(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO policy_configs (id, name, version, document, active, created_by, "
            "created_at) VALUES (1, 'default', 1, '{}', :yes, 't', :when)"
        ),
        {"yes": True, "when": WHEN},
    )
    connection.execute(
        text(
            "INSERT INTO curators (id, username, password_hash, role, active, created_at) "
            "VALUES (7, 'verifier', 'x', 'curator', :yes, :when)"
        ),
        {"yes": True, "when": WHEN},
    )
    _decision(connection, 1, "ev-auto", "auto", True)
    _proposed(connection, 1, ["a", "b"])
    _final(connection, 1, [(0, "a", "kept", "policy", None), (1, "b", "kept", "policy", None)])
    _decision(connection, 2, "ev-before", "review_before", True)
    _proposed(connection, 2, ["c", "d", "e"])
    _final(connection, 2, [
        (0, "c", "kept", "curator", None), (1, "d", "swapped_out", "curator", None),
        (1, "x", "swapped_in", "curator", "d"), (2, "e", "removed", "curator", None),
    ])  # fmt: skip
    # A review-after slate whose final rows a curator rewrote (the old behaviour).
    _decision(connection, 3, "ev-after", "review_after", True)
    _proposed(connection, 3, ["p", "q", "r"])
    _final(connection, 3, [
        (0, "p", "swapped_out", "curator", None), (0, "y", "swapped_in", "curator", "p"),
        (1, "q", "removed", "curator", None), (2, "r", "kept", "curator", None),
    ])  # fmt: skip
    connection.execute(
        text(
            "INSERT INTO review_tasks (id, decision_id, review_round, route, status, priority, "
            "measure_name, queue_key, curator_id, completed_at, created_at) VALUES "
            "(30, 3, 1, 'review_after', 'done', 0.5, 'least_confidence', 0.0, 7, :v, :when)"
        ),
        {"v": VERIFIED, "when": WHEN},
    )
    connection.execute(
        text(
            "INSERT INTO slate_verifications (decision_id, task_id, curator_id, outcome, "
            "delivered_before, delivered_after, created_at) VALUES (3, 30, 7, 'corrected', "
            '\'["p", "q", "r"]\', \'["y", "r"]\', :v)'
        ),
        {"v": VERIFIED},
    )
    _decision(connection, 4, "ev-pending", "review_before", False)
    _proposed(connection, 4, ["s"])


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def test_upgrade_writes_each_delivery_once_and_review_after_changes_as_corrections(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0005_reason_codes")
    engine = create_engine(empty_url)
    try:
        with engine.begin() as connection:
            _old_rows(connection)
        migrate.upgrade(empty_url, "0007_event_record")
        with engine.connect() as connection:
            slates = {
                event_id: _json(slate)
                for event_id, slate in connection.execute(
                    text("SELECT event_id, delivered_slate FROM decisions")
                )
            }
            corrections = connection.execute(
                text(
                    "SELECT decision_id, task_id, curator_id, changes, created_at "
                    "FROM slate_corrections"
                )
            ).all()
        items = {k: [(e["position"], e["item_id"]) for e in v or []] for k, v in slates.items()}
        assert items["ev-auto"] == [(0, "a"), (1, "b")]
        assert items["ev-before"] == [(0, "c"), (1, "x")]
        assert items["ev-after"] == [(0, "p"), (1, "q"), (2, "r")]  # what the customer had
        assert slates["ev-pending"] is None
        [(decision_id, task_id, curator_id, changes, created_at)] = corrections
        assert (decision_id, task_id, curator_id) == (3, 30, 7)
        assert str(created_at)[:19] == str(VERIFIED)  # SQLite returns the stored text
        assert _json(changes) == [
            {"position": 0, "action": "replace", "item_id": "p", "replacement_item_id": "y"},
            {"position": 1, "action": "remove", "item_id": "q", "replacement_item_id": None},
        ]
        migrate.downgrade(empty_url, "0005_reason_codes")
        tables = inspect(engine).get_table_names()
        columns = {c["name"] for c in inspect(engine).get_columns("decisions")}
        assert "slate_corrections" not in tables and "webhook_deliveries" not in tables
        assert "delivered_slate" not in columns
    finally:
        engine.dispose()
