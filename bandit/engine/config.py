"""Policy configs: named, versioned exploration and routing settings, validated before use."""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bandit.engine.vocabulary import COMMITTEE_MEASURES, Measure, OverflowPolicy, RoutingMode

ALGORITHMS = ("epsilon_greedy", "softmax", "bag", "squarecb", "cover", "rnd")
# apprentice: a curator chooses every slate before output; the policy only learns to imitate.
ROUTING_MODES = tuple(RoutingMode)
UNCERTAINTY_MEASURES = tuple(Measure)
# What happens to a review task the curators cannot reach within the review SLA.
OVERFLOW_POLICIES = tuple(OverflowPolicy)
# Settings baked into a trained VW model's reductions: a reloaded model cannot change them.
MODEL_SHAPE_FIELDS = (
    "algorithm",
    "vw_bits",
    "bag_size",
    "cover_size",
    "rnd_size",
    "action_space",
    "las_max_actions",
)
# prescore: our pruning picks K candidates and VW explores over all of them.
# vw_large_action_space: VW's --large_action_space also narrows the K candidates to at most
# las_max_actions diverse ones (the others get probability 0) before exploring.
ACTION_SPACES = ("prescore", "vw_large_action_space")
LARGE_ACTION_SPACE_ALGORITHMS = ("epsilon_greedy", "squarecb")


# Fields that only need to be positive still get a finite ceiling: VW turns an infinite or
# absurd learning rate or temperature into NaN weights, and every later rank would fail.
UNBOUNDED_ABOVE_ZERO = {
    "softmax_lambda": 1e4,
    "squarecb_gamma_scale": 1e6,
    "learning_rate": 1e3,
    "uncertainty_temperature": 1e3,
}
CONFIG_SUFFIXES = (".toml", ".json")


class ConfigError(ValueError):
    """A policy config field is missing, of the wrong type or out of range."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        text = f"{field}: {message}"
        super().__init__(f"{source}: {text}" if source else text)
        self.field = field
        self.detail = message


@dataclass(frozen=True)
class PolicyConfig:
    """Exploration, pruning, routing and reward settings of one deployment.

    Routing compares the policy's confidence (1 - the named uncertainty measure) with two
    thresholds. In ``partial`` mode: confidence >= ``auto_threshold`` goes out with no review;
    ``review_threshold`` <= confidence < ``auto_threshold`` goes out at once and a curator
    verifies it afterwards; confidence < ``review_threshold`` waits for a curator first.

    In ``risk_controlled`` mode the confidence is the calibrated approval model's probability
    that a curator keeps the whole slate unchanged, and the auto threshold is not a setting:
    every learn pass picks the lowest one whose upper confidence bound (at
    ``confidence_level``) on the override rate of auto-delivered slates, measured on the last
    ``risk_window`` first-round reviews that logged an approval probability (every approval
    role, audits weighted by 1 / their audit probability), stays at or below
    ``max_override_rate``; with too little evidence nothing is automated. With
    ``drift_guard`` the newer half of those reviews must allow the threshold on its own too
    (the window's bound assumes curators did not drift within it). ``audit_share`` of
    the slates it would auto-deliver go to a blinded review-after audit instead. Below the
    automatic threshold, ``review_threshold`` (manual, on the same approval scale) splits
    review-after (at or above it) from review-before.

    Rewards (one logged round per delivered position, `bandit.services.rounds`): the customer
    outcome if it arrives within ``reward_wait_seconds``; for an item a curator removed before
    delivery, the curator's verdict as a proxy; otherwise ``default_reward`` once the wait ran
    out, flagged as a default.
    """

    name: str = "default"
    algorithm: str = "epsilon_greedy"
    epsilon: float = 0.1
    softmax_lambda: float = 10.0
    bag_size: int = 5
    cover_size: int = 4
    squarecb_gamma_scale: float = 10.0
    rnd_size: int = 3
    learning_rate: float = 0.5
    vw_bits: int = 18
    candidate_count: int = 50
    slate_size: int = 5
    exploration_slot_share: float = 0.1
    routing_mode: str = RoutingMode.PARTIAL
    uncertainty_measure: str = Measure.LEAST_CONFIDENCE
    uncertainty_temperature: float = 0.1
    auto_threshold: float = 0.9
    review_threshold: float = 0.5
    review_lease_seconds: int = 600
    reward_wait_seconds: int = 86400
    default_reward: float = 0.0
    learn_from_swap_ins: bool = True
    action_space: str = "prescore"
    las_max_actions: int = 20
    # --- curation console: review SLA, curator capacity, overflow, double and blinded review ---
    review_sla_seconds: int = 4 * 3600
    curator_capacity_per_hour: int = 120
    overflow_policy: str = "deliver_unreviewed"
    double_review_share: float = 0.0
    blinded_review: bool = False
    # A client's rank may ask for a review-before slate to go out unreviewed after N seconds,
    # with fallback_min_seconds <= N <= fallback_max_seconds; 0 as the maximum forbids it.
    fallback_min_seconds: int = 60
    fallback_max_seconds: int = 86_400
    # --- end of curation console settings ---
    # --- trustworthy automation (routing_mode = "risk_controlled") ---
    max_override_rate: float = 0.05
    confidence_level: float = 0.9
    audit_share: float = 0.05
    risk_window: int = 1500
    # The threshold must also pass on the newer half of the window alone (curators drifting).
    drift_guard: bool = False

    def __post_init__(self) -> None:
        _check_text(self, "name")
        _check_choice(self, "algorithm", ALGORITHMS)
        _check_choice(self, "routing_mode", ROUTING_MODES)
        _check_choice(self, "uncertainty_measure", UNCERTAINTY_MEASURES)
        _check_choice(self, "action_space", ACTION_SPACES)
        for name in ("epsilon", "exploration_slot_share", "auto_threshold", "review_threshold"):
            _check_number(self, name, low=0.0, high=1.0)
        for name, high in UNBOUNDED_ABOVE_ZERO.items():
            _check_number(self, name, low=0.0, high=high, strict_low=True)
        _check_number(self, "default_reward", low=-1e6, high=1e6)
        if not isinstance(self.learn_from_swap_ins, bool):
            raise ConfigError(
                "learn_from_swap_ins", f"must be true or false; got {self.learn_from_swap_ins!r}"
            )
        for name, low, high in (
            ("bag_size", 2, 64),
            ("cover_size", 1, 64),
            ("rnd_size", 1, 64),
            ("vw_bits", 10, 28),
            ("candidate_count", 2, 10_000),
            ("las_max_actions", 2, 1_000),
            ("slate_size", 1, 100),
            ("review_lease_seconds", 10, 86_400),
            ("reward_wait_seconds", 0, 365 * 86_400),
        ):
            _check_int(self, name, low, high)
        _check_trust_settings(self)
        risk = self.routing_mode == RoutingMode.RISK_CONTROLLED
        if not risk and self.review_threshold > self.auto_threshold:
            raise ConfigError(
                "review_threshold",
                f"must not exceed auto_threshold ({self.review_threshold} > {self.auto_threshold})",
            )
        if self.uncertainty_measure in COMMITTEE_MEASURES and self.algorithm != "bag":
            raise ConfigError(
                "uncertainty_measure",
                f'{self.uncertainty_measure} needs a committee: set algorithm = "bag" '
                f"(got {self.algorithm!r})",
            )
        if (
            self.action_space == "vw_large_action_space"
            and self.algorithm not in LARGE_ACTION_SPACE_ALGORITHMS
        ):
            raise ConfigError(
                "action_space",
                "vw_large_action_space works with algorithm "
                f"{' or '.join(LARGE_ACTION_SPACE_ALGORITHMS)}; got {self.algorithm!r}",
            )
        if self.candidate_count < self.slate_size:
            raise ConfigError(
                "candidate_count",
                f"K={self.candidate_count} must be at least the slate size M={self.slate_size}",
            )
        _check_console_settings(self)

    def to_document(self) -> dict[str, Any]:
        """The config as a plain JSON-able dict."""
        return asdict(self)


def config_from_mapping(document: dict[str, Any]) -> PolicyConfig:
    """Build a config from a dict, refusing unknown fields by name."""
    if not isinstance(document, dict):
        raise ConfigError("document", "a policy config must be a mapping of fields")
    known = {f.name for f in fields(PolicyConfig)}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(unknown[0], "unknown field")
    return PolicyConfig(**document)


def check_model_compatible(trained_with: PolicyConfig, config: PolicyConfig, version: int) -> None:
    """Refuse `config` if it changes a setting the trained model's reductions were built with."""
    for name in MODEL_SHAPE_FIELDS:
        before, after = getattr(trained_with, name), getattr(config, name)
        if before != after:
            raise ConfigError(
                name,
                f"model version {version} was trained with {name}={before!r}; a trained model "
                f"cannot switch to {after!r} (only exploration parameters such as epsilon may "
                "change on a trained model)",
            )


def load_config_file(path: Path) -> PolicyConfig:
    """Read a policy config from a TOML or JSON file; every failure is a ConfigError naming it."""
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError("file", f"{path}: expected a .toml or .json policy config")
    try:
        raw = path.read_bytes()
    except IsADirectoryError as error:
        raise ConfigError("file", f"{path}: is a directory, not a policy config file") from error
    except OSError as error:
        raise ConfigError("file", f"{path}: cannot read: {error.strerror or error}") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            "file", f"{path}: line {line}: not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from error
    if "\x00" in text:
        raise ConfigError("file", f"{path}: contains a NUL character; is it a binary file?")
    try:
        document = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError("document", f"cannot parse {path.name}: {error}") from error
    except RecursionError as error:
        raise ConfigError("document", f"cannot parse {path.name}: nested too deeply") from error
    try:
        return config_from_mapping(document)
    except ConfigError as error:  # a field's refusal, said with the file it is in
        raise ConfigError(error.field, error.detail, source=str(path)) from error
    except TypeError as error:  # a field of the wrong shape that the checks never reached
        raise ConfigError("document", f"{path.name}: {error}") from error


def _check_console_settings(config: PolicyConfig) -> None:
    """The curation console's block of settings (review SLA, capacity, overflow, sampling)."""
    _check_int(config, "review_sla_seconds", 60, 30 * 86_400)
    _check_int(config, "curator_capacity_per_hour", 1, 1_000_000)
    _check_choice(config, "overflow_policy", OVERFLOW_POLICIES)
    _check_number(config, "double_review_share", low=0.0, high=1.0)
    for flag in ("blinded_review", "drift_guard"):
        if not isinstance(getattr(config, flag), bool):
            raise ConfigError(flag, f"must be true or false; got {getattr(config, flag)!r}")
    _check_int(config, "fallback_min_seconds", 0, 30 * 86_400)
    _check_int(config, "fallback_max_seconds", 0, 30 * 86_400)
    if config.fallback_max_seconds and config.fallback_min_seconds > config.fallback_max_seconds:
        raise ConfigError(
            "fallback_min_seconds",
            f"must not exceed fallback_max_seconds ({config.fallback_min_seconds} > "
            f"{config.fallback_max_seconds})",
        )
    if config.review_lease_seconds > config.review_sla_seconds:
        # A lease longer than the SLA would let one idle curator make a task miss it.
        raise ConfigError(
            "review_lease_seconds",
            f"must not exceed review_sla_seconds ({config.review_lease_seconds} > "
            f"{config.review_sla_seconds})",
        )


def _check_trust_settings(config: PolicyConfig) -> None:
    """The promise: the override-rate target, its confidence, the audit share, the window."""
    _check_number(config, "max_override_rate", low=0.0, high=0.5, strict_low=True)
    _check_number(config, "confidence_level", low=0.5, high=0.999)
    _check_number(config, "audit_share", low=0.0, high=0.5)
    _check_int(config, "risk_window", 50, 1_000_000)


def _check_text(config: PolicyConfig, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, str) or not value.strip() or len(value) > 120:
        raise ConfigError(name, "must be a non-empty string of at most 120 characters")
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ConfigError(name, "must not contain control characters (NUL, tab, newline, ...)")


def _check_choice(config: PolicyConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}; got {value!r}")


def _check_number(
    config: PolicyConfig, name: str, low: float, high: float | None, strict_low: bool = False
) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, f"must be a number; got {value!r}")
    # NaN passes every comparison below, and inf is no setting; neither can be stored.
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number; got {value}")
    too_low = value <= low if strict_low else value < low
    if too_low or (high is not None and value > high):
        bound = f"({low}, {high}]" if strict_low else f"[{low}, {high}]"
        raise ConfigError(name, f"must be in {bound.replace('None', 'inf')}; got {value}")


def _check_int(config: PolicyConfig, name: str, low: int, high: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer; got {value!r}")
    if not low <= value <= high:
        raise ConfigError(name, f"must be in [{low}, {high}]; got {value}")
