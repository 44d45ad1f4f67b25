"""The settings form: an untouched form parses back to its config; parameters follow VW's use."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest
from flask.testing import FlaskClient

from bandit.engine.config import ALGORITHMS, PolicyConfig
from bandit.engine.policy import exploration_arguments
from curation_app.settings_form import FieldView, diff, grouped_fields, parse
from curation_app.settings_help import ALGORITHM_PARAMETERS
from tests.curation_app.test_settings import admin

__all__ = ["admin"]

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


EXPLORATION_PARAMETERS = sorted({name for names in ALGORITHM_PARAMETERS.values() for name in names})
BUMPED: dict[str, Any] = {
    "epsilon": 0.37,
    "softmax_lambda": 3.5,
    "bag_size": 7,
    "cover_size": 9,
    "squarecb_gamma_scale": 2.5,
    "rnd_size": 6,
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", EXPLORATION_PARAMETERS)
def test_a_parameter_is_shown_with_exactly_the_algorithms_whose_vw_flags_it_changes(
    algorithm: str, name: str
) -> None:
    config = PolicyConfig(algorithm=algorithm)
    used = exploration_arguments(config) != exploration_arguments(
        replace(config, **{name: BUMPED[name]})
    )
    assert (name in ALGORITHM_PARAMETERS[algorithm]) == used, (algorithm, name)


class _Labels(HTMLParser):
    """The class of each settings field's label, and the classes of the help lines inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.label_class: dict[str, str] = {}
        self.help_classes: dict[str, list[str]] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        target = attributes.get("for") or ""
        if tag == "label" and target.startswith("setting-"):
            self._open = target.removeprefix("setting-")
            self.label_class[self._open] = attributes.get("class") or ""
            self.help_classes[self._open] = []
        elif tag == "span" and self._open and "field-help" in (attributes.get("class") or ""):
            self.help_classes[self._open].append(attributes.get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._open = None


def _rendered_labels(admin: FlaskClient) -> _Labels:
    labels = _Labels()
    labels.feed(admin.get("/settings").get_data(as_text=True))
    return labels


def test_epsilon_is_shown_with_every_algorithm_that_reads_it_with_its_own_help(
    admin: FlaskClient,
) -> None:
    epsilon_users = [a for a in ALGORITHMS if "epsilon" in ALGORITHM_PARAMETERS[a]]
    assert epsilon_users == ["epsilon_greedy", "bag", "cover", "rnd"]
    labels = _rendered_labels(admin)
    classes = labels.label_class["epsilon"].split()
    assert {c for c in classes if c.startswith("param-for-")} == {
        f"param-for-{a}" for a in epsilon_users
    }
    helps = [c.split() for c in labels.help_classes["epsilon"]]
    for algorithm in epsilon_users:
        assert any(f"help-for-{algorithm}" in h for h in helps), algorithm
