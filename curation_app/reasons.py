"""The engine's reason codes in words a curator reads; the engine itself never writes English."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bandit.engine.vocabulary import ReasonCode

# Shown only to those allowed to know which picks explored (never under blinded review).
EXPLORATION_CODES = frozenset({ReasonCode.EXPLORATION_SLOT, ReasonCode.EXPLORATION_PICK})


def reason_phrase(code: str, value: float, context: Mapping[str, Any]) -> str:
    """One reason code and its number as a short phrase."""
    match code:
        case ReasonCode.STYLE_MATCH:
            return f"matches preferred style {context.get('preferred_style')}"
        case ReasonCode.FAVOURITE_CATEGORY:
            return "a favourite category"
        case ReasonCode.ABOVE_BUDGET:
            return "above budget"
        case ReasonCode.TASTE_MATCH:
            return f"taste match {value:+.2f}"
        case ReasonCode.CURATORS_KEEP:
            return "curators often keep or add it"
        case ReasonCode.EXPLORATION_SLOT:
            return "entered via an exploration slot"
        case ReasonCode.EXPLORATION_PICK:
            return "exploration pick"
        case ReasonCode.EXPECTED_REWARD:
            return f"model expects reward {value:.2f}"
    return str(code)


def reason_text(
    reasons: Iterable[Sequence[Any]], context: Mapping[str, Any], blinded: bool = False
) -> str:
    """A proposed item's reasons as one line; exploration notes left out when `blinded`."""
    phrases = [
        reason_phrase(str(code), float(value), context)
        for code, value in reasons
        if not (blinded and code in EXPLORATION_CODES)
    ]
    return "; ".join(phrases)
