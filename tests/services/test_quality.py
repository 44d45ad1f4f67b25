"""Curator quality: Cohen's kappa by hand, per-curator rates and drift, the admins' page."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import Decision, SlateVerification, utcnow
from bandit.engine import risk_control
from bandit.engine.quality import (
    SHIFT_GAP,
    ReviewRecord,
    agreement_by_pair,
    cohens_kappa,
    curator_stats,
    split_shifts,
)
from bandit.engine.vocabulary import VerificationOutcome
from bandit.services import accounts, curator_day, decisions, operations, review
from bandit.services.curator_quality import quality_report
from bandit.services.review.undo import undo_submit
from bandit.services.runtime import EngineRuntime
from tests.api_support import activate_config
from tests.conftest import DemoCatalog
from tests.curation_app.test_console import login
from tests.curation_app.test_settings import admin  # noqa: F401  (fixture)

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_kappa_on_a_three_by_three_table() -> None:
    """Rows: first reviewer; columns: second (kept, removed, swapped), 10 positions.

    kept    [4 1 0]  row sums 5, 3, 2; column sums 5, 3, 2
    removed [1 2 0]  p_o = (4 + 2 + 2) / 10 = 0.8
    swapped [0 0 2]  p_e = (5*5 + 3*3 + 2*2) / 100 = 0.38
                     kappa = (0.8 - 0.38) / (1 - 0.38) = 0.42 / 0.62 = 0.677419...
    """
    first = ["kept"] * 5 + ["removed"] * 3 + ["swapped"] * 2
    second = ["kept"] * 4 + ["removed"] + ["kept"] + ["removed"] * 2 + ["swapped"] * 2
    assert cohens_kappa(first, second) == pytest.approx(0.42 / 0.62)


def test_kappa_on_a_two_by_two_table() -> None:
    """kept/kept 5, kept/removed 1, removed/kept 2, removed/removed 2.

    p_o = 7/10; row sums 6, 4; column sums 7, 3; p_e = (6*7 + 4*3) / 100 = 0.54;
    kappa = (0.7 - 0.54) / 0.46 = 0.347826...
    """
    first = ["kept"] * 6 + ["removed"] * 4
    second = ["kept"] * 5 + ["removed"] + ["kept"] * 2 + ["removed"] * 2
    assert cohens_kappa(first, second) == pytest.approx(0.16 / 0.46)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (["kept"], [], "equal lengths"),
        (["kept"], ["maybe"], "labels not in"),
    ],
)
def test_kappa_refuses_bad_input(first: list[str], second: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cohens_kappa(first, second)


def test_kappa_is_undefined_without_data_or_variation() -> None:
    assert math.isnan(cohens_kappa([], []))
    assert math.isnan(cohens_kappa(["kept", "kept"], ["kept", "kept"]))


def record(
    task_id: int,
    curator: str,
    minutes: int,
    verdicts: list[str],
    *,
    decision_id: int | None = None,
    review_round: int = 1,
    seconds: float = 10.0,
    overturned: bool | None = None,
) -> ReviewRecord:
    """A finished review `minutes` into the shift; its own decision unless one is given."""
    return ReviewRecord(
        task_id=task_id,
        decision_id=task_id if decision_id is None else decision_id,
        review_round=review_round,
        curator=curator,
        completed_at=START + timedelta(minutes=minutes),
        seconds=seconds,
        verdicts=dict(enumerate(verdicts)),
        overturned=overturned,
    )


def test_per_curator_rates_and_drift_on_hand_made_reviews() -> None:
    records = [
        # ann: 6 positions, 3 kept, 2 removed, 1 swapped; verify-after: one of two overturned.
        record(1, "ann", 0, ["kept", "kept"], seconds=10.0),
        record(2, "ann", 5, ["kept", "removed"], seconds=20.0, overturned=False),
        record(3, "ann", 9, ["swapped", "removed"], seconds=40.0, overturned=True),
        # bob gives the second opinion on ann's first task: agrees on position 0 only.
        record(4, "bob", 7, ["kept", "removed"], decision_id=1, review_round=2),
    ]
    ann, bob = curator_stats(records)
    assert (ann.curator, ann.tasks, ann.positions) == ("ann", 3, 6)
    assert ann.acceptance_rate == pytest.approx(3 / 6)
    assert ann.removal_rate == pytest.approx(2 / 6)
    assert ann.swap_rate == pytest.approx(1 / 6)
    assert ann.override_rate == pytest.approx(1 / 2)
    assert ann.median_seconds == pytest.approx(20.0)
    assert (ann.acceptance_first_third, ann.acceptance_last_third) == (1.0, 0.0)
    assert (ann.seconds_first_third, ann.seconds_last_third) == (10.0, 40.0)
    assert math.isnan(bob.override_rate) and bob.tasks == 1
    (pair,) = agreement_by_pair(records)
    # first [kept, kept] vs second [kept, removed]: p_o = 0.5, p_e = (2*1 + 0*1) / 4 = 0.5.
    assert pair.curators == ("ann", "bob")
    assert (pair.positions, pair.observed, pair.kappa) == (2, 0.5, 0.0)


def test_agreement_over_a_shift_falls_when_late_reviews_disagree() -> None:
    records = []
    for index, late_verdict in enumerate(["kept", "kept", "removed"]):
        records.append(record(index, "cy", index * 60, ["kept"]))
        records.append(
            record(
                100 + index, "di", index * 60 + 5, [late_verdict], decision_id=index, review_round=2
            )
        )
    cy = curator_stats(records)[0]
    assert (cy.agreement_first_third, cy.agreement_last_third) == (1.0, 0.0)


def test_drift_compares_the_early_and_late_part_of_every_shift() -> None:
    """Three 8-hour shifts a day apart; in each, 20 tasks kept in 10 s, then 10 removed in 30 s.

    Split over all 90 tasks, the first third is shift 1 and the last third shift 3, each
    20 kept and 10 removed: 67% -> 67%, 10 s -> 10 s, and the fatigue is invisible. Split
    per shift and pooled, the first third of every shift is kept, the last third removed.
    """
    records = [
        record(
            day * 100 + k,
            "eve",
            day * 24 * 60 + 16 * k,
            ["kept" if k < 20 else "removed"],
            seconds=10.0 if k < 20 else 30.0,
        )
        for day in range(3)
        for k in range(30)
    ]
    (eve,) = curator_stats(records)
    assert eve.tasks == 90 and eve.acceptance_rate == pytest.approx(2 / 3)
    assert (eve.acceptance_first_third, eve.acceptance_last_third) == (1.0, 0.0)
    assert (eve.seconds_first_third, eve.seconds_last_third) == (10.0, 30.0)


def test_a_shift_ends_after_two_hours_without_a_submit() -> None:
    gap = int(SHIFT_GAP.total_seconds() // 60)
    minutes = [0, 30, 30 + gap - 1, 30 + 2 * gap - 1, 30 + 2 * gap]
    own = [record(i, "fay", m, ["kept"]) for i, m in enumerate(minutes)]
    assert [[r.task_id for r in shift] for shift in split_shifts(own)] == [[0, 1, 2], [3, 4]]


def test_short_shifts_are_left_out_of_drift_and_counted_elsewhere() -> None:
    """Shift 1: kept, kept, removed (10, 10, 30 s). Shift 2, the next day: two removed tasks."""
    records = [
        record(1, "gus", 0, ["kept"], seconds=10.0),
        record(2, "gus", 20, ["kept"], seconds=10.0),
        record(3, "gus", 40, ["removed"], seconds=30.0),
        record(4, "gus", 24 * 60, ["removed"], seconds=50.0),
        record(5, "gus", 24 * 60 + 20, ["removed"], seconds=50.0),
    ]
    (gus,) = curator_stats(records)
    assert (gus.tasks, gus.shifts, gus.shifts_compared) == (5, 2, 1)
    assert gus.acceptance_rate == pytest.approx(2 / 5)
    assert (gus.acceptance_first_third, gus.acceptance_last_third) == (1.0, 0.0)
    assert (gus.seconds_first_third, gus.seconds_last_third) == (10.0, 30.0)
    (lone,) = curator_stats(records[3:])
    assert lone.shifts_compared == 0 and math.isnan(lone.acceptance_first_third)


def test_one_long_shift_is_split_into_its_own_thirds() -> None:
    """Nine tasks 30 minutes apart: one shift, thirds of three tasks each."""
    verdicts = ["kept"] * 3 + ["swapped"] * 3 + ["removed"] * 3
    records = [record(i, "hal", 30 * i, [v], seconds=5.0 * (i + 1)) for i, v in enumerate(verdicts)]
    (hal,) = curator_stats(records)
    assert (hal.shifts, hal.shifts_compared) == (1, 1)
    assert (hal.acceptance_first_third, hal.acceptance_last_third) == (1.0, 0.0)
    assert (hal.seconds_first_third, hal.seconds_last_third) == (10.0, 40.0)


def test_agreement_drift_places_each_double_review_in_its_shift() -> None:
    """Two shifts of six tasks; only the first and the last task of each is reviewed again,
    agreeing early and disagreeing late in both shifts."""
    records = []
    for day in range(2):
        for k in range(6):
            task_id = day * 10 + k
            records.append(record(task_id, "ivy", day * 24 * 60 + 20 * k, ["kept"]))
            if k in (0, 5):
                second = "kept" if k == 0 else "removed"
                records.append(
                    record(100 + task_id, "jon", 0, [second], decision_id=task_id, review_round=2)
                )
    ivy = next(c for c in curator_stats(records) if c.curator == "ivy")
    assert (ivy.agreement_first_third, ivy.agreement_last_third) == (1.0, 0.0)


def _reviewed(
    session: Session,
    runtime: EngineRuntime,
    curator_id: int,
    context: dict[str, object],
    swap: bool,
    seconds: float,
) -> tuple[Decision, int]:
    """Rank for `context`, claim the task and submit: keep all, or swap position 0 in."""
    decision, _ = decisions.rank(session, runtime, decisions.RankRequest(context=context))
    session.commit()
    task = review.claim_next(session, curator_id)
    session.commit()
    assert task is not None and task.decision_id == decision.id
    _submit(session, task.id, curator_id, task.lease_token or "", decision, swap, seconds)
    return decision, task.id


def _submit(
    session: Session,
    task_id: int,
    curator_id: int,
    lease_token: str,
    decision: Decision,
    swap: bool,
    seconds: float,
) -> None:
    verdicts = [review.ItemVerdict(p.position, "keep") for p in decision.proposed]
    if swap:
        on_slate = {p.item_id for p in decision.proposed}
        spare = next(c["item_id"] for c in decision.candidates if c["item_id"] not in on_slate)
        verdicts[0] = review.ItemVerdict(0, "swap", spare, "better fit")
    assert review.submit_review(session, task_id, curator_id, lease_token, verdicts, seconds)
    session.commit()


def test_the_review_after_an_undo_is_no_override_and_the_undone_time_counts(
    session: Session, session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    """Review-before only: keep all five in 50 s, undo, swap one in 10 s.

    The resubmit is logged as a check of the delivered slate (corrected: the customer had the
    first slate), but it is no verify-after review, so there is no override rate; the task
    took the curator 50 + 10 = 60 s.
    """
    activate_config(session_factory, routing_mode="review_before", double_review_share=0.0)
    bob = accounts.add_curator(session, "bob", "long-enough-pw").id
    session.commit()
    decision, task_id = _reviewed(
        session, EngineRuntime(np.random.default_rng(0)), bob, demo_catalog.customers[0],
        swap=False, seconds=50.0,
    )  # fmt: skip
    task = undo_submit(session, task_id, bob)
    session.commit()
    _submit(session, task.id, bob, task.lease_token or "", decision, True, 10.0)
    outcomes = session.scalars(select(SlateVerification.outcome)).all()
    assert list(outcomes) == [VerificationOutcome.CORRECTED]
    (stats,) = quality_report(session, utcnow() - timedelta(days=1)).curators
    assert (stats.tasks, stats.positions, stats.swap_rate) == (1, 5, pytest.approx(1 / 5))
    assert math.isnan(stats.override_rate)
    assert stats.median_seconds == pytest.approx(60.0)
    assert curator_day.curator_day(session, bob).median_seconds == pytest.approx(60.0)
    # Nor is it evidence for the override bound on slates nobody reviewed before delivery.
    assert operations.loop_gauges(session, utcnow()).review_after_checks == 0


def test_verify_after_reviews_are_the_overrides_beside_an_undone_review_before(
    session: Session, session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    """One curator: an undone and corrected review-before task, then two review-after checks,
    one reinstating (kept all) and one overturning (a swap): overrides 1 of 2."""
    runtime = EngineRuntime(np.random.default_rng(0))
    activate_config(session_factory, routing_mode="review_before", double_review_share=0.0)
    cy = accounts.add_curator(session, "cy", "long-enough-pw").id
    session.commit()
    first, task_id = _reviewed(session, runtime, cy, demo_catalog.customers[0], False, 50.0)
    task = undo_submit(session, task_id, cy)
    session.commit()
    _submit(session, task.id, cy, task.lease_token or "", first, True, 10.0)
    activate_config(session_factory, routing_mode="review_after", double_review_share=0.0)
    for index, swap in enumerate((False, True)):
        _reviewed(session, runtime, cy, demo_catalog.customers[1 + index], swap, 20.0 + index)
    outcomes = session.scalars(select(SlateVerification.outcome)).all()
    assert sorted(outcomes) == ["corrected", "corrected", "reinstated"]
    (stats,) = quality_report(session, utcnow() - timedelta(days=1)).curators
    assert stats.tasks == 3 and stats.override_rate == pytest.approx(1 / 2)
    assert stats.median_seconds == pytest.approx(21.0)  # of 60, 20 and 21 s
    gauges = operations.loop_gauges(session, utcnow())
    assert gauges.review_after_checks == 2
    assert gauges.review_after_bound == pytest.approx(risk_control.upper_bound(1, 2, 0.9))


@pytest.fixture
def reviewed_twice(
    session: Session, session_factory: sessionmaker[Session], demo_catalog: DemoCatalog
) -> None:
    """One decision reviewed by "first-stylist" (all removed) and "second-stylist" (all kept)."""
    activate_config(session_factory, routing_mode="review_before", double_review_share=1.0)
    runtime = EngineRuntime(np.random.default_rng(0))
    decisions.rank(session, runtime, decisions.RankRequest(context=demo_catalog.customers[0]))
    session.commit()
    for username, verdict in (("first-stylist", "remove"), ("second-stylist", "keep")):
        curator_id = accounts.add_curator(session, username, "long-enough-pw").id
        session.commit()
        task = review.claim_next(session, curator_id)
        session.commit()
        assert task is not None
        verdicts = [review.ItemVerdict(p.position, verdict) for p in task.decision.proposed]
        review.submit_review(session, task.id, curator_id, task.lease_token or "", verdicts, 5.0)
        session.commit()


def test_quality_page_shows_admins_the_numbers(
    admin: FlaskClient,  # noqa: F811
    reviewed_twice: None,
) -> None:
    page = admin.get("/quality").get_data(as_text=True)
    assert 'id="quality-reviews">2<' in page and 'id="quality-double">1<' in page
    # All removed vs all kept: no agreement, and no chance agreement either, so kappa is 0.
    assert 'id="quality-kappa">0.00<' in page
    assert "first-stylist &amp; second-stylist" in page
    # The drift wording names the shift rule the engine uses; one task each is no shift to split.
    assert "shift ends when\n2 hours pass without a submit" in page
    assert "Shifts of fewer than 3 tasks" in page and "<td>0 of 1</td>" in page
    chart = admin.get("/quality/drift.svg")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    assert "/quality" in admin.get("/dashboard").get_data(as_text=True)


def test_quality_page_refuses_a_bad_window(admin: FlaskClient) -> None:  # noqa: F811
    response = admin.get("/quality?days=5")
    assert response.status_code == 400
    assert "days must be one of" in response.get_data(as_text=True)


def test_quality_page_is_for_admins_only(
    client: FlaskClient, curator_account: tuple[str, str]
) -> None:
    login(client, *curator_account)
    for path in ("/quality", "/quality/drift.svg"):
        assert client.get(path).status_code == 403
    assert "/quality" not in client.get("/").get_data(as_text=True)
