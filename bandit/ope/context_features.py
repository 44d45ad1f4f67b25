"""Context features of the reward model: numeric columns standardised, text columns one-hot.

`context_matrix` encodes a pandas frame (the reference encoding, also used by the OBP export).
`log_context_matrix` gives the same matrix straight from the log's Arrow columns, for chosen
rows only: on a 10M-row log, converting every text cell to a Python string for pandas cost
more than the whole reward model fit. Columns it cannot encode exactly like pandas (text with
nulls, numbers stored as text, mostly-missing numbers, other types) go through the pandas
encoding one column at a time.

It also decides whether a log's positions share their event's context, so that contexts are
held once per event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bandit.ope.context_store import ContextColumns

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
    codes = pd.Index(top).get_indexer(column)  # -1 beyond the top
    matrix = np.zeros((len(column), len(top)))
    known = codes >= 0
    matrix[np.flatnonzero(known), codes[known]] = 1.0
    return matrix


@dataclass(frozen=True)
class _Column:
    """One context column as numpy: text as dictionary codes (-1 where null), numbers and
    booleans as values (nulls filled, `unknown` marking them); `other` types stay Arrow."""

    arrow: pa.ChunkedArray
    kind: str  # "codes", "values" or "other"
    values: np.ndarray | None = None
    unknown: np.ndarray | None = None
    dictionary: pa.Array | None = None


def _column(arrow: pa.ChunkedArray) -> _Column:
    kind = arrow.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encoded = pc.dictionary_encode(arrow).combine_chunks()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return _Column(arrow, "codes", codes, codes < 0, encoded.dictionary)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        filled = arrow.fill_null(False if pa.types.is_boolean(kind) else 0)
        unknown = np.asarray(arrow.is_null()) if arrow.null_count else None
        return _Column(arrow, "values", filled.to_numpy(zero_copy_only=False), unknown)
    return _Column(arrow, "other")


def log_context_matrix(
    table: pa.Table, names: list[str], features: list[str], event: np.ndarray, max_levels: int
) -> tuple[ContextColumns, np.ndarray | None]:
    """The context matrix of the `features` columns once per event when every one of `names`
    is shared by an event's rows, else once per row; with each event's first row when per
    event (None when per row). Each column is encoded once, for the check and the features.
    """
    columns = {name: _column(table.column(name)) for name in names}
    first = first_rows(event)
    shared = first.size < event.size and _shared_by_event(list(columns.values()), event, first)
    rows = first if shared else None
    parts = [_features(columns[name], rows, max_levels) for name in features]
    return ContextColumns.from_parts(event.size if rows is None else rows.size, parts), rows


def _features(
    column: _Column, rows: np.ndarray | None, max_levels: int
) -> tuple[str, np.ndarray, int]:
    """The column's part of the matrix at `rows`, encoded exactly as `_series_features`."""
    values = (
        None if column.values is None else column.values if rows is None else column.values[rows]
    )
    unknown = column.unknown is not None and bool(
        column.unknown.any() if rows is None else column.unknown[rows].any()
    )
    if column.kind == "codes" and not unknown:
        assert values is not None and column.dictionary is not None
        sample = column.dictionary.take(pa.array(values[:: max(1, values.size // 1000)]))
        if _text_column(sample.to_pandas()):
            ranks = _top_level_ranks(values, len(column.dictionary), max_levels)
            return "codes", ranks, int(ranks.max(initial=-1)) + 1
    elif column.kind == "values" and not unknown:
        assert values is not None
        numbers = values.astype(float)
        if not np.isnan(numbers).any():
            return "dense", _standardised(numbers), 1
    # Anything else is rare in practice: the reference encoding, for this column only.
    arrow = column.arrow if rows is None else column.arrow.take(pa.array(rows))
    dense = _series_features(arrow.to_pandas(), max_levels)
    return "dense", dense, dense.shape[1]


def _top_level_ranks(codes: np.ndarray, levels: int, max_levels: int) -> np.ndarray:
    """Per row, the rank of its value among the `max_levels` most frequent (-1 beyond).

    Levels in pandas' value_counts order: by count descending, ties in order of appearance.
    """
    counts = np.bincount(codes, minlength=levels)
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


def _shared_by_event(columns: list[_Column], event: np.ndarray, first: np.ndarray) -> bool:
    """Whether every row carries its event's first row's value in every column.

    A null on either side counts as the same value (an unknown cell is no evidence of a
    different context); NaN is not equal to NaN.
    """
    head_of = np.zeros(int(event.max()) + 1, dtype=np.int64)
    head_of[event[first]] = first
    heads = head_of[event]
    for column in columns:
        if column.values is None:
            taken = column.arrow.take(pa.array(heads))
            if not pc.all(pc.equal(column.arrow, taken).fill_null(True)).as_py():
                return False
            continue
        same = column.values == column.values[heads]
        if column.unknown is not None:
            same |= column.unknown | column.unknown[heads]
        if not same.all():
            return False
    return True
