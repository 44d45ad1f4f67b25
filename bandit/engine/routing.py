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
