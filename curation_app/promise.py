"""The promise in words: what the settings page and the dashboard say about automation."""

from __future__ import annotations

from bandit.engine.vocabulary import ApprovalStatus
from bandit.services.trust import (
    SCORED_REVIEWS,
    audits_weighted,
    bound_sample_clause,
    failed_test_clause,
    scope_clause,
    uncalibrated_clause,
    window_words,
)
from bandit.services.trust_status import FailedTest, PromiseStatus

# When the audit share changed inside the window, audits of different weeks stand for
# different numbers of auto-delivered slates.
_AUDITS_WEIGHTED = "; the audit share changed, so each audit counts for 1 / its audit share"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _more_evidence(failed: FailedTest) -> str:
    """Whether waiting for more reviews can help: only while the measured rate is below the
    target does a larger sample bring the bound under it."""
    if failed.rate is None or failed.target is None:
        return ""
    weighted = " (audits weighted)" if audits_weighted(failed.slates, failed.effective) else ""
    if failed.rate > failed.target:
        return (
            f" Curators changed {_percent(failed.rate)}{weighted} of these slates, more than the "
            "target itself: more evidence will not help; slates curators change less often (or a "
            "looser target) will."
        )
    return (
        f" Their override rate{weighted}, {_percent(failed.rate)}, is within the target: more "
        "reviewed slates can bring the bound below it."
    )


def promise_sentence(status: PromiseStatus) -> str:
    """The team's promise, as the config states it."""
    return (
        f"At most {_percent(status.target)} of automatically delivered slates would have been "
        f"changed by a curator, with {status.confidence_level * 100:.0f}% confidence."
    )


def today_sentences(status: PromiseStatus) -> list[str]:
    """What the promise means today, from the latest learn pass."""
    if not status.active:
        # Nothing below applies: other routing modes neither audit nor use the approval
        # threshold, so its figures would describe automation that is not happening.
        return [
            "Routing is not risk-controlled: set routing mode to risk_controlled to keep this "
            "promise."
        ]
    lines = []
    if status.status == ApprovalStatus.UNTRAINED:
        lines.append(
            "No approval model is served (none was learned with the served model version): "
            "every decision goes to review."
        )
    elif status.status != ApprovalStatus.READY:
        why = uncalibrated_clause(status.calibration_verdicts, status.calibration_kept)
        lines.append(f"Approval model not calibrated: {why}. Every decision goes to review.")
    elif status.threshold is None and status.failed_test is not None:
        failed = status.failed_test
        clause = failed_test_clause(
            failed.threshold,
            failed.bound,
            failed.slates,
            failed.overrides,
            failed.target,
            failed.effective,
            failed.rate,
        )
        lines.append(
            f"{clause[0].upper()}{clause[1:]}{scope_clause(status.evidence_scope)}: nothing is "
            "delivered automatically."
            f"{_more_evidence(failed)}"
        )
    elif status.threshold is None:
        lines.append(
            f"Not enough evidence yet ({status.evidence} {SCORED_REVIEWS}; a slate decided "
            "before the first approval model has no score and is no evidence) to bound the "
            "override rate below the target: nothing is delivered automatically."
        )
    else:
        sample = bound_sample_clause(
            status.bound_slates, status.bound_overrides, status.bound_effective, status.bound_rate
        )
        lines.append(
            f"{_percent(status.projected_automation)} of recent decisions would be delivered "
            f"automatically (approval threshold {status.threshold:.2f}; upper bound on their "
            f"override rate {_percent(status.bound)} from {sample} at or above it, of "
            f"{status.evidence} {SCORED_REVIEWS} in the {window_words(status.evidence_scope)})."
        )
    if status.audits:
        lines.append(
            f"Measured override rate of audited auto deliveries {_percent(status.audit_rate)} "
            f"[{_percent(status.audit_low)}, {_percent(status.audit_high)}] "
            f"({status.audit_overrides} of {status.audits} audits changed"
            f"{_AUDITS_WEIGHTED if status.audit_shares > 1 else ''})."
        )
    else:
        lines.append(
            f"No audits yet ({_percent(status.audit_share)} of auto deliveries are audited)."
        )
    if status.ece is not None:
        lines.append(
            f"Approval model calibration on recent held-out verdicts: ECE {status.ece:.3f}, "
            f"Brier {status.brier:.3f}."
        )
    return lines
