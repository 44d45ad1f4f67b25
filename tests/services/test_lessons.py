"""What reviews taught the model: a lesson's change is what curator feedback moved, not what
the customers' outcomes learned in the same pass moved."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import ModelVersion, ReviewLesson
from bandit.engine.config import PolicyConfig
from bandit.services import accounts, configs, decisions, learning, lessons, review, rewards
from bandit.services.delivery import delivered_slate
from bandit.services.lessons import Probe
from bandit.services.review import ItemVerdict
from bandit.services.runtime import EngineRuntime
from curation_app import lessons as lessons_page
from tests.conftest import DemoCatalog

DECISIONS = 8


def _reviewed_pass(session: Session, catalog: DemoCatalog, mode: str, swap: bool) -> None:
    """Rank, review every slate (keep all, or swap the first item in), let customers keep
    every item they received, then run one learn pass."""
    config = PolicyConfig(routing_mode=mode, slate_size=3, candidate_count=10)
    configs.save_config(session, config, created_by="test", activate=True)
    curator = accounts.add_curator(session, "lesson-curator", "lesson-password-1")
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(5))
    for context in catalog.customers[:DECISIONS]:
        decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
        session.commit()
        task = review.claim_next(session, curator.id)
        session.commit()
        assert task is not None
        slate = [p.item_id for p in decision.proposed]
        verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
        if swap:
            spare = next(c["item_id"] for c in decision.candidates if c["item_id"] not in slate)
            verdicts[0] = ItemVerdict(0, "swap", spare, "closer to the brief")
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 9.0)
        session.commit()
        session.refresh(decision)
        received = [entry["item_id"] for entry in delivered_slate(decision)]
        rewards.record_rewards(session, decision.event_id, [(i, 1.0) for i in received], "shop")
        session.commit()
    report = learning.learn_pending(session)
    session.commit()
    assert report.rounds_learned > 0  # the customers' outcomes were learned in this pass


def test_kept_items_show_no_change_though_customers_taught_the_policy_about_them(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    # Review after delivery, every item kept: the verdicts are approval labels only; the
    # policy learned the customers' outcomes, which are not the curators' doing.
    _reviewed_pass(session, demo_catalog, "review_after", swap=False)
    lessons = session.scalars(select(ReviewLesson)).all()
    assert lessons
    assert all(lesson.details["verdicts"] == {"kept": lesson.verdicts} for lesson in lessons)
    assert max(abs(lesson.change) for lesson in lessons) < 1e-9


@pytest.mark.parametrize("mode", ["review_before", "review_after"])
def test_swaps_move_the_items_they_touched(
    session: Session, demo_catalog: DemoCatalog, mode: str
) -> None:
    # A swap-in is an imitation round, and a swap before delivery a curator-proxy round: both
    # change the policy, so the items they touched move (either way: one verdict can pull a
    # shared feature down for another item).
    _reviewed_pass(session, demo_catalog, mode, swap=True)
    lessons = session.scalars(select(ReviewLesson).where(ReviewLesson.curator_id.is_(None))).all()
    swapped = [
        lesson for lesson in lessons if {"swapped", "swapped_in"} & set(lesson.details["verdicts"])
    ]
    assert swapped and max(abs(lesson.change) for lesson in swapped) > 1e-3


@pytest.mark.parametrize(
    ("change", "direction"),
    [(0.0, "unchanged"), (0.0004, "unchanged"), (0.02, "up"), (-0.3, "down")],
)
def test_the_page_calls_a_move_below_its_precision_unchanged(change: float, direction: str) -> None:
    row = ReviewLesson(
        item_id="sku-1", change=change, verdicts=1, details={"verdicts": {"kept": 1}}
    )
    assert lessons_page._words(row, yours=True).direction == direction


def _two_curator_pass(
    session: Session, catalog: DemoCatalog, learn: bool = True
) -> tuple[int, int]:
    """One review-before pass: Anna keeps every item of four slates; Ben swaps the first and
    removes the second item of four others (then learned, unless not `learn`). Returns their
    ids."""
    config = PolicyConfig(routing_mode="review_before", slate_size=3, candidate_count=10)
    configs.save_config(session, config, created_by="test", activate=True)
    anna = accounts.add_curator(session, "anna-keeps", "anna-password-1")
    ben = accounts.add_curator(session, "ben-swaps", "ben-password-12")
    session.commit()
    runtime = EngineRuntime(np.random.default_rng(5))
    for k, context in enumerate(catalog.customers[:DECISIONS]):
        decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
        session.commit()
        curator = anna if k < DECISIONS // 2 else ben
        task = review.claim_next(session, curator.id)
        session.commit()
        assert task is not None
        verdicts = [ItemVerdict(p.position, "keep") for p in decision.proposed]
        if curator is ben:
            slate = [p.item_id for p in decision.proposed]
            spare = next(c["item_id"] for c in decision.candidates if c["item_id"] not in slate)
            verdicts[0] = ItemVerdict(0, "swap", spare, "closer to the brief")
            verdicts[1] = ItemVerdict(1, "remove")
        review.submit_review(session, task.id, curator.id, task.lease_token or "", verdicts, 9.0)
        session.commit()
    if learn:
        learning.learn_pending(session)
        session.commit()
    return anna.id, ben.id


def test_a_curator_who_only_kept_is_not_credited_with_another_curators_swaps(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    # Each curator's row is what the pass would have proposed differently without that
    # curator's own rounds: Anna's keeps made none, so nothing moved because of her.
    anna, ben = _two_curator_pass(session, demo_catalog)
    rows = session.scalars(select(ReviewLesson)).all()
    team = {r.item_id: r.change for r in rows if r.curator_id is None}
    annas = [r for r in rows if r.curator_id == anna]
    bens = [r for r in rows if r.curator_id == ben]
    assert max(abs(team[i]) for i in team) > 1e-3  # Ben's swaps and removals moved items
    assert all(abs(r.change) < 1e-9 for r in annas)
    # Anna made no rounds: the pass without Ben's is the pass without any curator's.
    assert bens and max(abs(r.change) for r in bens) > 1e-3
    assert all(abs(r.change - team[r.item_id]) < 1e-9 for r in bens if r.item_id in team)


def test_items_only_other_items_reviews_moved_are_told_apart_from_those_their_own_moved(
    session: Session, demo_catalog: DemoCatalog
) -> None:
    # Ben's swap-ins (reward 1) push their items up and his swaps out and removals (reward 0)
    # push theirs down; every item also moves through the features it shares with the
    # others, Anna's kept items included, which their keeps did not move.
    _two_curator_pass(session, demo_catalog)
    team = session.scalars(select(ReviewLesson).where(ReviewLesson.curator_id.is_(None))).all()
    pushes = {"kept": set(), "swapped_in": {"up"}, "removed": {"down"}, "swapped": {"down"}}
    for row in team:
        assert set(row.details["taught"]) == set().union(
            *(pushes[v] for v in row.details["verdicts"])
        )
    kept_only = [r for r in team if set(r.details["verdicts"]) == {"kept"}]
    moved = [r for r in kept_only if abs(r.change) >= lessons.VISIBLE_CHANGE]
    assert moved  # shared features move kept items on this log
    assert not any(lessons.moved_by_own_rounds(r.change, r.details) for r in moved)
    words = [lessons_page._words(r, yours=False) for r in team]
    causes = {"up": ("swaps in",), "down": ("removals", "swaps out")}
    for line in words:
        if line.own and line.direction != "unchanged":
            cause = line.because.split(";")[0]  # what follows is "also ..., which did not"
            assert "keeps" not in cause and any(c in cause for c in causes[line.direction])
    assert any(line.own for line in words) and any(not line.own for line in words)


class _FakePolicy:
    """Scores item k as the sum of the rounds it learned, weighted by k + 1."""

    def __init__(self, learned: frozenset[int]) -> None:
        self.learned, self.closed = learned, False

    def score(self, shared: str, lines: list[str]) -> tuple[None, list[float]]:
        return None, [(k + 1) * sum(i + 1 for i in self.learned) for k in range(len(lines))]

    def close(self) -> None:
        self.closed = True


def _fake_probe() -> Probe:
    return Probe(("sku-a", "sku-b"), ("top", "top"), ("a", "b"), ({"segment": "x"},))


def test_each_curator_is_compared_with_the_pass_without_their_own_rounds_only() -> None:
    # Rounds 0-4: 0 a customer's, 1 and 2 curator 7's, 3 curator 9's, 4 a client's choice.
    makers = [None, 7, 7, 9, None]
    asked: list[frozenset[int]] = []
    opened: list[_FakePolicy] = []

    def learn_without(left_out: frozenset[int]) -> Any:
        asked.append(left_out)
        opened.append(_FakePolicy(frozenset(range(5)) - left_out))
        return opened[-1]

    full = _FakePolicy(frozenset(range(5)))
    changes = lessons.measure_changes(
        _fake_probe(), cast(Any, full), makers, frozenset({1, 2, 3, 4}), learn_without
    )
    assert asked == [frozenset({1, 2, 3, 4}), frozenset({1, 2}), frozenset({3})]
    assert all(p.closed for p in opened) and not full.closed
    assert changes.team == {"sku-a": 14.0, "sku-b": 28.0}  # rounds 2+3+4+5 of weight
    assert changes.own == {7: {"sku-a": 5.0, "sku-b": 10.0}, 9: {"sku-a": 4.0, "sku-b": 8.0}}
    assert changes.together == frozenset()


def test_past_the_bound_curators_who_made_fewest_rounds_show_all_curators_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lessons, "MAX_CURATORS_MEASURED", 1)
    changes = lessons.measure_changes(
        _fake_probe(),
        cast(Any, _FakePolicy(frozenset(range(4)))),
        [9, 7, 7, None],
        frozenset({0, 1, 2}),
        lambda left_out: cast(Any, _FakePolicy(frozenset(range(4)) - left_out)),
    )
    assert set(changes.own) == {7} and changes.together == frozenset({9})
    # A pass too large for the budget still measures its busiest curator.
    monkeypatch.setattr(lessons, "MAX_CURATORS_MEASURED", 5)
    monkeypatch.setattr(lessons, "RELEARN_BUDGET", 3)
    changes = lessons.measure_changes(
        _fake_probe(),
        cast(Any, _FakePolicy(frozenset(range(4)))),
        [9, 7, 7, None],
        frozenset({0, 1, 2}),
        lambda left_out: cast(Any, _FakePolicy(frozenset(range(4)) - left_out)),
    )
    assert set(changes.own) == {7} and changes.together == frozenset({9})


def test_the_rows_of_a_curator_past_the_bound_say_so(
    session: Session, demo_catalog: DemoCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lessons, "MAX_CURATORS_MEASURED", 0)  # the busiest is still measured
    monkeypatch.setattr(lessons, "RELEARN_BUDGET", 0)
    anna, ben = _two_curator_pass(session, demo_catalog)
    measures = {(r.curator_id, r.details["measure"]) for r in session.scalars(select(ReviewLesson))}
    assert measures == {
        (None, lessons.WITHOUT_ALL_CURATORS),
        (anna, lessons.NO_CURATOR_ROUNDS),
        (ben, lessons.WITHOUT_THIS_CURATOR),
    }


def test_lessons_leave_the_saved_models_bit_identical(
    session: Session, demo_catalog: DemoCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same pass learned with lessons, rolled back, then learned without them.
    _two_curator_pass(session, demo_catalog, learn=False)
    saved = []
    for with_lessons in (True, False):
        if not with_lessons:
            monkeypatch.setattr(lessons, "take_probe", lambda *args, **kwargs: None)
        outer = session.begin_nested()
        learning.learn_pending(session)
        model = session.scalars(select(ModelVersion).order_by(ModelVersion.version.desc())).first()
        assert model is not None
        saved.append((model.model_bytes, model.approval_bytes))
        assert bool(session.scalars(select(ReviewLesson)).first()) == with_lessons
        outer.rollback()
        session.expunge_all()  # the rolled-back version 1 is not the next pass's
    assert saved[0] == saved[1]
