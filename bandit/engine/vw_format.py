"""Everything that knows Vowpal Wabbit's text format and its cost sign lives here.

Contexts become the shared namespace ``U``; items become action lines in namespace ``I``;
the policy crosses them with ``-q UI``. Keys ending in ``_id`` other than the item id are
identifiers, not features, and are left out. VW minimises cost, so cost = -reward.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bandit.engine.catalog import CatalogIndex, CatalogRow

CONTEXT_NAMESPACE = "U"
ITEM_NAMESPACE = "I"
INTERACTIONS = CONTEXT_NAMESPACE + ITEM_NAMESPACE
_UNSAFE = re.compile(r"[\s|:]+")


def reward_to_cost(reward: float) -> float:
    """VW's cost for a reward."""
    return -float(reward)


# Feature names and categorical values repeat across every request: memoise their cleaning.
@functools.lru_cache(maxsize=65_536)
def _clean(text: str) -> str:
    return _UNSAFE.sub("_", text)[:100] or "_"


def _token(value: Any) -> str:
    return _clean(value if isinstance(value, str) else str(value))


# VW's JSON parser treats keys starting with `_` as metadata and drops them (even with
# --strict_parse), so no feature name may start with `_`: such names get this prefix, as do
# names already starting with it, so `unescape_name` recovers every original exactly.
NAME_ESCAPE = "~"


def _name(key: str) -> str:
    name = _token(key)
    return NAME_ESCAPE + name if name.startswith(("_", NAME_ESCAPE)) else name


def unescape_name(name: str) -> str:
    """The feature name as the context or item key had it (undoes the `_` escape)."""
    return name[1:] if name.startswith(NAME_ESCAPE) else name


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _features(mapping: Mapping[str, Any]) -> list[str]:
    features: list[str] = []
    append = features.append
    for key, value in sorted(mapping.items()):
        name = _key_name(key) if type(key) is str else _name(key)
        if key.endswith("_id") or value is None:
            continue
        # The exact types JSON gives first, each formatted as `_feature` would: a context is
        # formatted twice a decision (for it and for the learner), and these checks are most
        # of the cost.
        kind = type(value)
        if kind is str:
            append(_categorical(name, value))
        elif kind is float:
            if math.isfinite(value):
                append(f"{name}:{value:.6g}")
        elif kind is list:
            for position, element in enumerate(value):
                element_kind = type(element)
                if element_kind is float:
                    if math.isfinite(element):
                        append(f"{name}_{position}:{element:.6g}")
                elif element_kind is str:
                    append(_categorical(name, element))
                else:
                    _element_feature(name, position, element, append)
        else:
            _feature(name, value, append)
    return features


def _feature(name: str, value: Any, append: Callable[[str], None]) -> None:
    if isinstance(value, bool):
        append(f"{name}={int(value)}")
    elif _number(value):
        append(f"{name}:{float(value):.6g}")
    elif isinstance(value, str):
        append(f"{name}={_token(value)}")
    elif isinstance(value, list):
        for position, element in enumerate(value):
            _element_feature(name, position, element, append)


def _element_feature(name: str, position: int, element: Any, append: Callable[[str], None]) -> None:
    if _number(element):
        append(f"{name}_{position}:{float(element):.6g}")
    elif isinstance(element, str):
        append(f"{name}={_token(element)}")


@functools.lru_cache(maxsize=65_536)
def _key_name(key: str) -> str:
    return _name(key)


@functools.lru_cache(maxsize=65_536)
def _categorical(name: str, value: str) -> str:
    return f"{name}={_token(value)}"


def shared_line(context: Mapping[str, Any]) -> str:
    """The shared example line for a request context."""
    return shared_line_of(_features(context))


def shared_line_of(features: Sequence[str]) -> str:
    """The shared example line for context features from `context_features`."""
    return f"shared |{CONTEXT_NAMESPACE} " + " ".join(features)


def item_features(item: CatalogRow) -> list[str]:
    """The VW features of a catalog item (its id, category, attributes and price)."""
    features = [f"id={_token(item.item_id)}", f"category={_token(item.category)}"]
    features += _features({k: v for k, v in item.attributes.items() if k != "popularity"})
    if item.price is not None and _number(item.price) and item.price > 0:
        features.append(f"log_price:{math.log1p(item.price):.4g}")
    return features


def action_line(item: CatalogRow) -> str:
    """The action line of a catalog item."""
    return f"|{ITEM_NAMESPACE} " + " ".join(item_features(item))


def context_features(context: Mapping[str, Any]) -> list[str]:
    """The VW features of a request context."""
    return _features(context)


# For explanations the context travels inside each action line instead of a shared line; a
# cb_adf model merges shared features into every action, so the scores are the same.
EMPTY_SHARED = f"shared |{CONTEXT_NAMESPACE}"


def inline_action_line(context: Sequence[str], item: Sequence[str]) -> str:
    """An action line carrying the given context and item features itself."""
    return f"|{CONTEXT_NAMESPACE} {' '.join(context)} |{ITEM_NAMESPACE} {' '.join(item)}"


def feature_label(feature: str, namespace: str) -> str:
    """A readable name for a VW feature: `style=bohemian (item)`, `taste_3 (customer)`."""
    name = feature.split(":", 1)[0]
    return f"{name} ({'customer' if namespace == CONTEXT_NAMESPACE else 'item'})"


class ActionLines:
    """Action lines of one catalog snapshot, formatted once per item and reused by every request."""

    def __init__(self, catalog: CatalogIndex) -> None:
        self._rows = catalog.rows
        self._lines: list[str | None] = [None] * len(catalog.rows)

    def lines(self, indices: Iterable[int]) -> list[str]:
        """The action lines of the catalog rows at `indices`, in that order."""
        out = []
        for index in indices:
            line = self._lines[index]
            if line is None:
                line = self._lines[index] = action_line(self._rows[index])
            out.append(line)
        return out


def labelled_example(
    shared: str, actions: Sequence[str], chosen: int, reward: float, probability: float
) -> list[str]:
    """A multi-line ADF learning example with the chosen action's cost and probability."""
    lines = [shared, *actions]
    lines[chosen + 1] = labelled_action(actions[chosen], reward, probability)
    return lines


def labelled_action(action: str, reward: float, probability: float) -> str:
    """The chosen action's line with its cost and probability label."""
    # Full precision (as DSJSON writes them), so a text and a DSJSON replay parse equal floats.
    return f"0:{float(reward_to_cost(reward))!r}:{float(probability)!r} {action}"


# The approval model is a plain logistic regression on one line per (context, item, position).
POSITION_NAMESPACE = "P"


def approval_line(context: Sequence[str], action: str, position: int, kept: bool | None) -> str:
    """One approval example: label 1 (kept unchanged) or -1, context, item and position."""
    label = "" if kept is None else ("1 " if kept else "-1 ")
    return (
        f"{label}|{CONTEXT_NAMESPACE} {' '.join(context)} {action} "
        f"|{POSITION_NAMESPACE} at_{position}"
    )
