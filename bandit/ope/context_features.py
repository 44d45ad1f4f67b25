"""Context features of the reward model: numeric columns standardised, text columns one-hot.

`context_matrix` encodes a pandas frame (the reference encoding, also used by the OBP export).
`table_context_matrix` gives the same matrix straight from the log's Arrow columns, for chosen
rows only: on a 10M-row log, converting every text cell to a Python string for pandas cost
more than the whole reward model fit. Columns it cannot encode exactly like pandas (text with
nulls, numbers stored as text, mostly-missing numbers, other types) go through the pandas
encoding one column at a time.

`first_rows` and `shared_by_event` decide whether a log's positions share their event's
context, so that contexts are held once per event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NUMERIC_SHARE = 0.99  # a column at least this numeric is a number, else categories


def context_matrix(frame: pd.DataFrame, max_levels: int) -> np.ndarray:
    """Numeric context columns standardised, text columns one-hot on their top values."""
    parts = [_series_features(frame[name], max_levels) for name in frame.columns]
    if not parts:
        return np.zeros((len(frame), 0))
    return np.hstack(parts)


def _series_features(column: pd.Series, max_levels: int) -> np.ndarray:
    if _text_column(column):
        return _one_hot(column.astype(str), max_levels)
    numeric = pd.to_numeric(column, errors="coerce") if column.dtype != bool else column
    numeric = numeric.astype(float)
    if numeric.notna().mean() > NUMERIC_SHARE:
        values = numeric.fillna(numeric.mean()).to_numpy(dtype=float)
        return _standardised(values)[:, None]
    return _one_hot(column.astype(str), max_levels)


def _standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / (spread if spread > 0 else 1.0)


def _text_column(column: pd.Series) -> bool:
    """Text for sure: not a numeric dtype and a sample of it does not parse as numbers (a
    full to_numeric over millions of strings costs seconds)."""
    if pd.api.types.is_numeric_dtype(column) or column.dtype == bool:
        return False
    sample = column.iloc[:: max(1, len(column) // 1000)]
    return bool(pd.to_numeric(sample, errors="coerce").notna().mean() <= NUMERIC_SHARE)


def _one_hot(column: pd.Series, max_levels: int) -> np.ndarray:
    # Multi-valued text ("a|b") counts as one value: rare combinations fall out of the top.
    top = column.value_counts().index[:max_levels]
    codes = pd.Categorical(column, categories=top).codes
    matrix = np.zeros((len(column), len(top)))
    known = codes >= 0
    matrix[np.flatnonzero(known), codes[known]] = 1.0
    return matrix


def table_context_matrix(
    table: pa.Table, names: list[str], rows: np.ndarray | None, max_levels: int
) -> np.ndarray:
    """`context_matrix` of the named columns at `rows` (all rows when None), from Arrow."""
    count = table.num_rows if rows is None else rows.size
    parts: list[tuple[str, np.ndarray, int]] = []  # ("codes" | "dense", values, width)
    for name in names:
        column = table.column(name)
        if rows is not None:
            column = column.take(pa.array(rows))
        parts.append(_arrow_features(column, max_levels))
    matrix = np.zeros((count, sum(width for _, _, width in parts)))
    offset = 0
    for kind, values, width in parts:
        if kind == "codes":  # one-hot written in place: no per-column matrix to stack
            known = np.flatnonzero(values >= 0)
            matrix[known, offset + values[known]] = 1.0
        else:
            matrix[:, offset : offset + width] = values.reshape(count, width)
        offset += width
    return matrix


def _arrow_features(column: pa.ChunkedArray, max_levels: int) -> tuple[str, np.ndarray, int]:
    kind = column.type
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and column.null_count == 0:
        sample = column.take(pa.array(np.arange(0, len(column), max(1, len(column) // 1000))))
        if _text_column(sample.to_pandas()):
            codes = _top_level_codes(column, max_levels)
            return "codes", codes, int(codes.max(initial=-1)) + 1
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if not np.isnan(values).any():
            return "dense", _standardised(values), 1
    # Anything else is rare in practice: the reference encoding, for this column only.
    dense = _series_features(column.to_pandas(), max_levels)
    return "dense", dense, dense.shape[1]


def _top_level_codes(column: pa.ChunkedArray, max_levels: int) -> np.ndarray:
    """Per row, the rank of its value among the `max_levels` most frequent (-1 beyond).

    Levels in pandas' value_counts order: by count descending, ties in order of appearance.
    """
    encoded = pc.dictionary_encode(column).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    counts = np.bincount(codes, minlength=len(encoded.dictionary))
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0][:max_levels]
    rank = np.full(counts.size, -1, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank[codes]


def first_rows(event: np.ndarray) -> np.ndarray:
    """Index of each distinct event code's first row, in code order (np.unique's
    return_index), in one pass when codes appear in increasing order as `build_log` makes
    them; np.unique's sort otherwise."""
    if event.size == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(event.size, dtype=bool)
    new[0] = True
    np.greater(event[1:], np.maximum.accumulate(event)[:-1], out=new[1:])
    first = np.flatnonzero(new)
    if first.size == np.count_nonzero(np.bincount(event)):
        return first
    return np.unique(event, return_index=True)[1]


def shared_by_event(
    table: pa.Table, names: list[str], event: np.ndarray, first: np.ndarray
) -> bool:
    """Whether every row carries its event's first row's context (true of our own logs).

    A null on either side counts as the same value (as before: an unknown cell is no
    evidence of a different context); NaN is not equal to NaN.
    """
    head_of = np.zeros(int(event.max()) + 1, dtype=np.int64)
    head_of[event[first]] = first
    heads = head_of[event]
    for name in names:
        column = table.column(name)
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            indices = pc.dictionary_encode(column).combine_chunks().indices
            values = indices.fill_null(-1).to_numpy(zero_copy_only=False)
            unknown = values < 0
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            filled = column.fill_null(False if pa.types.is_boolean(kind) else 0)
            values = filled.to_numpy(zero_copy_only=False)
            unknown = np.asarray(column.is_null()) if column.null_count else None
        else:
            if not _same_as_heads_arrow(column, heads):
                return False
            continue
        same = values == values[heads]
        if unknown is not None:
            same |= unknown | unknown[heads]
        if not same.all():
            return False
    return True


def _same_as_heads_arrow(column: pa.ChunkedArray, heads: np.ndarray) -> bool:
    taken = column.take(pa.array(heads))
    same = pc.equal(column, taken).fill_null(True)
    return bool(pc.all(same).as_py())
