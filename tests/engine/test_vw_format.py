"""VW text of contexts: the fast path for JSON's exact types formats as the general rules."""

from typing import Any

import numpy as np
import pytest

from bandit.engine import vw_format


class Text(str):
    """A str subclass: formatted by the general rules, not the exact-type path."""


class Items(list[Any]):
    """A list subclass, likewise."""


# (value, the same value in types only the general rules handle, the features expected)
CASES = {
    "float": (0.5, np.float64(0.5), ["k:0.5"]),
    "negative zero": (-0.0, np.float64(-0.0), ["k:-0"]),
    "tiny": (1e-7, np.float64(1e-7), ["k:1e-07"]),
    "long": (1234567.891, np.float64(1234567.891), ["k:1.23457e+06"]),
    "nan": (float("nan"), np.float64("nan"), []),
    "infinite": (float("-inf"), np.float64("-inf"), []),
    "string": ("a b|c:d", Text("a b|c:d"), ["k=a_b_c_d"]),
    "empty string": ("", Text(""), ["k=_"]),
    "list": (
        [0.25, "x y", None, float("inf"), True, 3, -0.0, [1.0]],
        Items([np.float64(0.25), Text("x y"), None, np.inf, True, 3, np.float64(-0.0), [1.0]]),
        ["k_0:0.25", "k=x_y", "k_5:3", "k_6:-0"],
    ),
}


@pytest.mark.parametrize(("value", "twin", "expected"), CASES.values(), ids=CASES.keys())
def test_exact_json_types_format_as_the_general_rules_do(
    value: Any, twin: Any, expected: list[str]
) -> None:
    assert vw_format.context_features({"k": value}) == expected
    assert vw_format.context_features({"k": twin}) == expected


def test_names_identifiers_and_other_types_follow_the_rules() -> None:
    context = {
        "segment_id": "s-1",
        "missing": None,
        "_private": "x",
        "~tilde": 2,
        "vip": True,
        "visits": 3,
        "odd key:1": "v",
        "a mapping": {"x": 1},
    }
    assert vw_format.context_features(context) == [
        "~_private=x",
        "odd_key_1=v",
        "vip=1",
        "visits:3",
        "~~tilde:2",
    ]
