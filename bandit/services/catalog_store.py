"""Reading catalog files into the database, and the catalog as the engine sees it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session, defer

from bandit.db.limits import STOCK_MAX
from bandit.db.models import CatalogItem, SystemState
from bandit.engine.catalog import CatalogIndex, CatalogRow
from bandit.services import change_feed

REQUIRED_COLUMNS = ("item_id", "title", "category")
RESERVED_COLUMNS = ("item_id", "title", "category", "price", "stock", "active", "image_url")
# Item ids appear in URLs, HTML and VW text: letters, digits and . _ : - only (documented).
ITEM_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
ITEM_ID_RULE = "1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
IMAGE_URL_LIMIT = 2000
# A picture: an http(s) URL, or a relative path under the media folder (no '..', no scheme).
_IMAGE_URL = re.compile(r"https?://[^\s\"'<>]+")
_MEDIA_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
EMBEDDING_PREFIX = "emb_"
CATALOG_REVISION = "catalog_revision"
COLUMN_NAME_LIMIT = 100
# Embedding values are multiplied in single precision by the pre-scorer; far beyond this they
# overflow float32 to inf and every score becomes NaN.
MAX_EMBEDDING_VALUE = 1e6
# JSON numbers beyond 2**53 lose precision in every client that reads them as doubles.
MAX_ATTRIBUTE_INT = 2**53


class CatalogFileError(ValueError):
    """A catalog file cannot be loaded; the message names the column or row."""


def load_catalog_file(path: Path) -> list[dict[str, Any]]:
    """A CSV or Parquet catalog file's validated rows; a refusal names the file first."""
    try:
        return rows_from_frame(read_catalog_file(path))
    except CatalogFileError as error:
        raise CatalogFileError(f"{path}: {error}") from error


def read_catalog_file(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet catalog file, checking its columns (messages omit the path)."""
    if not path.exists():
        raise CatalogFileError("no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            # Only an empty cell is missing: pandas would also read "NA", "null" or "nan" as
            # blank, so a title "NA" vanished and a price "nan" passed as no price.
            frame = pd.read_csv(
                path,
                dtype={"item_id": str, "title": str, "category": str},
                keep_default_na=False,
                na_values=[""],
            )
        elif suffix in (".parquet", ".pq"):
            # pyarrow refuses a column named twice with a dump of the whole schema; say it plainly.
            _refuse_repeated_columns(pq.read_schema(path).names)
            frame = pd.read_parquet(path)
        else:
            raise CatalogFileError("expected a .csv or .parquet file")
    except UnicodeDecodeError as error:
        raise CatalogFileError(_first_undecodable_line(path)) from error
    except IsADirectoryError as error:
        raise CatalogFileError("is a directory, not a catalog file") from error
    except (ValueError, OSError) as error:
        if isinstance(error, CatalogFileError):
            raise
        raise CatalogFileError(f"cannot read: {error}") from error
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogFileError(f"missing required column(s): {', '.join(missing)}")
    return frame


def _refuse_repeated_columns(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:  # one of the two would silently win
            raise CatalogFileError(f"header: column {name!r} appears more than once")
        seen.add(name)


def _first_undecodable_line(path: Path) -> str:
    """Where a CSV stops being UTF-8 (pandas only says which byte of some buffer)."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return f"line {number}, byte {error.start + 1}: not UTF-8 text; save it as UTF-8"
    return "not UTF-8 text; save it as UTF-8"


def rows_from_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Validated catalog rows from a data frame; the first bad row is named."""
    for position, column in enumerate(frame.columns, start=1):
        _check_column_name(column, position)
    _refuse_repeated_columns([str(c) for c in frame.columns])
    embedding_columns = sorted(
        (c for c in frame.columns if str(c).startswith(EMBEDDING_PREFIX)),
        key=lambda c: int(str(c)[len(EMBEDDING_PREFIX) :]) if str(c)[4:].isdigit() else 10**9,
    )
    attribute_columns = [
        c for c in frame.columns if c not in RESERVED_COLUMNS and c not in embedding_columns
    ]
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, record in enumerate(frame.to_dict(orient="records"), start=2):
        fields = {str(key): value for key, value in record.items()}
        rows.append(_validated_row(fields, number, embedding_columns, attribute_columns, seen))
    return rows


def _validated_row(
    record: dict[str, Any],
    number: int,
    embedding_columns: Sequence[str],
    attribute_columns: Sequence[str],
    seen: set[str],
) -> dict[str, Any]:
    where = f"row {number}"
    item_id = _text(record.get("item_id"), f"{where}, column item_id", 128, controls=False)
    if not ITEM_ID_PATTERN.fullmatch(item_id):
        raise CatalogFileError(
            f"{where}, column item_id: {item_id!r} is not a valid id ({ITEM_ID_RULE})"
        )
    if item_id in seen:
        raise CatalogFileError(f"{where}, column item_id: duplicate item id {item_id!r}")
    seen.add(item_id)
    price = _number(record.get("price"))
    if price is not None and (not math.isfinite(price) or price < 0):
        raise CatalogFileError(f"{where}, column price: must be a non-negative number")
    stock = _number(record.get("stock"), default=1.0)
    if stock is None or not stock.is_integer() or not 0 <= stock <= STOCK_MAX:
        raise CatalogFileError(
            f"{where}, column stock: must be a whole number from 0 to {STOCK_MAX}"
        )
    embedding = [_number(record[c]) for c in embedding_columns]
    for column, value in zip(embedding_columns, embedding, strict=True):
        if value is None or not math.isfinite(value) or abs(value) > MAX_EMBEDDING_VALUE:
            raise CatalogFileError(
                f"{where}, column {column}: must be a finite number within ±{MAX_EMBEDDING_VALUE:g}"
            )
    attributes = {
        str(c): _attribute(record[c], f"{where}, column {c}")
        for c in attribute_columns
        if not _missing(record[c])
    }
    return {
        "item_id": item_id,
        "title": _text(record.get("title"), f"{where}, column title", 500),
        "category": _text(record.get("category"), f"{where}, column category", 100, controls=False),
        "price": price,
        "stock": int(stock),
        "active": _flag(record.get("active"), f"{where}, column active"),
        "attributes": attributes,
        "embedding": [float(v) for v in embedding if v is not None] or None,
        "image_url": _image_url(record.get("image_url"), f"{where}, column image_url"),
    }


def _image_url(value: Any, where: str) -> str | None:
    """An http(s) URL or a relative path under the media folder; blank means none."""
    value = _plain(value)
    if _missing(value) or not str(value).strip():
        return None
    text = str(value).strip()
    if len(text) > IMAGE_URL_LIMIT:
        raise CatalogFileError(f"{where}: longer than {IMAGE_URL_LIMIT} characters")
    if _IMAGE_URL.fullmatch(text):
        return text
    if _MEDIA_PATH.fullmatch(text) and ".." not in text.split("/"):
        return text
    raise CatalogFileError(
        f"{where}: must be an http(s) URL or a path under the media folder "
        f"(letters, digits, '.', '_', '-', '/'; no '..'); got {text[:80]!r}"
    )


def _number(value: Any, default: float | None = None) -> float | None:
    """A cell as a float; text is parsed, because one text cell turns a CSV column into text.

    A missing cell gives `default`; a cell that is not a number gives NaN so callers reject it.
    """
    value = _plain(value)
    if _missing(value):
        return default
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return math.nan


TRUE_WORDS = ("true", "t", "yes", "y", "1")
FALSE_WORDS = ("false", "f", "no", "n", "0")


def _flag(value: Any, where: str) -> bool:
    """The `active` cell: blank means active; words are read, never bool() of a string."""
    value = _plain(value)
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, bool):
        return value
    word = str(int(value) if isinstance(value, float) and value.is_integer() else value)
    word = word.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CatalogFileError(f"{where}: must be true or false; got {value!r}")


def _missing(value: Any) -> bool:
    if isinstance(value, np.ndarray | list | tuple):
        return False
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _check_column_name(column: Any, position: int) -> None:
    """Column names become attribute keys: plain, short, printable text."""
    name = str(column)
    where = f"header, column {position} ({name!r})"
    if not isinstance(column, str) or not name.strip():
        raise CatalogFileError(f"{where}: a column name must be non-empty text")
    if len(name) > COLUMN_NAME_LIMIT:
        raise CatalogFileError(f"{where}: column names are at most {COLUMN_NAME_LIMIT} characters")
    if _has_control(name):
        raise CatalogFileError(f"{where}: a column name must not contain control characters")


def _has_control(text: str) -> bool:
    return any(ord(character) < 32 or ord(character) == 127 for character in text)


def _text(value: Any, where: str, limit: int, controls: bool = True) -> str:
    """A text cell. Numbers are read as their text (a CSV id column of digits); lists,
    structs and bytes are refused rather than stored as their Python repr."""
    value = _plain(value)
    if _missing(value):
        raise CatalogFileError(f"{where}: must not be empty")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CatalogFileError(f"{where}: must be text; got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise CatalogFileError(f"{where}: must not be empty")
    if len(text) > limit:
        raise CatalogFileError(f"{where}: longer than {limit} characters")
    if "\x00" in text:
        raise CatalogFileError(f"{where}: contains a NUL character")
    if not controls and _has_control(text):
        raise CatalogFileError(f"{where}: must not contain control characters (tab, newline, ...)")
    return text


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray | list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a struct"
    if isinstance(value, bytes | bytearray):
        return "binary data"
    return f"a value of type {type(value).__name__}"


ATTRIBUTE_TEXT_LIMIT = 1000
ATTRIBUTE_LIST_LIMIT = 100


def _attribute(value: Any, where: str) -> Any:
    """An attribute cell as JSON every backend stores: text, integer, finite number, flag,
    ISO date-time, or a short list of those."""
    if isinstance(value, np.ndarray | list | tuple):
        items = list(value)
        if len(items) > ATTRIBUTE_LIST_LIMIT:
            raise CatalogFileError(f"{where}: lists hold at most {ATTRIBUTE_LIST_LIMIT} values")
        return [_scalar_attribute(item, where) for item in items]
    return _scalar_attribute(value, where)


def _scalar_attribute(value: Any, where: str) -> Any:
    if isinstance(value, datetime | date | pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).isoformat()
    value = _plain(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_ATTRIBUTE_INT:
            raise CatalogFileError(f"{where}: integers must be within ±2**53; got {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CatalogFileError(f"{where}: must be a finite number; got {value}")
        return value
    if isinstance(value, str):
        if len(value) > ATTRIBUTE_TEXT_LIMIT or "\x00" in value:
            raise CatalogFileError(
                f"{where}: text must be at most {ATTRIBUTE_TEXT_LIMIT} characters, without NUL"
            )
        return value.strip()
    raise CatalogFileError(
        f"{where}: unsupported value of type {type(value).__name__} "
        "(use text, numbers, true/false, dates or lists of those)"
    )


def _plain(value: Any) -> Any:
    # Only numpy scalars: an array cell (a Parquet list) has .item() too, and it raises.
    if isinstance(value, np.generic):
        return value.item()
    return value


def upsert_items(session: Session, rows: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Insert new items and update known ones; returns (inserted, updated)."""
    rows = list(rows)
    existing = items_by_id(session, (r["item_id"] for r in rows))
    inserted = updated = 0
    for row in rows:
        item = existing.get(row["item_id"])
        if item is None:
            session.add(CatalogItem(**row))
            inserted += 1
        else:
            for key, value in row.items():
                setattr(item, key, value)
            updated += 1
    bump_catalog_revision(session)
    return inserted, updated


def bump_catalog_revision(session: Session) -> None:
    """Tell every serving process that the catalog changed."""
    state = session.get(SystemState, CATALOG_REVISION)
    if state is None:
        session.add(SystemState(key=CATALOG_REVISION, value=1))
    else:
        state.value += 1
    change_feed.announce(session)


def catalog_revision(session: Session) -> int:
    """The current catalog revision (0 before any load)."""
    state = session.get(SystemState, CATALOG_REVISION)
    return 0 if state is None else state.value


def as_row(item: CatalogItem) -> CatalogRow:
    """The engine's view of a stored catalog item."""
    return CatalogRow(
        item_id=item.item_id,
        title=item.title,
        category=item.category,
        attributes=item.attributes,
        embedding=item.embedding,
        price=item.price,
        stock=item.stock,
        active=item.active,
    )


def load_index(session: Session) -> CatalogIndex:
    """Every active catalog item as column arrays."""
    items = session.scalars(select(CatalogItem).where(CatalogItem.active.is_(True)))
    return CatalogIndex(as_row(i) for i in items)


def search_items(
    session: Session, query: str, category: str | None = None, limit: int = 20
) -> list[CatalogItem]:
    """Items in stock whose id, title or category contains `query` (case-insensitive)."""
    # LIKE wildcards typed by a curator are literal characters, not patterns.
    escaped = query.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    statement = select(CatalogItem).where(
        CatalogItem.active.is_(True),
        CatalogItem.stock > 0,
        or_(
            func.lower(CatalogItem.title).like(pattern, escape="\\"),
            func.lower(CatalogItem.item_id).like(pattern, escape="\\"),
            func.lower(CatalogItem.category).like(pattern, escape="\\"),
        ),
    )
    if category:
        statement = statement.where(CatalogItem.category == category)
    return list(session.scalars(statement.order_by(CatalogItem.title).limit(limit)))


@dataclass(frozen=True)
class DisplayItem:
    """What a page or a task document shows of a catalog item, and whether it can be offered."""

    item_id: str
    title: str
    category: str
    attributes: dict[str, Any] | None
    price: float | None
    image_url: str | None
    active: bool
    stock: int


def display_items(session: Session, item_ids: Iterable[str]) -> dict[str, DisplayItem]:
    """`items_by_id` for showing items: plain rows, no embeddings and no ORM bookkeeping.

    A claimed task shows about 55 items (the slate and its candidates) on every claim; as
    ORM objects they cost about twice as much to read.
    """
    ids = sorted(set(item_ids))
    found: dict[str, DisplayItem] = {}
    for start in range(0, len(ids), 500):  # under every backend's bound-parameter limit
        rows = session.execute(_display_query(), {"ids": ids[start : start + 500]})
        found.update((row[0], DisplayItem(*row)) for row in rows)
    return found


@cache
def _display_query() -> Select[Any]:
    # Built once per process and bound per call.
    columns = (CatalogItem.item_id, CatalogItem.title, CatalogItem.category)
    shown = (CatalogItem.attributes, CatalogItem.price, CatalogItem.image_url)
    offered = (CatalogItem.active, CatalogItem.stock)
    return select(*columns, *shown, *offered).where(
        CatalogItem.item_id.in_(bindparam("ids", expanding=True))
    )


def items_by_id(
    session: Session, item_ids: Iterable[str], without_embeddings: bool = False
) -> dict[str, CatalogItem]:
    """Catalog items keyed by item id, for the ids that exist.

    `without_embeddings`: for display, which never reads them (they load on first access).
    """
    ids = sorted(set(item_ids))
    found: dict[str, CatalogItem] = {}
    # Chunked so a long id list stays under every backend's bound-parameter limit.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        statement = select(CatalogItem).where(CatalogItem.item_id.in_(chunk))
        if without_embeddings:
            statement = statement.options(defer(CatalogItem.embedding))
        found.update((i.item_id, i) for i in session.scalars(statement))
    return found
