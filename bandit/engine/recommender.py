"""The engine facade: prune, score with the policy, draw a slate, measure, route."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from bandit.engine import explain as explanation
from bandit.engine import uncertainty, vw_format
from bandit.engine.approval import ApprovalModel
from bandit.engine.catalog import CatalogIndex
from bandit.engine.config import PolicyConfig
from bandit.engine.policy import VWPolicy
from bandit.engine.pruning import CandidateSet, prescore_parts, prune
from bandit.engine.records import Candidate, Proposal, SlateItem
from bandit.engine.routing import risk_route, route_for
from bandit.engine.slate import draw_slate
from bandit.engine.vocabulary import ReasonCode, Route, RoutingMode


class _TrustRoute(NamedTuple):
    route: str
    approval_probability: float | None
    auto_threshold: float | None
    audit: bool
    audit_probability: float


class NoEligibleItems(LookupError):
    """The filters left nothing to propose."""


class Recommender:
    """Proposes slates for contexts; holds no database handle and never learns."""

    def __init__(
        self,
        catalog: CatalogIndex,
        config: PolicyConfig,
        policy: VWPolicy,
        rng: np.random.Generator,
        action_lines: vw_format.ActionLines | None = None,
        approval: ApprovalModel | None = None,
        auto_threshold: float | None = None,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.policy = policy
        self._rng = rng
        # Shared across requests by the runtime, so each item's VW text is formatted once.
        self._action_lines = action_lines or vw_format.ActionLines(catalog)
        # Risk-controlled routing: the calibrated approval model and the threshold in force.
        self.approval = approval
        self.auto_threshold = auto_threshold

    def propose(
        self,
        context: Mapping[str, Any],
        exclude: Sequence[str] = (),
        slate_size: int | None = None,
        explain: bool = False,
    ) -> Proposal:
        """A slate for `context`, with logged probabilities, uncertainty and route.

        `explain` also computes each slate item's feature contributions (`why`); left off, a
        request costs one VW predict per slate position instead of one more over ~23
        leave-one-out variants per item, and `explanations` can supply them later.
        """
        config = self.config
        candidates = prune(
            self.catalog,
            context,
            exclude,
            config.candidate_count,
            config.exploration_slot_share,
            self._rng,
        )
        if candidates.indices.size == 0:
            raise NoEligibleItems("no catalog item is eligible for this request")
        indices = candidates.indices.tolist()  # Python ints index lists faster than numpy's
        # The context's features are formatted once, for the decision and the explanation.
        context_features = vw_format.context_features(context)
        shared = vw_format.shared_line_of(context_features)
        actions = self._action_lines.lines(indices)
        with self.policy.scoring(shared, actions) as score_subset:
            first_pmf, scores = score_subset(np.arange(len(actions)))

            def pmf_over(remaining: np.ndarray) -> np.ndarray:
                if remaining.size == len(actions):
                    return first_pmf
                return score_subset(remaining)[0]

            size = slate_size or config.slate_size
            draw = draw_slate(pmf_over, len(actions), size, self._rng)
        measures = uncertainty.all_measures(
            uncertainty.confidence_distribution(scores, config.uncertainty_temperature)
        )
        if config.algorithm == "bag":
            measures |= uncertainty.committee_measures(first_pmf, config.bag_size, config.epsilon)
        confidence = 1.0 - measures[config.uncertainty_measure]
        reasons = self._reasons(candidates, scores, draw.chosen, context)
        catalog_rows = self.catalog.rows
        picked = [catalog_rows[indices[pick]] for pick in draw.chosen.tolist()]
        # Outside the scoring block: explaining scores with the policy takes its lock again.
        why = (
            explanation.explain_features(self.policy, context_features, picked)
            if explain
            else [()] * len(draw.chosen)
        )
        slate = []
        for position, (pick, p_position, pmf) in enumerate(
            zip(draw.chosen, draw.position_probability, draw.pmfs, strict=True)
        ):
            # Exploratory: entered through a slot, or not the policy's most likely item here.
            explored = bool(candidates.exploration_slot[pick] or p_position < pmf.max() - 1e-9)
            p_candidate = float(candidates.candidate_probability[pick])
            slate.append(
                SlateItem(
                    position=position,
                    item_id=picked[position].item_id,
                    probability=p_candidate * float(p_position),
                    candidate_probability=p_candidate,
                    position_probability=float(p_position),
                    score=float(scores[pick]),
                    explored=explored,
                    reasons=tuple(
                        reasons[position]
                        + ([(ReasonCode.EXPLORATION_PICK, 1.0)] if explored else [])
                    ),
                    why=tuple((c.feature, c.weight) for c in why[position]),
                )
            )
        trust = self._trust_route(context, candidates.indices[draw.chosen], confidence)
        return Proposal(
            # tolist() turns each column into Python numbers in one call, not K x 5 calls, and
            # tuple.__new__ skips the named tuple's Python-level __new__ (a third of the cost).
            candidates=tuple(
                map(
                    tuple.__new__,
                    repeat(Candidate, len(indices)),
                    zip(
                        self.catalog.item_ids[candidates.indices].tolist(),
                        # asarray: no copy of the columns already of that type
                        np.asarray(candidates.candidate_probability, dtype=float).tolist(),
                        np.asarray(candidates.prescores, dtype=float).tolist(),
                        np.asarray(candidates.exploration_slot, dtype=bool).tolist(),
                        first_pmf.tolist(),
                        scores.tolist(),
                        strict=True,
                    ),
                )
            ),
            slate=tuple(slate),
            position_pmfs=tuple(tuple(pmf.tolist()) for pmf in draw.pmfs),
            uncertainty=measures,
            confidence=confidence,
            route=trust.route,
            explained=explain,
            approval_probability=trust.approval_probability,
            auto_threshold=trust.auto_threshold,
            audit=trust.audit,
            audit_probability=trust.audit_probability,
        )

    def _trust_route(
        self, context: Mapping[str, Any], picks: np.ndarray, confidence: float
    ) -> _TrustRoute:
        config = self.config
        if config.routing_mode != RoutingMode.RISK_CONTROLLED:
            return _TrustRoute(route_for(confidence, config), None, None, False, 0.0)
        model = self.approval
        approval = (
            None
            if model is None
            else model.slate_probability(context, self._action_lines.lines(picks))
        )
        # An uncalibrated model has no evidence behind it: it routes but never automates.
        threshold = self.auto_threshold if model is not None and model.calibrated else None
        route = risk_route(approval, threshold, config)
        if route != Route.AUTO:
            return _TrustRoute(route, approval, threshold, False, 0.0)
        audit = bool(self._rng.random() < config.audit_share)
        return _TrustRoute(
            Route.REVIEW_AFTER if audit else Route.AUTO,
            approval,
            threshold,
            audit,
            config.audit_share,
        )

    def explanations(
        self, context: Mapping[str, Any], item_ids: Sequence[str]
    ) -> list[tuple[tuple[str, float], ...]]:
        """The `why` of each of `item_ids` for `context` under this policy (lost items: ())."""
        rows = [self.catalog.row(item_id) for item_id in item_ids]
        known = [row for row in rows if row is not None]
        found = iter(explanation.explain(self.policy, context, known))
        return [
            () if row is None else tuple((c.feature, c.weight) for c in next(found)) for row in rows
        ]

    def _reasons(
        self,
        candidates: CandidateSet,
        scores: np.ndarray,
        picks: np.ndarray,
        context: Mapping[str, Any],
    ) -> list[list[tuple[str, float]]]:
        """Reason codes with their numbers per slate pick (only picks are ever shown)."""
        parts = prescore_parts(self.catalog, context, candidates.indices[picks], candidates.terms)
        reasons = []
        for j, pick in enumerate(picks):
            value = {name: float(column[j]) for name, column in parts.items()}
            codes: list[tuple[str, float]] = []
            if value.get("style", 0.0) > 0:
                codes.append((ReasonCode.STYLE_MATCH, value["style"]))
            if value.get("category", 0.0) > 0:
                codes.append((ReasonCode.FAVOURITE_CATEGORY, value["category"]))
            if value.get("budget", 0.0) < 0:
                codes.append((ReasonCode.ABOVE_BUDGET, value["budget"]))
            if "taste" in value:
                codes.append((ReasonCode.TASTE_MATCH, value["taste"]))
            if value.get("learned", 0.0) > 0.05:
                codes.append((ReasonCode.CURATORS_KEEP, value["learned"]))
            if candidates.exploration_slot[pick]:
                codes.append((ReasonCode.EXPLORATION_SLOT, 1.0))
            codes.append((ReasonCode.EXPECTED_REWARD, float(scores[pick])))
            reasons.append(codes)
        return reasons
