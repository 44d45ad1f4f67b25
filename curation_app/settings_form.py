"""The policy-config form of the settings page: fields shown, values read back, diffs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from bandit.engine import config as policy_config
from bandit.engine.config import ConfigError, PolicyConfig
from curation_app.settings_help import algorithm_help, algorithms_of, help_for

CHOICES: dict[str, tuple[str, ...]] = {
    "algorithm": policy_config.ALGORITHMS,
    "routing_mode": policy_config.ROUTING_MODES,
    "uncertainty_measure": policy_config.UNCERTAINTY_MEASURES,
    "overflow_policy": policy_config.OVERFLOW_POLICIES,
}
# Shown first, in this order: the settings a product team tunes most; the rest follow.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Routing and review", (
        "routing_mode", "uncertainty_measure", "auto_threshold", "review_threshold",
        "review_sla_seconds", "curator_capacity_per_hour", "review_lease_seconds",
        "overflow_policy", "double_review_share", "blinded_review",
        "fallback_min_seconds", "fallback_max_seconds",
    )),
    ("The promise (risk-controlled routing)", (
        "max_override_rate", "confidence_level", "audit_share", "risk_window", "drift_guard",
    )),
    ("Exploration", (
        "algorithm", "epsilon", "softmax_lambda", "bag_size", "cover_size",
        "squarecb_gamma_scale", "rnd_size",
    )),
)  # fmt: skip


@dataclass(frozen=True)
class FieldView:
    """One input of the settings form."""

    name: str
    label: str
    kind: str  # "choice", "bool", "int", "float" or "text"
    value: str
    choices: tuple[str, ...] = ()
    error: str = ""
    unit: str = ""
    help: str = ""
    # For an exploration parameter: shown only with these algorithms, with a line for each.
    algorithms: tuple[str, ...] = ()
    algorithm_help: tuple[tuple[str, str], ...] = ()


def _kind(name: str, default: Any) -> str:
    if name in CHOICES:
        return "choice"
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    return "float" if isinstance(default, float) else "text"


def _kinds() -> dict[str, str]:
    return {f.name: _kind(f.name, f.default) for f in fields(PolicyConfig)}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else ""
    # repr is the shortest text that reads back as the same float: an untouched save is no change.
    return repr(value) if isinstance(value, float) else str(value)


def grouped_fields(
    values: Mapping[str, Any], errors: Mapping[str, str] | None = None
) -> list[tuple[str, list[FieldView]]]:
    """The form's fields in groups, filled from a config document or the submitted text."""
    errors = errors or {}
    kinds = _kinds()
    placed = {name for _, names in GROUPS for name in names}
    others = tuple(name for name in kinds if name not in placed)
    groups = [*GROUPS, ("Model, pruning and rewards", others)]
    return [
        (
            title,
            [
                FieldView(
                    name=name,
                    label=help_for(name).label,
                    kind=kinds[name],
                    value=_as_text(values.get(name, "")),
                    choices=CHOICES.get(name, ()),
                    error=errors.get(name, ""),
                    unit=help_for(name).unit,
                    help=help_for(name).help,
                    algorithms=algorithms_of(name),
                    algorithm_help=algorithm_help(name),
                )
                for name in names
                if name in kinds
            ],
        )
        for title, names in groups
    ]


def _read(kind: str, raw: str) -> Any:
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind == "float":
        try:
            number = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    return raw.strip()


def parse(form: Mapping[str, str]) -> tuple[PolicyConfig | None, dict[str, str], dict[str, Any]]:
    """(config, {} , values) when valid, else (None, {field: message}, the submitted values)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, kind in _kinds().items():
        if kind == "bool":
            values[name] = form.get(name) == "on"
            continue
        raw = form.get(name, "").strip()
        if not raw:
            errors[name] = "is required"
            values[name] = raw
            continue
        try:
            values[name] = _read(kind, raw)
        except ValueError as error:
            errors[name], values[name] = str(error), raw
    # Every invalid field at once: a field that fails is set aside (its default stands in)
    # and the rest are checked again, so rules between fields are found too.
    defaults = PolicyConfig().to_document()
    trial = {name: defaults[name] if name in errors else value for name, value in values.items()}
    for _ in range(len(values)):
        try:
            config = PolicyConfig(**trial)
        except ConfigError as error:
            if error.field in errors or error.field not in trial:
                errors.setdefault(error.field, str(error).removeprefix(f"{error.field}: "))
                break
            errors[error.field] = str(error).removeprefix(f"{error.field}: ")
            trial[error.field] = defaults[error.field]
            continue
        return (None, errors, values) if errors else (config, {}, values)
    return None, errors, values


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for each setting that differs; everything is new without `before`."""
    before = before or {}
    return [
        (name, before.get(name), after.get(name))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
