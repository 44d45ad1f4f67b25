"""The Vowpal Wabbit policy: score candidates, learn from logged rounds, save and load."""

from __future__ import annotations

import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

import numpy as np
import pylibvw
from vowpalwabbit import Workspace

from bandit.engine import vw_format
from bandit.engine.config import PolicyConfig


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
    large_action_space = (
        f" --large_action_space --max_actions {config.las_max_actions}"
        if config.action_space == "vw_large_action_space"
        else ""
    )
    return (
        f"--cb_explore_adf {exploration_arguments(config)}{large_action_space} "
        f"-q {vw_format.INTERACTIONS} -b {config.vw_bits} -l {config.learning_rate} "
        "--save_resume --quiet"
    )


class UnscorableContext(ValueError):
    """The policy's scores for a context are not finite numbers."""


# A parsed VW example holds fixed arrays for all 256 namespaces, about 32 KB whatever its
# features, so the kept examples are bounded: about 64 MB per workspace.
KEPT_ACTION_EXAMPLES = 2_048
# A workspace starts keeping after this many requests and updates. Short-lived ones spend more
# making examples one by one than they save: the simulator (a new serving model every 25
# decisions, learner passes of about 100 updates) ran ~3% slower when keeping began at 50.
KEEP_AFTER_USES = 200


class _KeptActions:
    """Action lines parsed once per workspace and reused by every later request and update.

    VW hands a multi-line example back as it found it after `predict_multi` or `learn_multi`
    (the shared features are merged into each action and taken out again), so deciding and
    learning on a kept action example gives exactly the pmfs and scores of parsing its text
    afresh; tests/engine/test_policy.py checks this for every algorithm. A request then parses
    one shared line instead of K + 1 lines, and an update two, or one when its shared line is
    the one parsed last (it follows the request it learns from, or another position of it).
    Examples made one by one belong to Python, not to the workspace's pool: they are freed
    with their last reference and are never finished (`finish_example` would hand them to
    the pool).

    Made one by one, an example costs about five times its share of a bulk parse, so keeping
    pays only when most lines come again, many times. `actions` answers None (the caller
    parses the request from text, as before) for a workspace's first `KEEP_AFTER_USES` calls,
    and for good once the distinct lines outgrow the capacity (a catalog whose requests range
    over more items than that), when the kept ones are dropped.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._label_type = workspace.get_label_type().value
        self._capacity = KEPT_ACTION_EXAMPLES
        self._examples: dict[str, Any] = {}
        self._uses = 0
        self._outgrown = False
        # The last lines found all kept and none twice, with their examples: a request's
        # update, and the next request over the same candidates, skip the look-ups.
        self._last_lines: tuple[str, ...] = ()
        self._last_examples: list[Any] = []
        self._last_shared_line: str | None = None
        self._last_shared: Any = None

    def parse(self, line: str) -> Any:
        """A new example of `line`, owned by the caller."""
        return pylibvw.example(self._workspace, self._label_type, line)

    def shared(self, line: str) -> Any:
        """The example of a shared line: the last one's again when it is the same line (an
        update after the request it learns from, or the next position of the same context)."""
        if line != self._last_shared_line:
            self._last_shared = self.parse(line)
            self._last_shared_line = line
        return self._last_shared

    def actions(self, lines: Sequence[str]) -> list[Any] | None:
        """The kept examples of `lines`, in order (a line repeated gets its own copy), or None
        while the workspace is young or once the lines seen have outgrown the capacity."""
        if self._outgrown:
            return None
        if self._uses < KEEP_AFTER_USES:
            self._uses += 1
            return None
        lines = tuple(lines)
        if lines == self._last_lines:
            return list(self._last_examples)
        kept = self._examples
        examples = list(map(kept.get, lines))
        if None not in examples and len(set(lines)) == len(lines):
            # Every line kept already, none twice: the common request.
            self._last_lines, self._last_examples = lines, examples
            return list(examples)
        examples = []
        seen: set[str] = set()
        for line in lines:
            example = kept.get(line)
            if example is None:
                if len(kept) >= self._capacity:
                    self._outgrown = True
                    self.clear()
                    return None
                example = kept[line] = self.parse(line)
            elif line in seen:
                # One example twice in a list would get the shared features merged in twice.
                example = self.parse(line)
            seen.add(line)
            examples.append(example)
        return examples

    def clear(self) -> None:
        """Drop every kept example (before the workspace goes)."""
        self._examples.clear()
        self._last_lines, self._last_examples = (), []
        self._last_shared_line, self._last_shared = None, None


class VWPolicy:
    """A `--cb_explore_adf` workspace; one lock so threads never share native state at once."""

    def __init__(self, workspace: Workspace, arguments: str) -> None:
        self._workspace = workspace
        self._lock = threading.Lock()
        self._kept = _KeptActions(workspace)
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

    def score(
        self, shared: str, actions: Sequence[str], keep_actions: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exploration pmf over `actions` and each action's estimated reward."""
        with self.scoring(shared, actions, keep_actions) as score_subset:
            return score_subset(np.arange(len(actions)))

    @contextmanager
    def scoring(
        self, shared: str, actions: Sequence[str], keep_actions: bool = True
    ) -> Iterator[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
        """Parse a request once; yield a function scoring any subset of its actions.

        ``score_subset(indices)`` is the policy's decision over ``actions[indices]`` alone: a
        linear ADF model scores each action on its own features, so predicting on a sub-list of
        the parsed examples equals parsing that sub-list afresh (tests/test_policy.py checks
        this for every algorithm). Parsing once saves the text parse of every later slate
        position. Catalog action lines are kept parsed across requests while they fit
        (`_KeptActions`); otherwise, and with `keep_actions=False` (for lines that will not
        come again: explanations' variants), the request is parsed in the workspace's pool
        and finished on exit.
        """
        with self._lock:
            kept = self._kept.actions(actions) if keep_actions else None
            if kept is None:
                examples = self._parse([shared, *actions])
            else:
                examples = [self._kept.shared(shared), *kept]
            whole = np.arange(len(actions))
            try:

                def score_subset(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                    if indices.shape == whole.shape and np.array_equal(indices, whole):
                        return self._predict(examples)
                    return self._predict([examples[0], *map(examples.__getitem__, indices + 1)])

                yield score_subset
            finally:
                if kept is None:  # parsed from the workspace's pool: handed back to it
                    pylibvw.vw._finish_example_multi_ex(self._workspace, examples)

    def _parse(self, lines: Sequence[str]) -> list[Any]:
        # The native parser directly: pyvw.parse wraps every line in a Python Example object,
        # which costs more than VW's own parse and predict for a 100-action request.
        return list(self._workspace._parse("\n".join(lines)))

    def _predict(self, examples: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        pylibvw.vw.predict_multi(self._workspace, examples)
        # np.maximum(x, 0.0) is what np.clip(x, 0.0, None) calls, and np.add.reduce what
        # .sum() calls, without their Python wrappers.
        pmf = np.maximum(np.asarray(examples[0].get_action_scores(), dtype=float), 0.0)
        get = pylibvw.example.get_partial_prediction
        costs = np.fromiter(map(get, islice(examples, 1, None)), float, len(examples) - 1)
        scores = 0.0 - costs  # 0.0 - x: untrained reads 0.00, not -0.00
        total = np.add.reduce(pmf)
        # VW's action scores and partial predictions are C floats, whose sum cannot overflow
        # a double: each sum is finite exactly when all its terms are.
        if not (math.isfinite(np.add.reduce(scores)) and math.isfinite(total) and total > 0):
            raise UnscorableContext(
                "context: the policy cannot score this context (its numbers overflow the "
                "model); send smaller or rescaled numeric values"
            )
        return pmf / total, scores

    def learn(
        self, shared: str, actions: Sequence[str], chosen: int, reward: float, probability: float
    ) -> None:
        """Update on one logged choice among `actions`."""
        with self._lock:
            kept = self._kept.actions(actions)
            if kept is None:
                lines = vw_format.labelled_example(shared, actions, chosen, reward, probability)
                examples = self._parse(lines)
                try:
                    pylibvw.vw.learn_multi(self._workspace, examples)
                finally:
                    pylibvw.vw._finish_example_multi_ex(self._workspace, examples)
                return
            examples = [self._kept.shared(shared), *kept]
            # The label goes on a fresh example: a kept one must stay unlabelled, and VW has
            # no call that takes a cost off an example again.
            labelled = vw_format.labelled_action(actions[chosen], reward, probability)
            examples[chosen + 1] = self._kept.parse(labelled)
            pylibvw.vw.learn_multi(self._workspace, examples)

    def offer(
        self, shared: str, actions: Sequence[str], chosen: int, reward: float, probability: float
    ) -> np.ndarray:
        """One logged round through an `--explore_eval` workspace (see `explore_evaluator`):
        the pmf it scored the actions with before deciding whether to learn from the round."""
        lines = vw_format.labelled_example(shared, actions, chosen, reward, probability)
        with self._lock:
            examples = self._parse(lines)
            try:
                pylibvw.vw.learn_multi(self._workspace, examples)
                pmf = np.asarray(examples[0].get_action_scores(), dtype=float)
            finally:
                pylibvw.vw._finish_example_multi_ex(self._workspace, examples)
        return pmf

    @classmethod
    def explore_evaluator(cls, config: PolicyConfig, seed: int = 0) -> VWPolicy:
        """A fresh policy under VW's `--explore_eval`: at each logged round it scores, draws
        from its own pmf by rejection (accept with pi(a) / mu(a) times the running multiplier,
        VW's generator seeded by `seed`) and learns only from accepted rounds."""
        arguments = f"{vw_arguments(config)} --explore_eval --random_seed {seed}"
        return cls(Workspace(arguments), arguments)

    def close(self) -> None:
        """Release the native workspace."""
        with self._lock:
            self._kept.clear()
            self._workspace.finish()
