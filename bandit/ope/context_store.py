"""The reward model's context matrix x, held compactly: one-hot blocks as codes, numbers dense.

A 10M-row log with one text column of 8 values and one number needs 720 MB as a float64
matrix, 90 MB this way. Whoever needs the matrix asks for the rows it is working on
(`fill`), a chunk at a time, into a buffer it reuses; predictions need only row-wise dot
products with coefficients (`rowwise_dot`), where a one-hot block costs one lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ContextPart:
    """Columns [offset, offset + width) of x: `values` (C, width) floats, or, for a one-hot
    block, `codes` (C,) the column within the block (-1: all zero)."""

    offset: int
    width: int
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    all_known: bool = False  # every code >= 0: no row of the block is all zero


@dataclass(frozen=True)
class ContextColumns:
    """x of C context rows, p columns, as parts."""

    rows: int
    width: int
    parts: tuple[ContextPart, ...]

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> ContextColumns:
        """A dense matrix as one part (tests, small inputs)."""
        part = ContextPart(0, matrix.shape[1], values=matrix)
        return cls(matrix.shape[0], matrix.shape[1], (part,))

    @classmethod
    def from_parts(cls, rows: int, parts: list[tuple[str, np.ndarray, int]]) -> ContextColumns:
        """From ("codes", code per row, width) and ("dense", values, width) parts, in order."""
        built, offset = [], 0
        for kind, values, width in parts:
            if kind == "codes":
                narrow = np.int16 if width < 1 << 15 else np.int32
                known = bool(values.min(initial=0) >= 0)
                built.append(
                    ContextPart(offset, width, codes=values.astype(narrow), all_known=known)
                )
            else:
                built.append(ContextPart(offset, width, values=values.reshape(rows, width)))
            offset += width
        return cls(rows, offset, tuple(built))

    def fill(self, index: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write x[index] into `out` (len(index), p), which may be a strided view."""
        for part in self.parts:
            block = out[:, part.offset : part.offset + part.width]
            if part.values is not None:
                block[...] = part.values[index]
                continue
            assert part.codes is not None
            block[...] = 0.0
            codes = part.codes[index]
            if part.all_known:
                block[np.arange(index.size), codes] = 1.0
            else:
                known = np.flatnonzero(codes >= 0)
                block[known, codes[known]] = 1.0
        return out

    def rowwise_dot(self, index: np.ndarray, weights: np.ndarray, which: np.ndarray) -> np.ndarray:
        """x[index[i]] . weights[which[i]] for every i, without building x[index]: a dense
        column costs one product, a one-hot block one lookup of its row's coefficient."""
        out = np.zeros(index.size)
        weights = np.ascontiguousarray(weights)  # callers pass it contiguous: no copy per chunk
        flat_weights, stride = weights.ravel(), weights.shape[1]
        for part in self.parts:
            if part.values is not None:
                for column in range(part.width):
                    out += weights[which, part.offset + column] * part.values[index, column]
                continue
            assert part.codes is not None
            codes = part.codes[index].astype(np.int64)
            picked = flat_weights[which * stride + part.offset + np.maximum(codes, 0)]
            out += picked if part.all_known else np.where(codes >= 0, picked, 0.0)
        return out

    def take(self, index: np.ndarray) -> np.ndarray:
        """x[index] as a new matrix."""
        return self.fill(index, np.empty((index.size, self.width)))

    def dense(self) -> np.ndarray:
        """The whole matrix (tests, small inputs)."""
        return self.take(np.arange(self.rows))
