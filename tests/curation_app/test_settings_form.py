"""The settings form: an untouched form parses back to the config it was rendered from."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bandit.engine.config import PolicyConfig
from curation_app.settings_form import FieldView, diff, grouped_fields, parse

# Odd floats at tiny, ordinary and large magnitudes; six significant digits (`:g`) change most.
ODD_FLOATS = [
    ("learning_rate", 0.1234567),
    ("learning_rate", 1e-300),
    ("learning_rate", 999.9999999999999),
    ("uncertainty_temperature", 5e-324),  # the smallest positive float (subnormal)
    ("squarecb_gamma_scale", 123456.78901234567),
    ("softmax_lambda", 9999.000000000002),
    ("default_reward", -0.00012345678),
    ("default_reward", -987654.3210987654),
    ("default_reward", 1.2345678901234567e-17),
    ("epsilon", 0.1 + 0.2),  # 0.30000000000000004
    ("epsilon", 1 / 3),
    ("exploration_slot_share", 2.5000000000000004e-07),
    ("double_review_share", 0.0500001),
    ("max_override_rate", 0.049999999999999996),
]


def submitted(groups: list[tuple[str, list[FieldView]]]) -> dict[str, str]:
    """What a browser posts for the form as rendered: every value, and the checked boxes only."""
    form = {}
    for _, fields in groups:
        for field in fields:
            if field.kind != "bool" or field.value == "on":
                form[field.name] = field.value
    return form


@pytest.mark.parametrize(("name", "value"), ODD_FLOATS)
def test_the_untouched_form_parses_back_to_the_config_it_was_rendered_from(
    name: str, value: float
) -> None:
    changed: dict[str, Any] = {name: value}
    document = replace(PolicyConfig(), **changed).to_document()
    config, errors, _ = parse(submitted(grouped_fields(document)))
    assert errors == {}
    assert config is not None
    assert diff(document, config.to_document()) == []
    assert config.to_document() == document


def test_a_config_of_odd_floats_everywhere_survives_an_untouched_save() -> None:
    odd: dict[str, Any] = dict(ODD_FLOATS)  # the last value of each field
    document = PolicyConfig(**odd).to_document()
    config, errors, _ = parse(submitted(grouped_fields(document)))
    assert errors == {} and config is not None
    assert config.to_document() == document
