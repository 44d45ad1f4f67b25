"""The value ranges the schema's integer columns really hold, on every backend.

SQLite stores any 64-bit integer in an INTEGER column, PostgreSQL's INTEGER is 32-bit: an input
checked against SQLite's range would pass there and fail on PostgreSQL with a DataError. So
every edge checks against the range of the column's declared type, the same on both backends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger
from sqlalchemy.sql.elements import KeyedColumnElement

from bandit.db.models import CatalogItem, ReviewTask

_BITS_BY_TYPE: tuple[tuple[type, int], ...] = ((SmallInteger, 16), (BigInteger, 64), (Integer, 32))


def integer_range(column: KeyedColumnElement[Any]) -> tuple[int, int]:
    """The smallest and largest value the column's declared integer type holds."""
    for kind, bits in _BITS_BY_TYPE:
        if isinstance(column.type, kind):
            return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    raise TypeError(f"{column.name} is not an integer column ({column.type})")


# Every table's key is the same kind of column; the review task id is the one URLs carry.
ROW_ID_MAX = integer_range(ReviewTask.__table__.c.id)[1]
STOCK_MAX = integer_range(CatalogItem.__table__.c.stock)[1]
