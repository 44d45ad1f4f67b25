"""What can go wrong with a review request; curation_app maps these to HTTP answers."""

from __future__ import annotations


class ReviewError(Exception):
    """A review request cannot be honoured (the request itself is wrong)."""


class TaskNotFound(ReviewError):
    """No task has that id."""


class LeaseLost(ReviewError):
    """The curator does not (or no longer) hold the task's lease."""


class SameCurator(ReviewError):
    """A second review by the curator who gave the first: it would not be independent."""


LOST_LEASE = (
    "this task is no longer leased to you (your lease ran out, or it was released or taken "
    "over); nothing was saved"
)
