"""Event ids compared and checked for repeats straight from Arrow's buffers: no hash table, no
copy of the strings.

Hashing 5M event ids into a dictionary (`pyarrow.compute.dictionary_encode`) cost ~2 s of a
10M-row replay, and gathering a target file's 5M run heads to compare them with the log's
ids ~0.6 s. When every event's rows are consecutive, which is how logs are written, the run
heads are the distinct ids and their codes are 0, 1, 2, ...: that only needs a check that no
head repeats (`surely_distinct`), and a target listing events in the log's order only needs
its heads compared with the log's ids in place (`equal_rows`).

Both read each string 8 bytes at a time as little-endian uint64 words of an unaligned view of
the data buffer, bytes past the string's end masked off. `surely_distinct` folds the words
and the length into a 64-bit key: equal strings get equal keys, so distinct keys prove
distinct strings (one sort shows it); equal keys (a repeated id or, very rarely, two ids with
the same key) answer False and the caller hashes the strings instead. `equal_rows` compares
lengths and words exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

CHUNK = 1 << 20  # rows handled at a time: a few 8 MB temporaries
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
# _MASKS[r]: the low r bytes of a word (r = 0..8), to drop bytes past a string's end.
_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(9)], dtype=np.uint64)


@dataclass(frozen=True)
class _Text:
    """A plain string array's offsets and its data buffer as 8-byte words."""

    offsets: np.ndarray  # int64, len(values) + 1
    data: np.ndarray  # uint8, at least 8 bytes
    words: np.ndarray  # uint64 view: words[p] = data[p : p + 8], little-endian

    @classmethod
    def of(cls, values: pa.Array) -> _Text | None:
        """The array's buffers, or None when it is not a plain string array."""
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return None
        width = np.int64 if pa.types.is_large_string(values.type) else np.int32
        _, offset_buffer, data_buffer = values.buffers()
        first = values.offset
        offsets = np.frombuffer(offset_buffer, dtype=width)[first : first + len(values) + 1]
        data = (
            np.zeros(0, np.uint8) if data_buffer is None else np.frombuffer(data_buffer, np.uint8)
        )
        if data.size < 8:  # too short for one word: a padded copy (a few bytes)
            data = np.concatenate([data, np.zeros(8, dtype=np.uint8)])
        words = np.ndarray((data.size - 7,), dtype=np.uint64, buffer=data, strides=(1,))
        return cls(offsets.astype(np.int64), data, words)

    def word(self, rows: np.ndarray, index: int) -> np.ndarray:
        """Bytes 8 index .. 8 index + 7 of each row's string, zero past its end."""
        start = self.offsets[rows] + 8 * index
        left = np.clip(self.offsets[rows + 1] - start, 0, 8)
        # Reads near the buffer's end start up to 7 bytes early and shift the extra bytes out.
        at = np.minimum(start, self.words.size - 1)
        early = np.minimum(start - at, 7).astype(np.uint64)
        return (self.words[at] >> (early * np.uint64(8))) & _MASKS[left]

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """Byte length of each row's string."""
        return self.offsets[rows + 1] - self.offsets[rows]


def surely_distinct(values: pa.Array) -> bool:
    """True when no two values are equal; False when two are or the check cannot tell."""
    if values.null_count or len(values) < 2:
        return values.null_count == 0 and _Text.of(values) is not None
    keys = text_keys(values)
    if keys is None:
        return False
    keys.sort()
    return not bool(np.any(keys[1:] == keys[:-1]))


def text_keys(values: pa.Array) -> np.ndarray | None:
    """A 64-bit key per string that depends only on its bytes (uint64); None if not text."""
    text = _Text.of(values)
    if text is None:
        return None
    keys = np.empty(len(values), dtype=np.uint64)
    for begin in range(0, len(values), CHUNK):
        rows = np.arange(begin, min(begin + CHUNK, len(values)))
        length = text.lengths(rows)
        key = _mixed(length.astype(np.uint64))
        for index in range(-(-int(length.max(initial=0)) // 8)):
            key = _mixed(key ^ text.word(rows, index))
        keys[begin : begin + CHUNK] = key
    return keys


def equal_rows(
    left: pa.Array | pa.ChunkedArray, rows: np.ndarray, right: pa.Array
) -> np.ndarray | None:
    """Per i, whether left[rows[i]] == right[i], byte for byte (`rows` ascending; a null is
    equal to nothing); None when either side is not plain text."""
    theirs = _Text.of(right)
    chunks = left.chunks if isinstance(left, pa.ChunkedArray) else [left]
    if theirs is None or right.null_count or len(rows) != len(right):
        return None
    same = np.zeros(len(rows), dtype=bool)
    base = 0
    for chunk in chunks:
        low, high = np.searchsorted(rows, [base, base + len(chunk)])
        ours = _Text.of(chunk)
        if ours is None:
            return None
        for begin in range(int(low), int(high), CHUNK):
            end = min(begin + CHUNK, int(high))
            mine, other = rows[begin:end] - base, np.arange(begin, end)
            equal = ours.lengths(mine) == theirs.lengths(other)
            longest = int(ours.lengths(mine).max(initial=0))
            for index in range(-(-longest // 8)):
                equal &= ours.word(mine, index) == theirs.word(other, index)
            if chunk.null_count:
                equal &= np.asarray(chunk.is_valid())[mine]
            same[begin:end] = equal
        base += len(chunk)
    return same


def _mixed(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX[0]
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX[1]
    return x ^ (x >> np.uint64(31))
