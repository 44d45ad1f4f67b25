"""Which signal a replay estimates: the customer's outcome, the curator's verdict, or a blend.

Customer outcomes and curator verdicts are kept apart (docs/log-format.md): `reward` holds
the logged round's reward and `reward_source` says whose it is (`customer`; `curator_proxy`
where no customer outcome can exist, an item removed or swapped out before delivery, carrying
the curator's verdict as the documented stand-in of `bandit.services.rounds`; `default` when
the wait ran out); `late_reward` a customer outcome that arrived after the wait ran out;
`curator_verdict` (or a numeric `curator_reward`) the curator's verdict wherever a curator
reviewed the item (kept 1, removed or swapped 0).

- `customer` (default): `reward` as logged, except that a `default` round whose customer
  outcome arrived late takes that outcome (the customer did answer; only the learner could
  not wait). Curator stand-ins stay where no customer outcome can exist, and the per-source
  split shows how much of the value they carry.
- `curator`: `curator_reward`, on the events whose every position was reviewed (the others
  have no verdict to replay). Reviewed events are the ones routing sent to a human, so this
  value describes those events, not all of them.
- `blend`: weight x customer + (1 - weight) x curator where both exist, the customer's alone
  elsewhere.

The chosen log's `reward_source` says whose judgement its new `reward` is, so that the
per-source split describes the signal estimated: `customer (late)` for a late outcome,
`curator` for every row under `curator`, `<logged source>+curator` for a blended row.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from bandit.engine.vocabulary import CuratorVerdict, RewardSource
from bandit.ope.log_format import KeyedRows, LogFormatError, ReplayLog

CUSTOMER = "customer"
CURATOR = "curator"
BLEND = "blend"
REWARD_CHOICES = (CUSTOMER, CURATOR, BLEND)
CURATOR_REWARD = "curator_reward"
CURATOR_VERDICT = "curator_verdict"
LATE_REWARD = "late_reward"
LATE_CUSTOMER = f"{RewardSource.CUSTOMER.value} (late)"
VERDICT_REWARD = {
    CuratorVerdict.KEPT.value: 1.0,
    CuratorVerdict.REMOVED.value: 0.0,
    CuratorVerdict.SWAPPED.value: 0.0,
}


def _curator_rewards(log: ReplayLog) -> np.ndarray:
    """The curator's verdict as a reward per row, NaN where no curator reviewed the item."""
    values = log.column(CURATOR_REWARD)
    if values is None:
        verdicts = log.column(CURATOR_VERDICT)
        if verdicts is None:
            raise LogFormatError(
                f"log: --reward curator and blend need the column {CURATOR_VERDICT} (kept, "
                f"removed, swapped) or {CURATOR_REWARD} (a number), empty where no curator "
                "reviewed the item"
            )
        return np.array([VERDICT_REWARD.get(str(v), np.nan) for v in verdicts], dtype=float)
    numbers = np.array([np.nan if v is None else v for v in values], dtype=float)
    bad = ~np.isnan(numbers) & ~np.isfinite(numbers)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise LogFormatError(
            f"log: column {CURATOR_REWARD} must hold finite numbers; first bad row {first + 1}"
        )
    return numbers


def choose_reward(log: ReplayLog, choice: str, blend_weight: float = 0.5) -> ReplayLog:
    """The log with the chosen signal in `reward` (and only the rows that have it)."""
    if choice not in REWARD_CHOICES:
        raise ValueError(f"reward: one of {', '.join(REWARD_CHOICES)}; got {choice!r}")
    if not 0.0 <= blend_weight <= 1.0:
        raise ValueError(f"blend weight: must be in [0, 1]; got {blend_weight}")
    if choice == CUSTOMER:
        return _with_late_customer_rewards(log)
    curator = _curator_rewards(log)
    reviewed = ~np.isnan(curator)
    if choice == BLEND:
        customer = _with_late_customer_rewards(log)
        mixed = np.where(
            reviewed, blend_weight * customer.reward + (1 - blend_weight) * curator, customer.reward
        )
        sources = customer.reward_source
        if sources is not None:
            blended = np.char.add(sources.astype(str), f"+{CURATOR}").astype(object)
            sources = np.where(reviewed, blended, sources)
        return replace(customer, reward=mixed, reward_source=sources)
    missing_events = np.unique(log.event[~reviewed])
    keep = ~np.isin(log.event, missing_events)
    if not keep.any():
        raise LogFormatError("log: --reward curator: no event has a curator verdict on every item")
    # Every remaining reward is the curator's verdict, whatever the round logged.
    return replace(
        _subset(log, keep),
        reward=curator[keep],
        reward_source=np.full(int(keep.sum()), CURATOR, dtype=object),
    )


def _with_late_customer_rewards(log: ReplayLog) -> ReplayLog:
    late = log.column(LATE_REWARD)
    if late is None or log.reward_source is None:
        return log
    numbers = np.array([np.nan if v is None else v for v in late], dtype=float)
    use = (log.reward_source == RewardSource.DEFAULT.value) & np.isfinite(numbers)
    if not use.any():
        return log
    return replace(
        log,
        reward=np.where(use, numbers, log.reward),
        reward_source=np.where(use, LATE_CUSTOMER, log.reward_source),
    )


def _subset(log: ReplayLog, keep: np.ndarray) -> ReplayLog:
    """The log restricted to the rows in `keep`, candidates re-indexed to the new rows."""
    new_row = np.cumsum(keep) - 1
    candidates = log.candidates
    if candidates is not None:
        mine = keep[candidates.row]
        candidates = KeyedRows(
            new_row[candidates.row[mine]], candidates.action[mine], candidates.probability[mine]
        )
    taken = np.flatnonzero(keep)

    def pick(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[keep]

    return replace(
        log,
        rounds=log.rounds.take(pa.array(taken)),
        event=log.event[keep],
        position=log.position[keep],
        action=log.action[keep],
        reward=log.reward[keep],
        propensity=log.propensity[keep],
        candidates=candidates,
        marginal_propensity=pick(log.marginal_propensity),
        reward_source=pick(log.reward_source),
    )


def per_source(log: ReplayLog, terms: np.ndarray) -> dict[str, dict[str, float]]:
    """The estimate's per-row terms split by `reward_source` (whose judgement the replayed
    reward is, after `choose_reward`): each source's share of the value (they add up to the
    estimate before any clipping to the reward range) and of the rows."""
    if log.reward_source is None:
        return {}
    out = {}
    for source in sorted({str(s) for s in log.reward_source}):
        mine = log.reward_source == source
        out[source] = {
            "contribution": float(terms[mine].sum() / terms.size),
            "rows": int(mine.sum()),
        }
    return out
