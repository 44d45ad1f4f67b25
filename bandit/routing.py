"""Routing: a pure function of the policy's confidence and the policy config."""

from __future__ import annotations

from bandit.config import PolicyConfig

AUTO = "auto"
REVIEW_BEFORE = "review_before"
REVIEW_AFTER = "review_after"
ROUTES = (AUTO, REVIEW_BEFORE, REVIEW_AFTER)


def route_for(confidence: float, config: PolicyConfig) -> str:
    """Who acts on a decision: nobody, a curator before output, or a curator after output."""
    if config.routing_mode in (REVIEW_BEFORE, "apprentice"):
        return REVIEW_BEFORE
    if config.routing_mode == REVIEW_AFTER:
        return REVIEW_AFTER
    if confidence >= config.auto_threshold:
        return AUTO
    if confidence >= config.review_threshold:
        return REVIEW_AFTER
    return REVIEW_BEFORE
