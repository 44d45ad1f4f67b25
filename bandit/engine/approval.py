"""The approval model: P(a curator keeps this item unchanged | context, item, position).

A Vowpal Wabbit logistic regression learns from curator verdicts (first-round reviews only);
an isotonic map fitted on held-out verdicts calibrates it. The slate's approval probability
is the product over positions (positions treated as independent given the context: a
documented simplification; curators judge items one by one in the console). It is the
routing confidence of risk-controlled routing.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from vowpalwabbit import Workspace

from bandit.engine import vw_format
from bandit.engine.calibration import IsotonicMap

APPROVAL_ARGUMENTS = "--loss_function logistic --link logistic -q UI -b 18 -l 0.3"


@dataclass(frozen=True)
class ApprovalExample:
    """One curator verdict as an approval label."""

    context: Mapping[str, Any]
    action_line: str
    position: int
    kept: bool


class ApprovalModel:
    """A VW logistic regression and its calibration map; one lock for the native state."""

    def __init__(self, workspace: Workspace, calibration: IsotonicMap | None) -> None:
        self._workspace = workspace
        self._lock = threading.Lock()
        self.calibration = calibration

    @classmethod
    def fresh(cls) -> ApprovalModel:
        """An untrained, uncalibrated model."""
        return cls(Workspace(f"{APPROVAL_ARGUMENTS} --save_resume --quiet"), None)

    @classmethod
    def from_bytes(cls, model: bytes, calibration: IsotonicMap | None) -> ApprovalModel:
        """A model restored from saved bytes (kept trainable with --save_resume)."""
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "approval.vw")
            with open(path, "wb") as handle:
                handle.write(model)
            workspace = Workspace(f"-i {path} --save_resume --quiet")
        return cls(workspace, calibration)

    def to_bytes(self) -> bytes:
        """The model, saved so that it can keep training."""
        with tempfile.TemporaryDirectory() as folder, self._lock:
            path = os.path.join(folder, "approval.vw")
            self._workspace.save(path)
            with open(path, "rb") as handle:
                return handle.read()

    def learn(self, examples: Sequence[ApprovalExample]) -> None:
        """One online pass over the examples."""
        with self._lock:
            for example in examples:
                line = vw_format.approval_line(
                    vw_format.context_features(example.context),
                    example.action_line,
                    example.position,
                    example.kept,
                )
                self._workspace.learn(line)

    def raw(self, context: Mapping[str, Any], action_lines: Sequence[str]) -> np.ndarray:
        """Uncalibrated P(kept) of each item at its slate position (position = index)."""
        features = vw_format.context_features(context)
        with self._lock:
            return np.array(
                [
                    float(
                        self._workspace.predict(
                            vw_format.approval_line(features, line, position, None)
                        )
                    )
                    for position, line in enumerate(action_lines)
                ]
            )

    def raw_at(self, context: Mapping[str, Any], action_line: str, position: int) -> float:
        """Uncalibrated P(kept) of one item at one position."""
        return self.raw_at_features(vw_format.context_features(context), action_line, position)

    def raw_at_features(self, features: Sequence[str], action_line: str, position: int) -> float:
        """`raw_at` for a context already formatted by `vw_format.context_features`."""
        line = vw_format.approval_line(features, action_line, position, None)
        with self._lock:
            return float(self._workspace.predict(line))

    @property
    def calibrated(self) -> bool:
        """Whether held-out verdicts calibrated it; uncalibrated models never automate."""
        return self.calibration is not None

    def item_probabilities(
        self, context: Mapping[str, Any], action_lines: Sequence[str]
    ) -> np.ndarray:
        """Calibrated P(kept) per position (raw when uncalibrated)."""
        raw = self.raw(context, action_lines)
        return raw if self.calibration is None else self.calibration(raw)

    def slate_probability(self, context: Mapping[str, Any], action_lines: Sequence[str]) -> float:
        """P(a curator keeps every item unchanged), positions taken as independent."""
        return slate_approval(self.item_probabilities(context, action_lines))

    def close(self) -> None:
        """Release the native workspace."""
        self._workspace.finish()


def slate_approval(item_probabilities: np.ndarray) -> float:
    """The slate's approval probability from its items' (independence)."""
    return float(np.prod(np.clip(item_probabilities, 0.0, 1.0)))
