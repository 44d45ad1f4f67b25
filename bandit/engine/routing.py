"""Routing: a pure function of the policy's confidence and the policy config."""

from __future__ import annotations

from bandit.engine.config import PolicyConfig
from bandit.engine.vocabulary import Route, RoutingMode

ROUTES = tuple(Route)


def route_for(confidence: float, config: PolicyConfig) -> Route:
    """Who acts on a decision: nobody, a curator before output, or a curator after output."""
    if config.routing_mode in (RoutingMode.REVIEW_BEFORE, RoutingMode.APPRENTICE):
        return Route.REVIEW_BEFORE
    if config.routing_mode == RoutingMode.REVIEW_AFTER:
        return Route.REVIEW_AFTER
    if confidence >= config.auto_threshold:
        return Route.AUTO
    if confidence >= config.review_threshold:
        return Route.REVIEW_AFTER
    return Route.REVIEW_BEFORE


def risk_route(approval: float | None, auto_threshold: float | None, config: PolicyConfig) -> Route:
    """Risk-controlled routing on the slate's approval probability.

    Auto at or above the threshold the evidence allows (None: nothing is automated), else
    review-after at or above the manual `review_threshold`, else review-before.
    """
    if approval is None:
        return Route.REVIEW_BEFORE
    if auto_threshold is not None and approval >= auto_threshold:
        return Route.AUTO
    if approval >= config.review_threshold:
        return Route.REVIEW_AFTER
    return Route.REVIEW_BEFORE
