"""The rank request's context: what keys and values the API accepts, and the same rules as the
JSON Schema the OpenAPI document publishes.

One set of constants drives both the validator and the schema, so a value the document allows
is a value the API accepts, and the other way round (schemathesis checks both directions).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

CONTEXT_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
MAX_CONTEXT_KEY = 64
MAX_CONTEXT_KEYS = 100
MAX_CONTEXT_TEXT = 200
MAX_CONTEXT_LIST = 100
# Identifiers (keys ending in _id) are not features; they only have to survive JSON as doubles,
# which hold every integer up to 2**53 exactly.
IDENTIFIER_SUFFIX = "_id"
MAX_IDENTIFIER_NUMBER = 2**53
# Feature numbers are crossed with item features in VW's single-precision arithmetic; beyond
# this they overflow it.
MAX_FEATURE_NUMBER = 1e6
# PostgreSQL refuses NUL in stored text.
NO_NUL_PATTERN = r"^[^\x00]*$"
CONTEXT_VALUE_RULE = (
    f"must be a string of at most {MAX_CONTEXT_TEXT} characters without NUL, a finite number, "
    f"a boolean, null, or a list of at most {MAX_CONTEXT_LIST} strings, numbers or booleans"
)

ContextKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CONTEXT_KEY, pattern=CONTEXT_KEY_PATTERN),
]


def _scalar_ok(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):  # compared as an int: float() of a 400-digit one overflows
        return abs(value) <= MAX_IDENTIFIER_NUMBER
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) <= MAX_IDENTIFIER_NUMBER
    return isinstance(value, str) and len(value) <= MAX_CONTEXT_TEXT and "\x00" not in value


def _context_value(value: Any) -> Any:
    """One context value: a scalar, null, or a short list of scalars."""
    if value is None or _scalar_ok(value):
        return value
    if isinstance(value, list) and len(value) <= MAX_CONTEXT_LIST:
        if all(_scalar_ok(element) for element in value):
            return value
    raise PydanticCustomError("context_value", CONTEXT_VALUE_RULE)


def feature_numbers_in_range(context: dict[str, Any]) -> dict[str, Any]:
    for key, value in context.items():
        if key.endswith(IDENTIFIER_SUFFIX):
            continue
        values = value if isinstance(value, list) else [value]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if any(abs(v) > MAX_FEATURE_NUMBER for v in numbers):
            raise PydanticCustomError(
                "context_number",
                f"{key}: numbers must be within ±{MAX_FEATURE_NUMBER:g}; rescale this feature",
            )
    return context


def _value_schema(bound: float) -> dict[str, Any]:
    scalars: list[dict[str, Any]] = [
        {"type": "string", "maxLength": MAX_CONTEXT_TEXT, "pattern": NO_NUL_PATTERN},
        {"type": "number", "minimum": -bound, "maximum": bound},
        {"type": "boolean"},
    ]
    return {
        "anyOf": [
            *scalars,
            {"type": "null"},
            {"type": "array", "maxItems": MAX_CONTEXT_LIST, "items": {"anyOf": scalars}},
        ]
    }


def context_schema() -> dict[str, Any]:
    """The JSON Schema of a context: every key checked by propertyNames (no key escapes the
    rule), values of identifier keys and of feature keys with their own number ranges."""
    identifier_keys = f"{re.escape(IDENTIFIER_SUFFIX)}$"
    return {
        "type": "object",
        "maxProperties": MAX_CONTEXT_KEYS,
        "propertyNames": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CONTEXT_KEY,
            "pattern": CONTEXT_KEY_PATTERN,
        },
        "patternProperties": {identifier_keys: _value_schema(MAX_IDENTIFIER_NUMBER)},
        "additionalProperties": _value_schema(MAX_FEATURE_NUMBER),
        "description": (
            "Customer features and constraints. Each value "
            f"{CONTEXT_VALUE_RULE}. Numbers of keys ending in {IDENTIFIER_SUFFIX!r} "
            f"(identifiers) lie within ±2**53; all other numbers are features and lie within "
            f"±{MAX_FEATURE_NUMBER:g}."
        ),
    }


ContextValue = Annotated[Any, AfterValidator(_context_value)]
Context = Annotated[
    dict[ContextKey, ContextValue],
    Field(max_length=MAX_CONTEXT_KEYS),
    AfterValidator(feature_numbers_in_range),
    WithJsonSchema(context_schema()),
]
