"""Numbers behind the dashboards: volume by route, automation, verdict rates, queue, rewards."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bandit.db.models import CatalogItem, CuratorAction, Decision, Outcome, ProposedItem, ReviewTask
from bandit.engine.routing import ROUTES
from bandit.engine.vocabulary import CuratorVerdict, RewardSource, Route
from bandit.services import rounds

Series = dict[str, list[float]]


@dataclass(frozen=True)
class HourlySeries:
    """Values per hour (oldest first), one list per named line."""

    hours: list[datetime]
    lines: Series


HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _floor(moment: datetime, bucket: timedelta = HOUR) -> datetime:
    """The start of the bucket holding `moment` (buckets aligned to the UTC epoch)."""
    return _EPOCH + ((moment - _EPOCH) // bucket) * bucket


def _buckets(since: datetime, now: datetime, bucket: timedelta = HOUR) -> list[datetime]:
    start, end = _floor(since, bucket), _floor(now, bucket)
    count = int((end - start) / bucket) + 1
    return [start + i * bucket for i in range(count)]


def decisions_by_route(
    session: Session, since: datetime, now: datetime, bucket: timedelta = HOUR
) -> HourlySeries:
    """Decisions per bucket (an hour unless told), one line per route."""
    hours = _buckets(since, now, bucket)
    counts: Counter[tuple[datetime, str]] = Counter(
        (_floor(created, bucket), route)
        for created, route in session.execute(
            select(Decision.created_at, Decision.route).where(Decision.created_at >= since)
        )
    )
    return HourlySeries(hours, {r: [float(counts[(h, r)]) for h in hours] for r in ROUTES})


def automation_rate(series: HourlySeries) -> HourlySeries:
    """Share of each hour's decisions that went out with no human (the bootstrapping curve)."""
    totals = [sum(line[i] for line in series.lines.values()) for i in range(len(series.hours))]
    auto = series.lines.get(Route.AUTO, [0.0] * len(totals))
    rate = [a / t if t else float("nan") for a, t in zip(auto, totals, strict=True)]
    return HourlySeries(series.hours, {"automated share": rate})


def verdict_rates(
    session: Session, since: datetime, now: datetime, bucket: timedelta = HOUR
) -> HourlySeries:
    """Per bucket (an hour unless told), the share of reviewed positions kept, swapped and
    removed (first reviews only: a second, agreement-only review would count a position twice)."""
    hours = _buckets(since, now, bucket)
    counts: dict[datetime, Counter[str]] = defaultdict(Counter)
    for created, verdict in session.execute(
        select(CuratorAction.created_at, CuratorAction.verdict).where(
            CuratorAction.created_at >= since, CuratorAction.agreement_only.is_(False)
        )
    ):
        counts[_floor(created, bucket)][verdict] += 1
    lines: Series = {}
    for verdict in (CuratorVerdict.KEPT, CuratorVerdict.SWAPPED, CuratorVerdict.REMOVED):
        lines[verdict] = [
            counts[h][verdict] / sum(counts[h].values()) if counts[h] else float("nan")
            for h in hours
        ]
    return HourlySeries(hours, lines)


def queue_history(
    session: Session, since: datetime, now: datetime, bucket: timedelta = HOUR
) -> HourlySeries:
    """At the end of each bucket: tasks waiting (open or held), and the oldest one's wait (h).

    A task waits from its creation until its `completed_at`: reviewed, closed by the client, or
    overflowed (sent out or closed unreviewed by upkeep, or at intake when the queue was full);
    a held task is still waiting. So a past bucket reads the same before and after a task it
    counted overflows, and the longest waits (the SLA breaches) stay in the history.
    """
    hours = _buckets(since, now, bucket)
    spans = session.execute(
        select(ReviewTask.created_at, ReviewTask.completed_at).where(
            (ReviewTask.completed_at.is_(None)) | (ReviewTask.completed_at >= since)
        )
    ).all()
    depth, oldest = [], []
    for hour in hours:
        moment = min(hour + bucket, now)
        waiting = [c for c, done in spans if c <= moment and (done is None or done > moment)]
        depth.append(float(len(waiting)))
        oldest.append((moment - min(waiting)).total_seconds() / 3600 if waiting else 0.0)
    return HourlySeries(hours, {"tasks waiting": depth, "oldest wait (h)": oldest})


@dataclass(frozen=True)
class MeanReward:
    """A group's mean customer reward and the delivered positions it is the mean of."""

    mean: float
    positions: int


def mean_reward_by(session: Session, key: str) -> dict[str, MeanReward]:
    """Mean customer reward per delivered position, grouped by "policy" version or by
    customer "segment": what customers got.

    Every delivered position with a customer reward counts, curators' swap-ins and apprentice
    slates included, though those are no bandit round (`rounds.delivered_rewards`, the logged
    rounds' rule for what a position's reward is): a reward for the whole event counts once
    per position it covers, as the learner applies it, and a per-item reward once. Rewards
    stored after the reward wait, defaults and curator proxies are not customer rewards and
    are left out.
    """
    rewarded = select(Outcome.decision_id).where(Outcome.is_default.is_(False)).distinct()
    sums: dict[str, list[float]] = defaultdict(list)
    for found in rounds.delivered_rewards(session, session.scalars(rewarded).all()):
        if found.reward_source != RewardSource.CUSTOMER:
            continue
        label = (
            f"{found.policy_name} v{found.policy_version}"
            if key == "policy"
            else str(found.context.get("segment", "unknown"))
        )
        sums[label].append(found.reward)
    return {
        label: MeanReward(sum(values) / len(values), len(values))
        for label, values in sorted(sums.items())
    }


def catalog_coverage(session: Session) -> dict[str, float]:
    """Per category, the share of catalog items the policy ever proposed."""
    totals = dict(
        session.execute(
            select(CatalogItem.category, func.count()).group_by(CatalogItem.category)
        ).all()
    )
    proposed = dict(
        session.execute(
            select(CatalogItem.category, func.count(func.distinct(ProposedItem.item_id)))
            .join(CatalogItem, CatalogItem.item_id == ProposedItem.item_id)
            .group_by(CatalogItem.category)
        ).all()
    )
    return {category: proposed.get(category, 0) / total for category, total in totals.items()}
