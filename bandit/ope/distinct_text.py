"""Whether the strings of an Arrow array all differ, without a hash table of them.

Hashing 5M event ids into a dictionary (`pyarrow.compute.dictionary_encode`) cost ~2 s of a
10M-row replay. When every event's rows are consecutive, which is how logs are written, the
run heads are the distinct ids and their codes are 0, 1, 2, ...: that only needs a check that
no head repeats. Each string is folded into a 64-bit key (its bytes read 8 at a time straight
from the Arrow buffers, mixed with its length); equal strings get equal keys, so distinct keys
prove distinct strings, and one sort of the keys shows it. Equal keys (a repeated id or, very
rarely, two ids with the same key) answer False and the caller hashes the strings instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

CHUNK = 1 << 18  # rows folded at a time: keeps the (rows, 8) byte gather near 16 MB
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def surely_distinct(values: pa.Array) -> bool:
    """True when no two values are equal; False when two are or the check cannot tell."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return False
    if values.null_count or len(values) < 2:
        return values.null_count == 0
    keys = np.sort(text_keys(values))
    return not bool(np.any(keys[1:] == keys[:-1]))


def text_keys(values: pa.Array) -> np.ndarray:
    """A 64-bit key per string that depends only on its bytes (uint64)."""
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    _, offset_buffer, data_buffer = values.buffers()
    first = values.offset
    offsets = np.frombuffer(offset_buffer, dtype=width)[first : first + len(values) + 1]
    data = np.zeros(0, np.uint8) if data_buffer is None else np.frombuffer(data_buffer, np.uint8)
    # Padding so every 8-byte read stays inside the buffer; pad bytes are masked to zero.
    padded = np.concatenate([data[: int(offsets[-1])], np.zeros(8, dtype=np.uint8)])
    keys = np.empty(len(values), dtype=np.uint64)
    lanes = np.arange(8)
    for begin in range(0, len(values), CHUNK):
        start = offsets[begin : begin + CHUNK + 1].astype(np.int64)
        length = np.diff(start)
        start = start[:-1]
        key = _mixed(length.astype(np.uint64))
        for word in range(int(-(-int(length.max(initial=0)) // 8))):
            at = start[:, None] + (8 * word + lanes)
            inside = (8 * word + lanes) < length[:, None]
            chunk_bytes = np.where(inside, padded[np.minimum(at, padded.size - 1)], 0)
            packed = np.ascontiguousarray(chunk_bytes, dtype=np.uint8).view(np.uint64).ravel()
            key = _mixed(key ^ packed)
        keys[begin : begin + CHUNK] = key
    return keys


def _mixed(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX[0]
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX[1]
    return x ^ (x >> np.uint64(31))
