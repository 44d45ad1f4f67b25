"""Per-group sums of [1, x] [1, x]^T and r [1, x] over the rows of a log, chunk by chunk.

The reward model's fit needs, for every (fold, action) group, the Gram matrix and moment of
its rows' context vectors. Rows are read in the log's order, a chunk at a time, so the
contexts they use are read nearly sequentially (a gather over the whole context matrix in
group order cost 4x more); each chunk is sorted by group (a radix sort while keys fit 16
bits) into one buffer holding [1, x, r] per row, and one matrix product per group segment
gives all three sums at once. Memory stays at a chunk's size whatever the log's.
"""

from __future__ import annotations

import numpy as np

from bandit.ope.context_store import ContextColumns

CHUNK_ROWS = 65_536
MAX_CHUNK_ROWS = 1 << 20
# Below this many rows a segment is summed by einsum: a threaded BLAS spends longer waking its
# threads than multiplying a tiny block (28x slower on a loaded 2-core machine).
BLAS_ROWS = 512


def grouped_gram(
    contexts: ContextColumns,
    row_context: np.ndarray,
    key: np.ndarray,
    reward: np.ndarray,
    groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(groups, p + 1, p + 1) sums of xt xt^T and (groups, p + 1) sums of r xt, xt = [1, x].

    `contexts` is x (C, p); log row i has context `contexts[row_context[i]]`, group `key[i]`
    in [0, groups) and reward `reward[i]`.
    """
    p = contexts.width
    sums = np.zeros((groups, p + 2, p + 2))
    # Chunks hold many rows per group on average, so that segments stay big enough for BLAS.
    chunk = int(min(max(CHUNK_ROWS, 64 * groups), MAX_CHUNK_ROWS))
    buffer = np.empty((chunk, p + 2))
    buffer[:, 0] = 1.0
    narrow = np.uint16 if groups <= 1 << 16 else np.int64
    for start in range(0, key.size, chunk):
        stop = min(start + chunk, key.size)
        chunk_key = key[start:stop].astype(narrow)
        order = np.argsort(chunk_key, kind="stable")
        sorted_key = chunk_key[order]
        block = buffer[: stop - start]
        contexts.fill(row_context[start:stop][order], block[:, 1 : p + 1])
        block[:, p + 1] = reward[start:stop][order]
        cuts = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1
        bounds = [0, *cuts.tolist(), block.shape[0]]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            segment = block[lo:hi]
            if hi - lo >= BLAS_ROWS:
                sums[sorted_key[lo]] += segment.T @ segment
            else:
                sums[sorted_key[lo]] += np.einsum("ij,ik->jk", segment, segment)
    # [1, x, r]^T [1, x, r] holds the Gram matrix of [1, x] and, in its last row, sum r [1, x].
    return sums[:, : p + 1, : p + 1].copy(), sums[:, p + 1, : p + 1].copy()
