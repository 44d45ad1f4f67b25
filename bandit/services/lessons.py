"""What curators' reviews taught the model: on a fixed probe set of recent contexts, how the
policy's scores of the items their verdicts touched differ between the pass's model and the
same pass learned without the rounds curators made, and which verdicts (by curator, verdict,
item category and customer segment) touched them.

A pass also learns customer outcomes, which move the same items; a before/after difference
would credit the curators with what customers did. The rounds curators make are the
curator-proxy rounds (an item a curator removed or swapped out before delivery) and the
imitation rounds (swap-ins, apprentice choices); a keep teaches the policy nothing (its
reward is what the customer does; it teaches the approval model), except in apprentice mode,
where a kept item is imitated as a swap-in is.

Items share features (category, brand, colour, ...), so a round moves the scores of items it
never chose: a kept item, or an item pushed the other way by its own round, still moves when
other items' rounds change those weights. Each row therefore stores which way the rounds that
chose its item pushed it (`details["taught"]`: a curator-proxy round's reward 0 down, an
imitation round's 1 up), and `moved_by_own_rounds` tells the rows those explain from the rows
only other items' reviews moved.

The all-curators rows compare with the pass learned without any curator's rounds. A
curator's own rows compare with the pass learned without that curator's rounds only (leave
one curator out), so another curator's swaps in the same pass are never theirs; a curator
who made no such round (only keeps, or verdicts a customer outcome overrode) moved nothing,
and needs no workspace. Each left-out curator costs one more policy load and re-learn of the
pass; past `MAX_CURATORS_MEASURED` in one pass (fewer when the pass is large, see
`RELEARN_BUDGET`), the curators who made fewest rounds show the all-curators change,
labelled as such.

Flushes, never commits: it runs inside the learner's transaction.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bandit.db.models import CuratorAction, Decision, ReviewLesson
from bandit.engine import vw_format
from bandit.engine.policy import VWPolicy
from bandit.engine.records import LoggedRound
from bandit.services.learner_cache import LearnerCache

PROBE_CONTEXTS = 20
TOP_ITEMS = 12
# A swap-in is recorded on the swapped-out item's action; this names the item it brought in.
SWAPPED_IN = "swapped_in"
# Leave-one-curator-out workspaces per pass: each is a policy load, a re-learn of the whole
# pass and a scoring of the probes (about 10 ms + 0.04 ms per pass round; docs/trust.md).
MAX_CURATORS_MEASURED = 5
# Rounds those workspaces may re-learn together in one pass, so a large pass (a backlog after
# the learner was down) measures fewer curators on their own; the first is always measured.
RELEARN_BUDGET = 5_000
# What a row's change compares the pass's policy with (`ReviewLesson.details["measure"]`).
WITHOUT_ALL_CURATORS = "without_all_curators"
WITHOUT_THIS_CURATOR = "without_this_curator"
NO_CURATOR_ROUNDS = "no_curator_rounds"
# Which way a round pushes the item it chose (`details["taught"]`), and the smallest change
# the page shows (three decimals): a smaller one is no move.
UP, DOWN = "up", "down"
VISIBLE_CHANGE = 0.0005
# Rows stored before `taught` was: the way each verdict's own round pushes its item.
_VERDICT_PUSHES = {"removed": DOWN, "swapped": DOWN, SWAPPED_IN: UP}


@dataclass(frozen=True)
class Probe:
    """The touched items and the probe contexts they are scored on."""

    item_ids: tuple[str, ...]
    categories: tuple[str, ...]
    lines: tuple[str, ...]
    contexts: tuple[dict[str, Any], ...]


def take_probe(
    session: Session, actions: Sequence[CuratorAction], cache: LearnerCache
) -> Probe | None:
    """Every item this pass's verdicts touched, and the most recent contexts."""
    touched = {a.item_id for a in actions}
    touched |= {a.replacement_item_id for a in actions if a.replacement_item_id}
    contexts = tuple(
        session.scalars(select(Decision.context).order_by(Decision.id.desc()).limit(PROBE_CONTEXTS))
    )
    items = cache.rows(session, touched)
    item_ids = tuple(sorted(items))
    if not item_ids or not contexts:
        return None
    lines = tuple(cache.line(session, i) or "" for i in item_ids)
    categories = tuple(items[i].category for i in item_ids)
    return Probe(item_ids, categories, lines, contexts)


def mean_scores(
    policy: VWPolicy, contexts: Sequence[dict[str, Any]], lines: Sequence[str]
) -> np.ndarray:
    """Each item's estimated reward averaged over the probe contexts."""
    return np.mean(
        [policy.score(vw_format.shared_line(c), list(lines))[1] for c in contexts], axis=0
    )


@dataclass(frozen=True)
class Changes:
    """Each probe item's change in mean score: all curators' rounds left out, and each
    measured curator's own left out."""

    team: dict[str, float]
    own: dict[int, dict[str, float]]
    # Curators who made rounds but were past the per-pass bound: shown with `team`.
    together: frozenset[int]


def measure_changes(
    probe: Probe,
    policy: VWPolicy,
    makers: Sequence[int | None],
    team_out: frozenset[int],
    learn_without: Callable[[frozenset[int]], VWPolicy],
) -> Changes:
    """The pass's `policy` against the pass learned without some of its rounds.

    `makers[i]` is the curator who made the pass's round i (None: a customer's, a default,
    a client service's choice); `team_out` the rounds the all-curators comparison leaves out;
    `learn_without(left_out)` a fresh policy that learned the pass's rounds but those, in
    the pass's order (closed here).
    """
    base = mean_scores(policy, probe.contexts, probe.lines)

    def change(left_out: frozenset[int]) -> dict[str, float]:
        without = learn_without(left_out)
        try:
            moved = base - mean_scores(without, probe.contexts, probe.lines)
        finally:
            without.close()
        return dict(zip(probe.item_ids, moved.tolist(), strict=True))

    made: dict[int, set[int]] = defaultdict(set)
    for index, curator in enumerate(makers):
        if curator is not None:
            made[curator].add(index)
    # The curators who made most rounds are measured first; ties by id, so runs agree.
    ranked = sorted(made, key=lambda c: (-len(made[c]), c))
    measured = max(1, min(MAX_CURATORS_MEASURED, RELEARN_BUDGET // max(1, len(makers))))
    team = change(team_out)
    own = {
        # The only curator who made rounds, with no client choices: the team comparison.
        c: team if made[c] == team_out else change(frozenset(made[c]))
        for c in ranked[:measured]
    }
    return Changes(team, own, frozenset(ranked[measured:]))


def _measure(changes: Changes, curator: int | None) -> tuple[str, dict[str, float]]:
    """What a curator's rows compare with, and the changes they show."""
    if curator is None or curator in changes.together:
        return WITHOUT_ALL_CURATORS, changes.team
    if curator in changes.own:
        return WITHOUT_THIS_CURATOR, changes.own[curator]
    return NO_CURATOR_ROUNDS, dict.fromkeys(changes.team, 0.0)


Taught = dict[tuple[int | None, str], set[str]]


def taught_directions(
    rounds: Sequence[LoggedRound], makers: Sequence[int | None], team_out: frozenset[int]
) -> Taught:
    """Which way the curator-made rounds of the pass pushed each item they chose, per curator
    (`makers`) and for all curators (key None: the rounds in `team_out`)."""
    taught: Taught = defaultdict(set)
    for index, round_ in enumerate(rounds):
        # A round pulls its item's score toward its reward: the proxy's 0, an imitation's 1.
        direction = UP if round_.reward > 0.5 else DOWN
        if index in team_out:
            taught[(None, round_.chosen_item_id)].add(direction)
        if makers[index] is not None:
            taught[(makers[index], round_.chosen_item_id)].add(direction)
    return taught


def verdict_push(verdict: str) -> str | None:
    """Which way the round a verdict makes pushes its item (None: a keep makes none)."""
    return _VERDICT_PUSHES.get(verdict)


def moved_by_own_rounds(change: float, details: dict[str, Any]) -> bool:
    """True when the rounds that chose the row's item explain its move (or it did not move);
    False when only other items' rounds, through shared features, can have moved it."""
    if abs(change) < VISIBLE_CHANGE:
        return True
    taught = details.get("taught")
    if taught is None:
        taught = [verdict_push(v) for v in details.get("verdicts", {})]
    return (UP if change > 0 else DOWN) in taught


def record_lessons(
    session: Session,
    probe: Probe,
    changes: Changes,
    actions: Sequence[CuratorAction],
    contexts: dict[int, dict[str, Any]],
    version: int,
    now: datetime,
    taught: Taught,
) -> list[ReviewLesson]:
    """Store the items curator feedback moved most, for everyone (all curators' rounds left
    out) and per curator (that curator's rounds left out), with which way the rounds that
    chose each item pushed it: up to TOP_ITEMS those rounds moved, and as many that only
    other items' rounds moved (flushes)."""
    category = dict(zip(probe.item_ids, probe.categories, strict=True))
    touches: dict[tuple[int | None, str], Counter[str]] = defaultdict(Counter)
    segments: dict[tuple[int | None, str], Counter[str]] = defaultdict(Counter)
    for action in actions:
        segment = str(contexts.get(action.decision_id, {}).get("segment", "all"))
        pairs = [(action.item_id, str(action.verdict))]
        if action.replacement_item_id:
            pairs.append((action.replacement_item_id, SWAPPED_IN))
        for item_id, verdict in pairs:
            for curator in (None, action.curator_id):
                touches[(curator, item_id)][verdict] += 1
                segments[(curator, item_id)][segment] += 1
    rows = []
    for curator in {key[0] for key in touches}:
        measure, moved = _measure(changes, curator)
        keys = [k for k in touches if k[0] == curator and k[1] in moved]
        keys.sort(key=lambda k: -abs(moved[k[1]]))
        # A row showing the all-curators change goes by all curators' rounds of its item.
        owner = None if measure == WITHOUT_ALL_CURATORS else curator
        pushed = {k: sorted(taught.get((owner, k[1]), ())) for k in keys}
        # The items each group moved most: those their own rounds moved, and those only
        # other items' rounds did (which would otherwise crowd the first out).
        own = {k for k in keys if moved_by_own_rounds(moved[k[1]], {"taught": pushed[k]})}
        chosen = [k for k in keys if k in own][:TOP_ITEMS]
        chosen += [k for k in keys if k not in own][:TOP_ITEMS]
        for key in chosen:
            item_id = key[1]
            rows.append(
                ReviewLesson(
                    model_version=version,
                    curator_id=curator,
                    item_id=item_id,
                    change=float(moved[item_id]),
                    verdicts=int(sum(touches[key].values())),
                    details={
                        "category": category[item_id],
                        "verdicts": dict(touches[key]),
                        "segments": dict(segments[key]),
                        "probe_contexts": len(probe.contexts),
                        "measure": measure,
                        "taught": pushed[key],
                    },
                    created_at=now,
                )
            )
    session.add_all(rows)
    session.flush()
    return rows


def lessons_for(
    session: Session, version: int | None, curator_id: int | None
) -> tuple[int | None, list[ReviewLesson]]:
    """The lessons of a model version (the latest with any if None), all or one curator's."""
    if version is None:
        version = session.scalar(
            select(ReviewLesson.model_version).order_by(ReviewLesson.model_version.desc())
        )
    if version is None:
        return None, []
    query = select(ReviewLesson).where(ReviewLesson.model_version == version)
    query = query.where(
        ReviewLesson.curator_id.is_(None)
        if curator_id is None
        else ReviewLesson.curator_id == curator_id
    )
    rows = session.scalars(query).all()
    return version, sorted(rows, key=lambda r: -abs(r.change))


def lesson_versions(session: Session) -> list[int]:
    """Model versions that have lessons, newest first."""
    return list(
        session.scalars(
            select(ReviewLesson.model_version)
            .distinct()
            .order_by(ReviewLesson.model_version.desc())
            .limit(50)
        )
    )
