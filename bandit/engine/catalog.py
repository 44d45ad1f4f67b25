"""The catalog as column arrays, so pruning never loops over items in Python."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CatalogRow:
    """One catalog item as the engine needs it."""

    item_id: str
    title: str
    category: str
    attributes: Mapping[str, Any]
    embedding: Sequence[float] | None
    price: float | None
    stock: int
    active: bool = True


def _codes(values: Sequence[str]) -> tuple[np.ndarray, dict[str, int]]:
    vocabulary: dict[str, int] = {}
    codes = np.fromiter(
        (vocabulary.setdefault(v, len(vocabulary)) for v in values),
        dtype=np.int32,
        count=len(values),
    )
    return codes, vocabulary


class CatalogIndex:
    """Column arrays over the catalog plus a lookup from item id to row."""

    def __init__(self, rows: Iterable[CatalogRow]) -> None:
        self.rows: list[CatalogRow] = list(rows)
        n = len(self.rows)
        self.item_ids = np.array([r.item_id for r in self.rows], dtype=object)
        self.index_of = {r.item_id: i for i, r in enumerate(self.rows)}
        self.category_codes, self.categories = _codes([r.category for r in self.rows])
        self.style_codes, self.styles = _codes(
            [str(r.attributes.get("style", "")) for r in self.rows]
        )
        # One code per (category, style) pair, so the pre-score reads both through one table.
        styles = max(len(self.styles), 1)
        self.category_style_codes = self.category_codes * styles + self.style_codes
        self.price = np.array(
            [np.nan if r.price is None else float(r.price) for r in self.rows], dtype=float
        )
        self.available = np.array([r.active and r.stock > 0 for r in self.rows], dtype=bool)
        self.popularity = np.array(
            [_as_float(r.attributes.get("popularity"), 0.0) for r in self.rows], dtype=float
        )
        self.embeddings = _embedding_matrix(self.rows, n)
        # Learned from logged curator outcomes (services/affinity.py); the runtime replaces
        # the whole array after each learning pass, so readers never see it half-written.
        self.learned_affinity = np.zeros(n)
        # Arrays pruning derives from the columns once instead of on every request.
        self.derived: dict[str, np.ndarray] = {}
        # The same, in the row order of pruning's grouped layout (large catalogs only).
        self.grouped: dict[str, np.ndarray] = {}
        # Pruning's bonus tables per (style, favourite categories) of a request.
        self.bonus_tables: dict[
            tuple[int | None, frozenset[int], bool], tuple[np.ndarray, np.ndarray | None]
        ] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, item_id: str) -> CatalogRow | None:
        """The row of an item, or None when the catalog has no such item."""
        index = self.index_of.get(item_id)
        return None if index is None else self.rows[index]

    def indices(self, item_ids: Iterable[str]) -> np.ndarray:
        """Row indices of the known items among `item_ids`."""
        found = [self.index_of[i] for i in item_ids if i in self.index_of]
        return np.array(found, dtype=np.int64)


def _as_float(value: Any, default: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return default
    return result if np.isfinite(result) else default


def _embedding_matrix(rows: list[CatalogRow], n: int) -> np.ndarray | None:
    dims = {len(r.embedding) for r in rows if r.embedding}
    if len(dims) != 1:
        return None
    (dim,) = dims
    matrix = np.zeros((n, dim), dtype=np.float32)
    for i, r in enumerate(rows):
        if r.embedding:
            matrix[i] = r.embedding
    return matrix
