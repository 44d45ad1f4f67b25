"""The Vowpal Wabbit policy: score candidates, learn from logged rounds, save and load."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence

import numpy as np
from vowpalwabbit import Workspace

from bandit import vw_format
from bandit.config import PolicyConfig


def exploration_arguments(config: PolicyConfig) -> str:
    """The `--cb_explore_adf` flags for the config's exploration algorithm."""
    algorithm = config.algorithm
    if algorithm == "epsilon_greedy":
        return f"--epsilon {config.epsilon}"
    if algorithm == "softmax":
        return f"--softmax --lambda {config.softmax_lambda}"
    if algorithm == "bag":
        return f"--bag {config.bag_size} --epsilon {config.epsilon}"
    if algorithm == "squarecb":
        return f"--squarecb --gamma_scale {config.squarecb_gamma_scale}"
    if algorithm == "cover":
        return f"--cover {config.cover_size} --epsilon {config.epsilon}"
    return f"--rnd {config.rnd_size} --epsilon {config.epsilon}"


def vw_arguments(config: PolicyConfig) -> str:
    """The full argument string of a fresh workspace for `config`."""
    return (
        f"--cb_explore_adf {exploration_arguments(config)} -q {vw_format.INTERACTIONS} "
        f"-b {config.vw_bits} -l {config.learning_rate} --save_resume --quiet"
    )


class UnscorableContext(ValueError):
    """The policy's scores for a context are not finite numbers."""


class VWPolicy:
    """A `--cb_explore_adf` workspace; one lock so threads never share native state at once."""

    def __init__(self, workspace: Workspace, arguments: str) -> None:
        self._workspace = workspace
        self._lock = threading.Lock()
        self.arguments = arguments

    @classmethod
    def fresh(cls, config: PolicyConfig) -> VWPolicy:
        """An untrained policy with the config's settings."""
        arguments = vw_arguments(config)
        return cls(Workspace(arguments), arguments)

    @classmethod
    def from_bytes(cls, model: bytes, config: PolicyConfig) -> VWPolicy:
        """A policy restored from saved model bytes, exploring as `config` says now."""
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.vw")
            with open(path, "wb") as handle:
                handle.write(model)
            # A model file keeps its reductions; only the exploration flags may be changed.
            arguments = f"-i {path} --save_resume --quiet {exploration_arguments(config)}"
            workspace = Workspace(arguments)
        return cls(workspace, vw_arguments(config))

    def to_bytes(self) -> bytes:
        """The model, saved with everything needed to keep training it."""
        with tempfile.TemporaryDirectory() as folder, self._lock:
            path = os.path.join(folder, "model.vw")
            self._workspace.save(path)
            with open(path, "rb") as handle:
                return handle.read()

    def score(self, shared: str, actions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The exploration pmf over `actions` and each action's estimated reward."""
        with self._lock:
            examples = self._workspace.parse([shared, *actions])
            try:
                pmf = np.asarray(self._workspace.predict(examples), dtype=float)
                costs = [example.get_partial_prediction() for example in examples[1:]]
            finally:
                self._workspace.finish_example(examples)
        scores = 0.0 - np.asarray(costs, dtype=float)  # 0.0 - x: untrained reads 0.00, not -0.00
        pmf = np.clip(pmf, 0.0, None)
        if not (np.isfinite(scores).all() and np.isfinite(pmf).all() and pmf.sum() > 0):
            raise UnscorableContext(
                "context: the policy cannot score this context (its numbers overflow the "
                "model); send smaller or rescaled numeric values"
            )
        return pmf / pmf.sum(), scores

    def learn(
        self, shared: str, actions: Sequence[str], chosen: int, reward: float, probability: float
    ) -> None:
        """Update on one logged choice among `actions`."""
        lines = vw_format.labelled_example(shared, actions, chosen, reward, probability)
        with self._lock:
            self._workspace.learn(lines)

    def close(self) -> None:
        """Release the native workspace."""
        with self._lock:
            self._workspace.finish()
