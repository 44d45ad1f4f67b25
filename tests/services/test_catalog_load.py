"""`hitl catalog load FILE`: CSV and Parquet, documented columns, bad files refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bandit.db.models import CatalogItem
from curation_app.cli import main
from tests.api_support import event_url, ranked, snapshot

HTML_TITLE = "<b>bold</b><script>x</script>"
FULL = pd.DataFrame(
    {
        "item_id": ["sku-1", "sku-2", "sku-3"],
        "title": ["Linen shirt", "Wool coat", "Silk scarf"],
        "category": ["top", "coat", "accessory"],
        "price": [39.5, None, 12.0],
        "stock": [3, 0, 7],
        "active": [True, True, False],
        "colour": ["white", "navy", None],
        "material": ["linen", "wool", "silk"],
        "emb_0": [0.1, -0.2, 0.3],
        "emb_1": [1.0, 0.5, -1.5],
        "emb_2": [0.0, 2.0, 0.25],
    }
)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _load(path: Path, database_url: str) -> Result:
    return CliRunner().invoke(main, ["catalog", "load", str(path), "--database-url", database_url])


def _items(sessions: sessionmaker[Session]) -> dict[str, dict[str, Any]]:
    with sessions() as session:
        return {
            item.item_id: {
                "title": item.title,
                "category": item.category,
                "price": item.price,
                "stock": item.stock,
                "active": item.active,
                "attributes": item.attributes,
                "embedding": item.embedding,
            }
            for item in session.scalars(select(CatalogItem))
        }


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_documented_column_is_stored(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session], suffix: str
) -> None:
    result = _load(_write(FULL, tmp_path / f"catalog{suffix}"), database_url)

    assert result.exit_code == 0, result.output
    assert "3 items added, 0 updated" in result.output
    items = _items(session_factory)
    assert items["sku-1"] == {
        "title": "Linen shirt",
        "category": "top",
        "price": 39.5,
        "stock": 3,
        "active": True,
        "attributes": {"colour": "white", "material": "linen"},
        "embedding": [0.1, 1.0, 0.0],
    }
    assert items["sku-2"]["price"] is None
    assert items["sku-2"]["stock"] == 0
    assert items["sku-3"]["active"] is False
    assert items["sku-3"]["attributes"] == {"material": "silk"}  # a blank attribute is left out


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_three_required_columns_are_enough(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session], suffix: str
) -> None:
    frame = FULL[["item_id", "title", "category"]]

    result = _load(_write(frame, tmp_path / f"minimal{suffix}"), database_url)

    assert result.exit_code == 0, result.output
    assert _items(session_factory)["sku-1"] == {
        "title": "Linen shirt",
        "category": "top",
        "price": None,
        "stock": 1,
        "active": True,
        "attributes": {},
        "embedding": None,
    }


def test_loading_again_updates_known_items_and_adds_new_ones(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    _load(_write(FULL, tmp_path / "first.csv"), database_url)
    second = pd.DataFrame(
        {"item_id": ["sku-1", "sku-9"], "title": ["Linen shirt II", "Cap"], "category": ["top"] * 2}
    )

    result = _load(_write(second, tmp_path / "second.csv"), database_url)

    assert result.exit_code == 0, result.output
    assert "1 items added, 1 updated" in result.output
    items = _items(session_factory)
    assert set(items) == {"sku-1", "sku-2", "sku-3", "sku-9"}
    assert items["sku-1"]["title"] == "Linen shirt II"


def _csv(text: str) -> str:
    return "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"


BAD_FILES = {
    "missing-column": (
        "bad.csv",
        _csv("""item_id,category
                a1,top"""),
        ["title"],
    ),
    "duplicate-item-id": (
        "bad.csv",
        _csv("""item_id,title,category
                a1,Shirt,top
                a1,Shirt again,top"""),
        ["row 3", "item_id", "a1"],
    ),
    "negative-price": (
        "bad.csv",
        _csv("""item_id,title,category,price
                a1,Shirt,top,10
                a2,Coat,coat,-5"""),
        ["row 3", "price"],
    ),
    "non-numeric-embedding": (
        "bad.csv",
        _csv("""item_id,title,category,emb_0,emb_1
                a1,Shirt,top,0.1,0.2
                a2,Coat,coat,0.3,abc"""),
        ["emb_1"],
    ),
    "negative-stock": (
        "bad.csv",
        _csv("""item_id,title,category,stock
                a1,Shirt,top,2
                a2,Coat,coat,-1"""),
        ["row 3", "stock"],
    ),
    "empty-title": (
        "bad.csv",
        _csv("""item_id,title,category
                a1,,top"""),
        ["row 2", "title"],
    ),
    "empty-file": ("bad.csv", "", ["bad.csv"]),
    "corrupt-parquet": ("bad.parquet", "not parquet at all", ["bad.parquet"]),
    "unknown-extension": ("catalog.xlsx", "item_id,title,category\n", [".csv or .parquet"]),
    "nonexistent-file": (None, "", ["no such file"]),
}


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES.values(), ids=list(BAD_FILES))
def test_a_bad_file_is_refused_by_name_and_leaves_the_catalog_unchanged(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    name: str | None,
    content: str,
    expected: list[str],
) -> None:
    assert _load(_write(FULL, tmp_path / "good.csv"), database_url).exit_code == 0
    before = snapshot(session_factory)
    path = tmp_path / (name or "missing.csv")
    if name is not None:
        path.write_text(content, encoding="utf-8")

    result = _load(path, database_url)

    assert result.exit_code != 0
    assert "Error:" in result.output
    for fragment in expected:
        assert fragment in result.output
    assert "Traceback" not in result.output
    assert snapshot(session_factory) == before


@pytest.mark.parametrize(
    ("column", "bad_value"), [("price", "cheap"), ("emb_1", "abc"), ("stock", "many")]
)
def test_a_non_numeric_cell_is_blamed_on_its_own_row(
    tmp_path: Path, database_url: str, column: str, bad_value: str
) -> None:
    frame = FULL[["item_id", "title", "category", "price", "stock", "emb_0", "emb_1"]].copy()
    frame[column] = frame[column].astype(object)
    frame.loc[2, column] = bad_value  # the third data row is line 4 of the file

    result = _load(_write(frame.fillna(1.0), tmp_path / "catalog.csv"), database_url)

    assert result.exit_code != 0
    assert f"row 4, column {column}" in result.output


def test_active_words_in_a_text_column_are_honoured(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        _csv("""item_id,title,category,active
                a1,Shirt,top,false
                a2,Coat,coat,
                a3,Scarf,accessory,no
                a4,Belt,accessory,yes"""),
        encoding="utf-8",
    )

    assert _load(path, database_url).exit_code == 0

    items = _items(session_factory)
    assert [items[i]["active"] for i in ("a1", "a2", "a3", "a4")] == [False, True, False, True]


def test_an_html_title_is_stored_verbatim_and_returned_as_plain_json(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    client: FlaskClient,
    auth_headers: dict[str, str],
) -> None:
    frame = pd.DataFrame(
        {
            "item_id": ["html-1", "plain-2", "plain-3"],
            "title": [HTML_TITLE, "Plain", "Also plain"],
            "category": ["top"] * 3,
        }
    )
    assert _load(_write(frame, tmp_path / "catalog.csv"), database_url).exit_code == 0
    assert _items(session_factory)["html-1"]["title"] == HTML_TITLE

    event_id = ranked(client, auth_headers, {"segment": "test"}, slate_size=3)["event_id"]
    response = client.get(event_url(event_id), headers=auth_headers)

    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    titles = {p["item_id"]: p["title"] for p in response.get_json()["proposed_slate"]}
    assert titles["html-1"] == HTML_TITLE


def test_parquet_lists_and_dates_become_json_attributes(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    frame = FULL[["item_id", "title", "category"]].copy()
    frame["sizes"] = [["S", "M"], ["L"], []]
    frame["launched"] = pd.to_datetime(["2026-03-01 00:00", "2026-04-15 08:30", "2026-05-20 12:00"])

    assert _load(_write(frame, tmp_path / "catalog.parquet"), database_url).exit_code == 0

    attributes = _items(session_factory)["sku-2"]["attributes"]
    assert attributes == {"sizes": ["L"], "launched": "2026-04-15T08:30:00"}


BAD_ATTRIBUTES = {
    "infinite-number": ("fit", [1.0, float("inf"), 2.0], "row 3, column fit"),
    "nested-mapping": ("extra", [{"a": 1}, {"a": 2}, {"a": 3}], "row 2, column extra"),
    "nul-in-text": ("colour", ["white", "na\x00vy", "red"], "row 3, column colour"),
    "nul-in-title": ("title", ["ok", "bad\x00title", "ok"], "row 3, column title"),
}


@pytest.mark.parametrize(
    ("column", "values", "expected"), BAD_ATTRIBUTES.values(), ids=list(BAD_ATTRIBUTES)
)
def test_a_parquet_cell_json_cannot_hold_is_refused_by_row_and_column(
    tmp_path: Path,
    database_url: str,
    session_factory: sessionmaker[Session],
    column: str,
    values: list[Any],
    expected: str,
) -> None:
    assert _load(_write(FULL, tmp_path / "good.csv"), database_url).exit_code == 0
    before = snapshot(session_factory)
    frame = FULL[["item_id", "title", "category"]].copy()
    frame[column] = values

    result = _load(_write(frame, tmp_path / "bad.parquet"), database_url)

    assert result.exit_code != 0
    assert expected in result.output and "Traceback" not in result.output
    assert snapshot(session_factory) == before


def test_a_catalog_beyond_the_bound_parameter_limit_loads_and_reloads(
    session_factory: sessionmaker[Session],
) -> None:
    # PostgreSQL allows 65,535 bound parameters per statement; one IN () over all ids would fail.
    from bandit.services import catalog_store

    count = 66_000
    rows: list[dict[str, object]] = [
        {
            "item_id": f"bulk-{n}",
            "title": f"Item {n}",
            "category": "top",
            "price": 1.0,
            "stock": 1,
            "active": True,
            "attributes": {},
            "embedding": None,
        }
        for n in range(count)
    ]
    with session_factory() as session:
        assert catalog_store.upsert_items(session, rows) == (count, 0)
        session.commit()
        assert catalog_store.upsert_items(session, rows[:10]) == (0, 10)
