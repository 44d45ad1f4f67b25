"""Migration 0012: a pass that tested no threshold keeps no override rate or bound."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine, text

from bandit.db import migrate

WHEN = datetime(2026, 11, 1, 12, 0)


def test_passes_that_tested_nothing_lose_their_placeholder_bound_and_get_it_back(
    empty_url: str,
) -> None:
    migrate.upgrade(empty_url, "0011_first_claim")
    engine = create_engine(empty_url)
    # (id, n, rate, bound): a pass that tested nothing (the old placeholders 0.0 and 1.0), and
    # one whose first test failed on 60 slates.
    rows = ((1, 0, 0.0, 1.0), (2, 60, 0.1, 0.18))
    with engine.begin() as connection:
        for pk, n, rate, bound in rows:
            connection.execute(
                text(
                    "INSERT INTO risk_thresholds (id, model_version, threshold, target, "
                    "confidence_level, evidence, n, overrides, rate, bound, details, "
                    "created_at) VALUES (:id, :id, NULL, 0.05, 0.9, 100, :n, 0, :rate, "
                    ":bound, '{}', :when)"
                ),
                {"id": pk, "n": n, "rate": rate, "bound": bound, "when": WHEN},
            )
    engine.dispose()
    migrate.upgrade(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        upgraded = connection.execute(
            text("SELECT id, rate, bound FROM risk_thresholds ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in upgraded] == [(1, None, None), (2, 0.1, 0.18)]
    migrate.downgrade(empty_url, "0011_first_claim")
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        restored = connection.execute(
            text("SELECT id, rate, bound FROM risk_thresholds ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in restored] == [(1, 0.0, 1.0), (2, 0.1, 0.18)]
