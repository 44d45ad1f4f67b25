"""What can go wrong with a review request; curation_app maps these to HTTP answers."""

from __future__ import annotations


class ReviewError(Exception):
    """A review request cannot be honoured (the request itself is wrong)."""


class PositionError(ReviewError):
    """A verdict for one slate position is wrong; `position` counts from 0, as stored."""

    def __init__(self, position: int, detail: str) -> None:
        super().__init__(f"position {position}: {detail}")
        self.position = position
        self.detail = detail


class DuplicateReplacement(ReviewError):
    """One replacement item chosen for several positions (counted from 0, as stored)."""

    def __init__(self, item_id: str, positions: list[int]) -> None:
        super().__init__(f"the same replacement item {item_id!r} is used at positions {positions}")
        self.item_id = item_id
        self.positions = positions


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
