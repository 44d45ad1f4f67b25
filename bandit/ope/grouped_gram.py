"""Per-group sums of [1, x] [1, x]^T and r [1, x] over the rows of a log, in one sorted pass.

The reward model's fit needs, for every (fold, action) group, the Gram matrix and moment of
its rows' context vectors. Rows are sorted by group once (a radix sort for up to 65,536
groups), then each group's rows are gathered in blocks of `BLOCK_ROWS`: one BLAS product
per block. Memory stays at a block's size whatever the log's; contexts may be held once per
event, `row_context` saying which context row each log row uses.
"""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 65_536
# Below this many rows a group is summed by einsum: a threaded BLAS spends longer waking its
# threads than multiplying a small block (28x slower on a loaded 2-core machine).
BLAS_ROWS = 4_096


def _group_order(key: np.ndarray, groups: int) -> np.ndarray:
    """Rows sorted by group key (stable), by radix sort when the keys fit 16 bits."""
    narrow = np.uint16 if groups <= 1 << 16 else np.int64
    return np.argsort(key.astype(narrow, copy=False), kind="stable")


def grouped_gram(
    contexts: np.ndarray,
    row_context: np.ndarray,
    key: np.ndarray,
    reward: np.ndarray,
    groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(groups, p + 1, p + 1) sums of xt xt^T and (groups, p + 1) sums of r xt, xt = [1, x].

    `contexts` is (C, p); log row i has context `contexts[row_context[i]]`, group `key[i]`
    in [0, groups) and reward `reward[i]`.
    """
    width = contexts.shape[1] + 1
    gram = np.zeros((groups, width, width))
    moment = np.zeros((groups, width))
    order = _group_order(key, groups)
    bounds = np.searchsorted(key[order], np.arange(groups + 1))
    for group in np.flatnonzero(np.diff(bounds)):
        for start in range(int(bounds[group]), int(bounds[group + 1]), BLOCK_ROWS):
            rows = order[start : min(start + BLOCK_ROWS, int(bounds[group + 1]))]
            block = contexts[row_context[rows]]
            r = reward[rows]
            column_sums = block.sum(axis=0)
            gram[group, 0, 0] += rows.size
            gram[group, 0, 1:] += column_sums
            gram[group, 1:, 0] += column_sums
            if rows.size >= BLAS_ROWS:
                gram[group, 1:, 1:] += block.T @ block
                moment[group, 1:] += r @ block
            else:
                gram[group, 1:, 1:] += np.einsum("ij,ik->jk", block, block)
                moment[group, 1:] += np.einsum("i,ij->j", r, block)
            moment[group, 0] += r.sum()
    return gram, moment
