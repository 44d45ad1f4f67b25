"""The active policy config: read once per transaction, read anew after an activation."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bandit.engine.config import PolicyConfig
from bandit.services import configs
from tests.statement_log import recorded_statements


def _config_reads(seen: list[str]) -> int:
    return sum("FROM policy_configs" in statement for statement in seen)


def test_one_transaction_reads_the_active_config_once_and_again_after_activating_another(
    session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    with session_factory.begin() as session:
        configs.save_config(session, PolicyConfig(epsilon=0.2), "test", activate=True)
    seen = recorded_statements(db_engine)
    with session_factory() as session:
        first_row, first = configs.active_config(session)
        again_row, again = configs.active_config(session)
        assert (again_row, again) == (first_row, first) and first.epsilon == 0.2
        assert _config_reads(seen) == 1
        configs.save_config(session, PolicyConfig(epsilon=0.3), "test", activate=True)
        assert configs.active_config(session)[1].epsilon == 0.3
        session.commit()
        seen.clear()
        # A new transaction reads again: another process may have activated a config.
        assert configs.active_config(session)[1].epsilon == 0.3
        assert _config_reads(seen) == 1
