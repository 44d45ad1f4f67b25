"""Run Open Bandit Pipeline 0.5.7's own input checks and estimators on a `hitl export --format
obp` file, by hand: `OBP_PYTHON bench/obp_check.py LOG.npz`.

OBP 0.5.7 declares Python < 3.11 and imports torch at start-up, though its estimators never
use it; install it in a throwaway venv with `pip install --no-deps --ignore-requires-python
obp==0.5.7 scikit-learn pandas scipy matplotlib seaborn tqdm pyyaml` and this script stands in
a stub for torch. It prints OBP's numbers: IPW, DM-free, on each round's own position (the
per-position estimand) and the slate estimators (value per slate, divided by len_list here to
compare with `hitl replay`'s per-position figures).
"""

from __future__ import annotations

import sys
from unittest import mock

import numpy as np


def _stub_torch() -> None:
    stub = mock.MagicMock()
    stub.Tensor = type("Tensor", (), {})
    stub.nn.Module = type("Module", (), {})
    stub.utils.data.Dataset = type("Dataset", (), {})
    for name in ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils"):
        sys.modules[name] = stub
    sys.modules["torch.nn"] = stub.nn
    sys.modules["torch.utils.data"] = stub.utils.data


def main(path: str) -> None:
    """Load without pickle, check with OBP's validators, estimate with OBP's estimators."""
    _stub_torch()
    import obp
    from obp.ope import (
        InverseProbabilityWeighting,
        SlateIndependentIPS,
        SlateRewardInteractionIPS,
        SlateStandardIPS,
    )
    from obp.utils import check_ope_inputs

    data = dict(np.load(path, allow_pickle=False))
    print(f"obp {obp.__version__}; loaded {path} without pickle: {sorted(data)}")
    check_ope_inputs(
        action_dist=data["action_dist"],
        position=data["position"],
        action=data["action"],
        reward=data["reward"],
        pscore=data["pscore"],
    )
    print("check_ope_inputs: passed")
    ipw = InverseProbabilityWeighting().estimate_policy_value(
        reward=data["reward"],
        action=data["action"],
        position=data["position"],
        pscore=data["pscore"],
        action_dist=data["action_dist"],
    )
    print(f"IPW (per position, given logged earlier picks): {ipw:.4f}")
    length = int(data["len_list"])
    common = {"slate_id": data["slate_id"], "reward": data["reward"], "position": data["position"]}
    sips = SlateStandardIPS(len_list=length).estimate_policy_value(
        pscore=data["pscore_joint"],
        evaluation_policy_pscore=data["evaluation_policy_pscore_joint"],
        **common,
    )
    rips = SlateRewardInteractionIPS(len_list=length).estimate_policy_value(
        pscore_cascade=data["pscore_cascade"],
        evaluation_policy_pscore_cascade=data["evaluation_policy_pscore_cascade"],
        **common,
    )
    print(f"SlateStandardIPS {sips:.4f} per slate = {sips / length:.4f} per position")
    print(f"SlateRewardInteractionIPS {rips:.4f} per slate = {rips / length:.4f} per position")
    if "pscore_item_position" in data and "evaluation_policy_pscore_item_position" in data:
        iips = SlateIndependentIPS(len_list=length).estimate_policy_value(
            pscore_item_position=data["pscore_item_position"],
            evaluation_policy_pscore_item_position=data["evaluation_policy_pscore_item_position"],
            **common,
        )
        print(f"SlateIndependentIPS {iips:.4f} per slate = {iips / length:.4f} per position")


if __name__ == "__main__":
    main(sys.argv[1])
