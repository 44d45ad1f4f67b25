"""The loop's one vocabulary: every status, tag, verdict, measure and source, as StrEnums.

The database stores these same strings, so a member compares equal to the stored value and
renaming a value needs an Alembic migration.
"""

from __future__ import annotations

from enum import StrEnum


class Route(StrEnum):
    """Who acts on a decision."""

    AUTO = "auto"
    REVIEW_BEFORE = "review_before"
    REVIEW_AFTER = "review_after"


class RoutingMode(StrEnum):
    """A policy config's routing setting."""

    REVIEW_BEFORE = "review_before"
    REVIEW_AFTER = "review_after"
    PARTIAL = "partial"
    APPRENTICE = "apprentice"
    # Auto-deliver above the threshold that keeps the audited override rate below a target.
    RISK_CONTROLLED = "risk_controlled"


class DecisionStatus(StrEnum):
    """Where a decision is in its lifecycle."""

    PENDING_REVIEW = "pending_review"
    IN_REVIEW = "in_review"
    DELIVERED = "delivered"
    REWARDED = "rewarded"


class TaskStatus(StrEnum):
    """Where a review task is."""

    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    # Never reviewed: the curators had no capacity or the SLA ran out.
    OVERFLOWED = "overflowed"
    # Closed without a curator: an apprentice-mode client delivered its own slate.
    CLIENT_CHOSE = "client_chose"


class OverflowPolicy(StrEnum):
    """What a policy config does with a review the curators cannot reach in time."""

    DELIVER_UNREVIEWED = "deliver_unreviewed"
    HOLD = "hold"


class Overflow(StrEnum):
    """What happened to a task that overflowed (stored on the task)."""

    DELIVERED_UNREVIEWED = "delivered_unreviewed"
    HELD = "held"
    # The client asked rank for a fallback and the review did not start in time.
    CLIENT_FALLBACK = "client_fallback"
    # Past capacity at intake, or past its SLA or fallback time, with its slate already out (a
    # second opinion, a review-after check, a review-before submit since undone): closed
    # unreviewed, nothing delivered.
    CLOSED_UNREVIEWED = "closed_unreviewed"
    # Past its SLA under `hold` with its slate already out: nothing is held, and the curator's
    # check (of a review-after slate, an audit, a second opinion, an undone submit) stays open.
    CHECK_OVERDUE = "check_overdue"


class Verdict(StrEnum):
    """What a curator asks for at one position (the request)."""

    KEEP = "keep"
    REMOVE = "remove"
    SWAP = "swap"


class CuratorVerdict(StrEnum):
    """A recorded curator action at one position (what was done)."""

    KEPT = "kept"
    REMOVED = "removed"
    SWAPPED = "swapped"


class SlateTag(StrEnum):
    """An item's fate on the final slate."""

    KEPT = "kept"
    REMOVED = "removed"
    SWAPPED_OUT = "swapped_out"
    SWAPPED_IN = "swapped_in"


class DecidedBy(StrEnum):
    """Who settled a final-slate row."""

    POLICY = "policy"
    CURATOR = "curator"
    CLIENT = "client"


class VerificationOutcome(StrEnum):
    """A verify-after review's result."""

    CORRECTED = "corrected"
    REINSTATED = "reinstated"


class Measure(StrEnum):
    """Uncertainty measures, each in [0, 1], 1 = most uncertain."""

    LEAST_CONFIDENCE = "least_confidence"
    MARGIN = "margin"
    RATIO = "ratio"
    ENTROPY = "entropy"
    COMMITTEE_DISAGREEMENT = "committee_disagreement"
    VOTE_ENTROPY = "vote_entropy"


DISTRIBUTION_MEASURES = (Measure.LEAST_CONFIDENCE, Measure.MARGIN, Measure.RATIO, Measure.ENTROPY)
COMMITTEE_MEASURES = (Measure.COMMITTEE_DISAGREEMENT, Measure.VOTE_ENTROPY)


class RewardSource(StrEnum):
    """Whose judgement a logged round's reward is."""

    CUSTOMER = "customer"
    CURATOR_PROXY = "curator_proxy"
    DEFAULT = "default"


class ReasonCode(StrEnum):
    """Why the engine proposed an item; each comes with a number, curation_app words it."""

    STYLE_MATCH = "style_match"  # the prescore's style term
    FAVOURITE_CATEGORY = "favourite_category"  # the prescore's category term
    ABOVE_BUDGET = "above_budget"  # the (negative) budget term
    TASTE_MATCH = "taste_match"  # the embedding term, signed
    CURATORS_KEEP = "curators_keep"  # the learned curator-affinity term
    EXPLORATION_SLOT = "exploration_slot"  # entered the candidates through a reserved slot
    EXPLORATION_PICK = "exploration_pick"  # not the policy's most likely item at its position
    EXPECTED_REWARD = "expected_reward"  # the policy's score


class TrustAction(StrEnum):
    """Audit-log actions of trustworthy automation."""

    THRESHOLD_CHOSEN = "risk_threshold_chosen"


class ApprovalStatus(StrEnum):
    """Whether the approval model can route decisions yet."""

    READY = "ready"
    TOO_FEW_VERDICTS = "too_few_verdicts"
    UNTRAINED = "untrained"


class ApprovalRole(StrEnum):
    """What a decision's curator verdicts are used for by the approval model."""

    TRAIN = "train"  # train the logistic model
    CALIBRATE = "calibrate"  # held out: fit the isotonic calibration
    EVIDENCE = "evidence"  # held out: the override-rate bound, ECE and Brier (and all audits)


class ImitationSource(StrEnum):
    """Where an imitation example came from."""

    SWAP_IN = "swap_in"
    APPRENTICE = "apprentice"
    CLIENT = "client"


DELIVERED_TAGS = (SlateTag.KEPT, SlateTag.SWAPPED_IN)
VERDICT_DONE = {
    Verdict.KEEP: CuratorVerdict.KEPT,
    Verdict.REMOVE: CuratorVerdict.REMOVED,
    Verdict.SWAP: CuratorVerdict.SWAPPED,
}
VERDICT_TAG = {
    Verdict.KEEP: SlateTag.KEPT,
    Verdict.REMOVE: SlateTag.REMOVED,
    Verdict.SWAP: SlateTag.SWAPPED_OUT,
}


class EventChangeKind(StrEnum):
    """A change to an event that a client can be told about (webhook event types)."""

    DELIVERED = "delivered"
    CORRECTED = "corrected"
    REINSTATED = "reinstated"
    REWARDED = "rewarded"


class CorrectionAction(StrEnum):
    """What a correction asks for at one delivered position."""

    REPLACE = "replace"
    REMOVE = "remove"


class LifecycleStatus(StrEnum):
    """The steps of an event's lifecycle, as the event document lists them."""

    CREATED = "created"
    IN_REVIEW = "in_review"
    DELIVERED = "delivered"
    CORRECTED = "corrected"
    REINSTATED = "reinstated"
    REWARDED = "rewarded"


class WebhookStatus(StrEnum):
    """Where one webhook delivery is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EventInclude(StrEnum):
    """Optional parts of the event document a client may ask for with ?include=."""

    CANDIDATES = "candidates"


class AuditAction(StrEnum):
    """What an audit entry records."""

    LOGIN = "login"
    LOGIN_REFUSED = "login.refused"
    LOGOUT = "logout"
    TASK_CLAIM = "task.claim"
    TASK_SUBMIT = "task.submit"
    TASK_RELEASE = "task.release"
    TASK_SKIP = "task.skip"
    TASK_UNDO = "task.undo"
    CONFIG_SAVE = "config.save"
    CONFIG_ACTIVATE = "config.activate"
    MODEL_PROMOTE = "model.promote"
    MODEL_PROMOTE_REFUSED = "model.promote_refused"
    WEBHOOK_ADD = "webhook.add"
    WEBHOOK_REMOVE = "webhook.remove"
    WEBHOOK_REPLAY = "webhook.replay"


class ReadinessProblem(StrEnum):
    """Why a serving process answers /readyz with 503."""

    DATABASE_UNREACHABLE = "database_unreachable"
    MIGRATIONS_BEHIND = "migrations_behind"
    NO_MODEL = "no_model"


class ApiSurface(StrEnum):
    """Which client API a decision came through (a metrics label)."""

    V1 = "v1"
    PERSONALIZER = "personalizer"


class PersonalizerErrorCode(StrEnum):
    """The `error.code` values of the Personalizer-compatible API (Personalizer's own)."""

    BAD_ARGUMENT = "BadArgument"
    UNAUTHORIZED = "Unauthorized"
    NOT_FOUND = "ResourceNotFound"
    CONFLICT = "Conflict"
    INTERNAL = "InternalServerError"
