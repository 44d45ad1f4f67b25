"""The decision `rank` hands back is the decision stored, written in a handful of statements."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import (
    Decision,
    EventChange,
    FinalSlateItem,
    ProposedItem,
    ReviewTask,
    utcnow,
)
from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import DecisionStatus, RoutingMode
from bandit.services import configs, decisions
from bandit.services.runtime import EngineRuntime
from tests.conftest import DemoCatalog

ROUTES = {
    # Everything auto-delivered: the slate, its delivery and the client's outbox row at once.
    "auto": PolicyConfig(
        routing_mode=RoutingMode.PARTIAL, auto_threshold=0.0, review_threshold=0.0
    ),
    "review_after": PolicyConfig(routing_mode=RoutingMode.REVIEW_AFTER),
    "review_before": PolicyConfig(routing_mode=RoutingMode.REVIEW_BEFORE),
}


def _columns(row: Any) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs}


def _ranked(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, route: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Rank once; what the returned decision says, and the SQL the rank ran."""
    with session_factory() as session:
        configs.save_config(session, ROUTES[route], "test", activate=True)
        session.commit()
    statements: list[str] = []
    with session_factory() as session:
        runtime = EngineRuntime(np.random.default_rng(4))
        runtime.serving(session)  # the catalog and model loads are not the rank's own work
        session.commit()
        engine = session.get_bind()
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            decision, created = decisions.rank(
                session,
                runtime,
                decisions.RankRequest(context=demo_catalog.customers[0], event_id=f"log-{route}"),
            )
            session.commit()
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert created
        returned = _columns(decision)
        items = [_columns(p) for p in decision.proposed]
    return returned, items, statements


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_the_returned_decision_is_the_stored_one(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, route: str
) -> None:
    returned, items, _ = _ranked(session_factory, demo_catalog, route)
    with session_factory() as fresh:
        stored = fresh.scalars(select(Decision).where(Decision.id == returned["id"])).one()
        assert _columns(stored) == returned
        assert [_columns(p) for p in stored.proposed] == items
        delivered = stored.status == DecisionStatus.DELIVERED
        assert delivered == (route != "review_before")
        final = fresh.scalars(
            select(FinalSlateItem).where(FinalSlateItem.decision_id == stored.id)
        ).all()
        assert [(f.position, f.item_id) for f in final] == (
            [(p["position"], p["item_id"]) for p in items] if delivered else []
        )
        outbox = fresh.scalars(select(EventChange).where(EventChange.decision_id == stored.id))
        assert [c.kind for c in outbox] == (["delivered"] if delivered else [])
        tasks = fresh.scalars(select(ReviewTask).where(ReviewTask.decision_id == stored.id))
        assert len(tasks.all()) == (0 if route == "auto" else 1)


def test_an_auto_delivered_rank_writes_each_table_once(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog, database_url: str
) -> None:
    _, _, statements = _ranked(session_factory, demo_catalog, "auto")
    writes = [s.split()[2] for s in statements if s.lstrip().upper().startswith("INSERT")]
    tables = sorted(t.__tablename__ for t in (Decision, ProposedItem, FinalSlateItem, EventChange))
    if database_url.startswith("postgresql"):
        # One statement: each table's INSERT is a data-modifying CTE on the new decision's id.
        inserting = [s for s in statements if "INSERT INTO" in s.upper()]
        assert len(inserting) == 1 and not writes
        assert sorted(re.findall(r"INSERT INTO (\w+)", inserting[0])) == tables
    else:
        # SQLite cannot return ids in row order from one multi-row INSERT, so SQLAlchemy sends
        # the proposed items one by one (in process: no round trips to save there).
        assert sorted(set(writes)) == tables
        assert writes.count(Decision.__tablename__) == 1
    assert not [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "SAVEPOINT"))]


def test_a_second_write_of_a_logged_event_id_stores_nothing(
    session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    """The path a racing rank takes once the first one committed: the INSERT itself refuses."""
    _ranked(session_factory, demo_catalog, "auto")
    with session_factory() as session:
        serving = EngineRuntime(np.random.default_rng(5)).serving(session)
        request = decisions.RankRequest(context=demo_catalog.customers[1], event_id="log-auto")
        proposal = serving.recommender.propose(request.context)
        again = decisions.log_decision(
            session,
            request,
            proposal,
            serving.config_row,
            serving.recommender.config,
            serving.model_version,
            None,
            utcnow(),
        )
        session.commit()
        assert again is None
        stored = session.scalars(select(Decision).where(Decision.event_id == "log-auto")).all()
        assert len(stored) == 1
        assert stored[0].context == dict(demo_catalog.customers[0])
        rows = session.scalars(
            select(ProposedItem).where(ProposedItem.decision_id == stored[0].id)
        ).all()
        assert len(rows) == len(stored[0].proposed)
