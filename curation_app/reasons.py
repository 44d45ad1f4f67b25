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


# Plain words for a stylist; the model's numbers stay behind "model details".
STRONG_TASTE = 0.3


def stylist_phrase(
    code: str, value: float, context: Mapping[str, Any], category: str = ""
) -> str | None:
    """A reason code in a stylist's words, or None for codes that are only model numbers."""
    match code:
        case ReasonCode.STYLE_MATCH:
            style = context.get("preferred_style")
            return f"matches their {style} style" if style else "matches their style"
        case ReasonCode.FAVOURITE_CATEGORY:
            return f"{category} is a favourite category" if category else "a favourite category"
        case ReasonCode.ABOVE_BUDGET:
            return "above their budget"
        case ReasonCode.TASTE_MATCH:
            if value >= STRONG_TASTE:
                return "very close to what they like"
            return "close to what they like" if value > 0 else "unlike what they usually like"
        case ReasonCode.CURATORS_KEEP:
            return "stylists often keep or add it"
        case ReasonCode.EXPLORATION_SLOT | ReasonCode.EXPLORATION_PICK:
            return "a fresh pick the model is trying out"
    return None


def stylist_reasons(
    reasons: Iterable[Sequence[Any]],
    context: Mapping[str, Any],
    category: str = "",
    blinded: bool = False,
) -> list[str]:
    """A proposed item's reasons as short phrases, without numbers, each phrase once."""
    phrases = (
        stylist_phrase(str(code), float(value), context, category)
        for code, value in reasons
        if not (blinded and code in EXPLORATION_CODES)
    )
    return list(dict.fromkeys(p for p in phrases if p))


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
