"""A simulation scenario: the world, the policy config under test, the curators, the noise
sweep; read from TOML and checked with messages that name the field."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bandit.engine.config import ConfigError, PolicyConfig, config_from_mapping

# A sharper confidence and thresholds that let a learning policy earn its way to automation.
SIMULATED_POLICY = {
    "name": "simulated",
    "uncertainty_temperature": 0.05,
    "auto_threshold": 0.6,
    "review_threshold": 0.3,
}


class ScenarioError(ValueError):
    """A scenario field is missing, unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class WorldSettings:
    """The simulated catalog, customers and how they answer."""

    items: int = 2000
    customers: int = 300
    outcome_delay: int = 20
    outcome_share: float = 0.7
    seconds_per_decision: float = 30.0
    shift_hours: float = 8.0
    learn_every: int = 25


@dataclass(frozen=True)
class CuratorSettings:
    """One simulated curator (see `sim.curators.SimulatedCurator`)."""

    name: str
    accuracy: float = 0.9
    fatigue_per_hour: float = 0.02
    seconds_per_item: float = 6.0
    tasks_per_hour: float = 90.0
    favored_categories: tuple[str, ...] = ()
    bias: float = 0.0


@dataclass(frozen=True)
class TrustStudySettings:
    """The `trust` run family (`[trust]` in the scenario TOML)."""

    enabled: bool = False
    targets: tuple[float, ...] = (0.02, 0.05, 0.10)
    rounds: int = 0  # 0: as many rounds as the main run
    workers: int = 2  # parallel processes
    sweep_target: float = 0.05
    sweep_seeds: int = 0  # extra seeds at sweep_target, for the guarantee's frequency
    sweep_rounds: int = 2000


@dataclass(frozen=True)
class Scenario:
    """Everything `hitl simulate` needs besides the rounds, seed and output folder."""

    world: WorldSettings = field(default_factory=WorldSettings)
    policy: PolicyConfig = field(default_factory=lambda: config_from_mapping(SIMULATED_POLICY))
    curators: tuple[CuratorSettings, ...] = (
        CuratorSettings("sim-ana", accuracy=0.92),
        CuratorSettings("sim-ben", accuracy=0.85, fatigue_per_hour=0.04),
    )
    noise_accuracies: tuple[float, ...] = (0.6, 0.75, 0.9, 1.0)
    noise_rounds: int = 0  # 0: as many rounds as the main run
    trust: TrustStudySettings = field(default_factory=TrustStudySettings)


def load_scenario(path: Path) -> Scenario:
    """Read a scenario TOML file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ScenarioError(f"{path.name}: cannot read it as TOML: {error}") from error
    try:
        return scenario_from_mapping(document)
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from error


def scenario_from_mapping(document: dict[str, Any]) -> Scenario:
    """Build a scenario from a parsed document, refusing unknown or bad fields by name."""
    _known(document, {"world", "policy", "curators", "noise", "trust"}, "")
    world = _build(WorldSettings, _table(document, "world"), "world")
    _check_world(world)
    try:
        policy = config_from_mapping({**SIMULATED_POLICY, **_table(document, "policy")})
    except (ConfigError, TypeError) as error:
        raise ScenarioError(f"policy.{error}") from error
    curators = (
        tuple(_curator(entry, index) for index, entry in enumerate(document.get("curators", [])))
        or Scenario().curators
    )
    names = [c.name for c in curators]
    if len(set(names)) != len(names):
        raise ScenarioError("curators: each curator needs a different name")
    noise = _table(document, "noise")
    _known(noise, {"accuracies", "rounds"}, "noise.")
    accuracies = tuple(noise.get("accuracies", Scenario().noise_accuracies))
    for value in accuracies:
        _in_range("noise.accuracies", value, 0.5, 1.0)
    rounds = noise.get("rounds", 0)
    _in_range("noise.rounds", rounds, 0, 1_000_000, integer=True)
    return Scenario(world, policy, curators, accuracies, int(rounds), _trust(document))


def _trust(document: dict[str, Any]) -> TrustStudySettings:
    values = dict(_table(document, "trust"))
    _known(values, {f.name for f in fields(TrustStudySettings)}, "trust.")
    targets = values.pop("targets", list(TrustStudySettings.targets))
    if not isinstance(targets, list) or not targets:
        raise ScenarioError("trust.targets: must be a non-empty list of override-rate targets")
    for target in targets:
        _in_range("trust.targets", target, 0.001, 0.5)
    if "sweep_target" in values:
        _in_range("trust.sweep_target", values["sweep_target"], 0.001, 0.5)
        values["sweep_target"] = float(values["sweep_target"])
    settings = _build(TrustStudySettings, values, "trust")
    _in_range("trust.rounds", settings.rounds, 0, 1_000_000, integer=True)
    _in_range("trust.workers", settings.workers, 1, 64, integer=True)
    _in_range("trust.sweep_seeds", settings.sweep_seeds, 0, 1000, integer=True)
    _in_range("trust.sweep_rounds", settings.sweep_rounds, 10, 1_000_000, integer=True)
    return replace(settings, targets=tuple(float(t) for t in targets))


def _table(document: dict[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ScenarioError(f"{name}: must be a table")
    return value


def _known(document: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(document) - known)
    if unknown:
        raise ScenarioError(f"{prefix}{unknown[0]}: unknown field")


def _build(kind: type[Any], values: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in fields(kind)}
    _known(values, set(names), f"{where}.")
    for name, value in values.items():
        expected = type(getattr(kind(), name)) if name != "name" else str
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values = {**values, name: float(value)}
        elif not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise ScenarioError(f"{where}.{name}: must be {expected.__name__}; got {value!r}")
    return kind(**values)


def _check_world(world: WorldSettings) -> None:
    _in_range("world.items", world.items, 20, 1_000_000, integer=True)
    _in_range("world.customers", world.customers, 1, 1_000_000, integer=True)
    _in_range("world.outcome_delay", world.outcome_delay, 0, 100_000, integer=True)
    _in_range("world.outcome_share", world.outcome_share, 0.0, 1.0)
    _in_range("world.seconds_per_decision", world.seconds_per_decision, 0.001, 86_400)
    _in_range("world.shift_hours", world.shift_hours, 0.1, 24)
    _in_range("world.learn_every", world.learn_every, 1, 100_000, integer=True)


def _curator(entry: Any, index: int) -> CuratorSettings:
    where = f"curators[{index}]"
    if not isinstance(entry, dict):
        raise ScenarioError(f"{where}: must be a table")
    if not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise ScenarioError(f"{where}.name: a non-empty name is required")
    values = dict(entry)
    categories = values.pop("favored_categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise ScenarioError(f"{where}.favored_categories: must be a list of category names")
    defaults = CuratorSettings(name="defaults")
    names = {f.name for f in fields(CuratorSettings)}
    _known(values, names - {"favored_categories"}, f"{where}.")
    numbers = {k: v for k, v in values.items() if k != "name"}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}.{key}: must be a number; got {value!r}")
    curator = CuratorSettings(
        name=values["name"].strip(),
        accuracy=float(numbers.get("accuracy", defaults.accuracy)),
        fatigue_per_hour=float(numbers.get("fatigue_per_hour", defaults.fatigue_per_hour)),
        seconds_per_item=float(numbers.get("seconds_per_item", defaults.seconds_per_item)),
        tasks_per_hour=float(numbers.get("tasks_per_hour", defaults.tasks_per_hour)),
        favored_categories=tuple(categories),
        bias=float(numbers.get("bias", defaults.bias)),
    )
    _in_range(f"{where}.accuracy", curator.accuracy, 0.5, 1.0)
    _in_range(f"{where}.fatigue_per_hour", curator.fatigue_per_hour, 0.0, 0.5)
    _in_range(f"{where}.seconds_per_item", curator.seconds_per_item, 0.1, 3600)
    _in_range(f"{where}.tasks_per_hour", curator.tasks_per_hour, 0.1, 100_000)
    _in_range(f"{where}.bias", curator.bias, 0.0, 1.0)
    return curator


def _in_range(where: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    kind_ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not kind_ok:
        raise ScenarioError(f"{where}: must be {'an integer' if integer else 'a number'}")
    if not low <= value <= high:
        raise ScenarioError(f"{where}: must be in [{low}, {high}]; got {value}")
