"""Swap-ins teach the policy, and apprentice mode imitates curators, apart from bandit logs."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import ImitationExample
from bandit.engine.config import PolicyConfig
from bandit.engine.pruning import prescore
from bandit.engine.vocabulary import ImitationSource
from bandit.services import apprentice, configs, decisions, learning, review
from bandit.services.accounts import find_curator
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app.cli import main
from tests.conftest import DemoCatalog

# Every in-stock item is a candidate, so the test isolates what VW learns from pruning.
ALL_CANDIDATES: dict[str, Any] = {"candidate_count": 200, "slate_size": 3, "epsilon": 0.05}


def _curate_towards(
    session: Session, runtime: EngineRuntime, context: dict, curator_id: int, wanted: str
) -> bool:
    """Rank, then make the curator put `wanted` at position 0; True if the policy had it there."""
    decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
    session.commit()
    task = review.claim_next(session, curator_id)
    session.commit()
    assert task is not None and task.decision_id == decision.id
    proposed = [p.item_id for p in decision.proposed]
    verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
    if wanted not in proposed:
        verdicts[0] = ItemVerdict(0, "swap", wanted, "customer always asks for this")
    review.submit_review(session, task.id, curator_id, task.lease_token or "", verdicts, 10.0)
    session.commit()
    return proposed[0] == wanted


def _setup(
    session: Session, demo_catalog: DemoCatalog, curator_account: tuple[str, str], mode: str
) -> tuple[EngineRuntime, dict, int, str]:
    configs.save_config(session, PolicyConfig(routing_mode=mode, **ALL_CANDIDATES), "t", True)
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(3))
    curator = find_curator(session, curator_account[0])
    assert curator is not None
    context = dict(demo_catalog.customers[0])
    candidates = runtime.serving(session).recommender.propose(context).candidates
    # The last candidate in pre-score order: an item the policy has no reason to propose.
    wanted = min(candidates, key=lambda c: (c.prescore, c.item_id)).item_id
    return runtime, context, curator.id, wanted


def test_repeated_swap_ins_teach_the_policy_to_propose_the_item(
    session: Session, demo_catalog: DemoCatalog, curator_account: tuple[str, str]
) -> None:
    runtime, context, curator_id, wanted = _setup(
        session, demo_catalog, curator_account, "review_before"
    )
    session.rollback()
    imitated = 0
    for _ in range(12):
        _curate_towards(session, runtime, context, curator_id, wanted)
        imitated += learning.learn_pending(session).imitation_rounds
    assert imitated >= 1
    examples = session.scalars(select(ImitationExample)).all()
    assert examples and {e.source for e in examples} == {ImitationSource.SWAP_IN}
    # The pre-score's learned term moved the item up too, so it reaches the candidates of
    # pruned (K < catalog) requests more often.
    catalog = runtime.serving(session).recommender.catalog
    row = catalog.index_of[wanted]
    assert catalog.learned_affinity[row] > 0
    learned = prescore(catalog, context)
    catalog.learned_affinity = np.zeros(len(catalog))
    plain = prescore(catalog, context)
    rank_learned, rank_plain = (learned > learned[row]).sum(), (plain > plain[row]).sum()
    assert rank_learned < rank_plain - 50, (rank_learned, rank_plain)
    proposals = [runtime.serving(session).recommender.propose(context) for _ in range(20)]
    first_items = [p.slate[0].item_id for p in proposals]
    # Untrained, it had the same small chance as every other candidate (about 1 in 190).
    assert first_items.count(wanted) >= 15, first_items


def test_apprentice_mode_imitates_and_reports_a_rising_match_rate(
    session: Session, demo_catalog: DemoCatalog, curator_account: tuple[str, str]
) -> None:
    runtime, context, curator_id, wanted = _setup(
        session, demo_catalog, curator_account, "apprentice"
    )
    session.rollback()
    for _ in range(12):
        _curate_towards(session, runtime, context, curator_id, wanted)
        report = learning.learn_pending(session)
        session.commit()
        # Nothing in apprentice mode is a bandit draw: only imitation rounds are learned.
        assert report.rounds_learned == 0 and report.imitation_rounds >= 1
    matches = session.scalars(select(ImitationExample.matched).order_by(ImitationExample.id)).all()
    assert {e.source for e in session.scalars(select(ImitationExample))} == {"apprentice"}
    summary = apprentice.match_report(session)
    assert summary.positions == len(matches)
    assert summary.match_rate == pytest.approx(sum(matches) / len(matches))
    # Early on the policy's first pick is rarely the curator's; after imitating, it is.
    position_zero = [
        e.matched
        for e in session.scalars(select(ImitationExample).order_by(ImitationExample.id))
        if e.position == 0
    ]
    assert not position_zero[0] and sum(position_zero[-5:]) >= 4, position_zero


def test_hitl_learn_says_how_many_imitation_rounds_it_learned(
    session: Session,
    session_factory: sessionmaker[Session],  # the session commits, for the CLI to read
    demo_catalog: DemoCatalog,
    curator_account: tuple[str, str],
    database_url: str,
) -> None:
    runtime, context, curator_id, wanted = _setup(
        session, demo_catalog, curator_account, "apprentice"
    )
    session.rollback()
    _curate_towards(session, runtime, context, curator_id, wanted)
    session.commit()
    session.close()
    result = CliRunner().invoke(main, ["learn", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    # Apprentice mode learns no bandit round; before, the line read "learned 0 rounds".
    learned = re.search(r"learned 0 bandit rounds and (\d+) imitation rounds", result.output)
    assert learned is not None and int(learned.group(1)) >= 1, result.output
