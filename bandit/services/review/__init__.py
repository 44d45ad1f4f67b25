"""The review queue: intake and order, leased claims, verdicts, overflow and double review.

The package's public facade; each concern lives in its own module.
"""

from bandit.services.review.claims import (
    Claim,
    claim_next,
    claim_task,
    held_task,
    release,
    renew_lease,
)
from bandit.services.review.errors import LeaseLost, ReviewError, SameCurator, TaskNotFound
from bandit.services.review.verdicts import ItemVerdict, Submitted, submit_review, submit_verdicts

__all__ = [
    "Claim",
    "claim_task",
    "ItemVerdict",
    "LeaseLost",
    "ReviewError",
    "SameCurator",
    "TaskNotFound",
    "claim_next",
    "held_task",
    "release",
    "renew_lease",
    "submit_review",
    "submit_verdicts",
    "Submitted",
]
