"""Migration 0005: old English reasons become reason codes, and the downgrade words them again."""

from __future__ import annotations

import importlib
import json
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text

from bandit.db import migrate

WHEN = datetime(2026, 11, 1, 12, 0)
OLD_REASON = (
    "matches preferred style minimalist; a favourite category; taste match +0.42; "
    "model expects reward 0.61 · exploration pick"
)
reason_codes = importlib.import_module("migrations.versions.0005_reason_codes")


@pytest.mark.parametrize(
    ("text_reason", "codes"),
    [
        (
            OLD_REASON,
            [
                ["style_match", 1.0],
                ["favourite_category", 1.0],
                ["taste_match", 0.42],
                ["expected_reward", 0.61],
                ["exploration_pick", 1.0],
            ],
        ),
        (
            "above budget; model expects reward -0.10",
            [["above_budget", 1.0], ["expected_reward", -0.1]],
        ),
        ("", []),
        ("a phrase nobody wrote", []),
    ],
)
def test_old_phrases_parse_to_codes(text_reason: str, codes: list[list[object]]) -> None:
    assert reason_codes.parse_reason(text_reason) == codes


def test_upgrade_turns_stored_reasons_into_codes_and_back(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0004_claim_perf")
    engine = create_engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO policy_configs (id, name, version, document, active, "
                    "created_by, created_at) VALUES (1, 'default', 1, '{}', :yes, 't', :when)"
                ),
                {"yes": True, "when": WHEN},
            )
            connection.execute(
                text(
                    "INSERT INTO decisions (id, event_id, context, exclude, candidates, "
                    "position_pmfs, uncertainty, route, status, policy_config_id, policy_name, "
                    "policy_version, model_version, created_at) VALUES (1, 'ev-1', '{}', '[]', "
                    "'[]', '[]', '{}', 'auto', 'delivered', 1, 'default', 1, 0, :when)"
                ),
                {"when": WHEN},
            )
            connection.execute(
                text(
                    "INSERT INTO proposed_items (id, decision_id, position, item_id, probability, "
                    "candidate_probability, position_probability, score, explored, reason) "
                    "VALUES (1, 1, 0, 'item-1', 0.5, 1.0, 0.5, 0.61, :yes, :reason)"
                ),
                {"yes": True, "reason": OLD_REASON},
            )
        migrate.upgrade(empty_url)
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT reasons FROM proposed_items")).scalar_one()
        stored = json.loads(stored) if isinstance(stored, str) else stored
        assert stored == reason_codes.parse_reason(OLD_REASON)
        migrate.downgrade(empty_url, "0004_claim_perf")
        with engine.connect() as connection:
            reason = connection.execute(text("SELECT reason FROM proposed_items")).scalar_one()
        assert reason == OLD_REASON.replace(
            "matches preferred style minimalist", "matches preferred style"
        )
    finally:
        engine.dispose()
