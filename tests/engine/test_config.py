"""Policy config validation: bad settings are refused with the field named."""

import json
from pathlib import Path

import pytest

from bandit.engine.config import ConfigError, PolicyConfig, config_from_mapping, load_config_file


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"algorithm": "thompson"}, "algorithm"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": "0.1"}, "epsilon"),
        ({"auto_threshold": 0.5, "review_threshold": 0.8}, "review_threshold"),
        ({"candidate_count": 3, "slate_size": 5}, "candidate_count"),
        ({"routing_mode": "sometimes"}, "routing_mode"),
        ({"uncertainty_measure": "vibes"}, "uncertainty_measure"),
        ({"slate_size": 2.5}, "slate_size"),
        ({"surprise": 1}, "surprise"),
        ({"name": ""}, "name"),
        ({"uncertainty_measure": "committee_disagreement"}, "uncertainty_measure"),
        ({"action_space": "vw_large_action_space", "algorithm": "bag"}, "action_space"),
        ({"action_space": "everything"}, "action_space"),
        ({"las_max_actions": 1}, "las_max_actions"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else value,
)
def test_bad_config_names_the_field(document: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:") as raised:
        config_from_mapping(document)
    assert raised.value.field == field


def test_round_trip_through_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('name = "spring"\nalgorithm = "softmax"\nsoftmax_lambda = 5.0\n')
    config = load_config_file(path)
    assert config == PolicyConfig(name="spring", algorithm="softmax", softmax_lambda=5.0)
    assert config_from_mapping(config.to_document()) == config
