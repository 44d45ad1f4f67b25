"""Broken catalog files and policy configs, one table per edge: each is refused by the CLI with
exit 1 and a message naming the file, row, column or field, and no table changes.

The database already holds a catalog, customers, an event and a policy config, so an edge that
wrote before refusing would show up in the snapshot of every table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from curation_app.cli import main
from tests.api_support import DELIVER_AT_ONCE, activate_config, ranked, snapshot
from tests.conftest import DemoCatalog

HEADER = "item_id,title,category,price,stock"


@dataclass(frozen=True)
class BadFile:
    """A file to write (name and bytes, or a builder), and words the refusal must contain."""

    name: str
    content: bytes | Callable[[Path], None]
    names: tuple[str, ...]


def _csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


def _parquet(**columns: pa.Array) -> Callable[[Path], None]:
    base = {
        "item_id": pa.array(["p-1"]),
        "title": pa.array(["Linen shirt"]),
        "category": pa.array(["tops"]),
    }

    def write(path: Path) -> None:
        pq.write_table(pa.table({**base, **columns}), path)

    return write


def _duplicate_columns(path: Path) -> None:
    names = ["item_id", "title", "category", "price", "price"]
    values = [["p-1"], ["Shirt"], ["tops"], [1.0], [2.0]]
    pq.write_table(pa.Table.from_arrays([pa.array(v) for v in values], names=names), path)


CATALOG_CASES = {
    # CSV
    "csv-stock-above-int32": BadFile(
        "c.csv", _csv(HEADER, "n-1,Shirt,tops,10,2147483648"), ("row 2", "stock", "2147483647")
    ),
    "csv-stock-negative": BadFile("c.csv", _csv(HEADER, "n-1,Shirt,tops,10,-1"), ("stock",)),
    "csv-stock-fraction": BadFile("c.csv", _csv(HEADER, "n-1,Shirt,tops,10,1.5"), ("stock",)),
    "csv-stock-word": BadFile("c.csv", _csv(HEADER, "n-1,Shirt,tops,10,many"), ("stock",)),
    "csv-price-nan": BadFile("c.csv", _csv(HEADER, "n-1,Shirt,tops,nan,1"), ("row 2", "price")),
    "csv-price-inf": BadFile("c.csv", _csv(HEADER, "n-1,Shirt,tops,inf,1"), ("price",)),
    "csv-price-negative": BadFile("c.csv", _csv(HEADER, "n-1,Shirt,tops,-3,1"), ("price",)),
    "csv-nul-in-column-name": BadFile(
        "c.csv", _csv("item_id,title,category,col\x00our", "n-1,Shirt,tops,red"), ("column 4",)
    ),
    "csv-control-in-column-name": BadFile(
        "c.csv", _csv('item_id,title,category,"a\tb"', "n-1,Shirt,tops,red"), ("column 4",)
    ),
    "csv-missing-category": BadFile("c.csv", _csv("item_id,title", "n-1,Shirt"), ("category",)),
    "csv-not-utf8": BadFile(
        "c.csv", _csv(HEADER) + "n-1,Chemise \xe9t\xe9,tops,1,1\n".encode("latin-1"), ("line 2",)
    ),
    "csv-empty-file": BadFile("c.csv", b"", ("c.csv",)),
    "csv-binary": BadFile("c.csv", bytes(range(256)) * 4, ("c.csv",)),
    "csv-duplicate-id": BadFile(
        "c.csv", _csv(HEADER, "n-1,Shirt,tops,1,1", "n-1,Skirt,bottoms,1,1"), ("row 3", "item_id")
    ),
    "csv-empty-title": BadFile("c.csv", _csv(HEADER, 'n-1,"  ",tops,1,1'), ("row 2", "title")),
    "csv-tab-in-item-id": BadFile(
        "c.csv", _csv(HEADER, '"n\t1",Shirt,tops,1,1'), ("row 2", "item_id", "control")
    ),
    "csv-nul-in-title": BadFile("c.csv", _csv(HEADER, "n-1,Sh\x00irt,tops,1,1"), ("title",)),
    "csv-embedding-huge": BadFile(
        "c.csv", _csv("item_id,title,category,emb_0", "n-1,Shirt,tops,1e300"), ("emb_0",)
    ),
    "csv-attribute-int-too-big": BadFile(
        "c.csv",
        _csv("item_id,title,category,sold", "n-1,Shirt,tops,1152921504606846976"),
        ("row 2", "sold"),
    ),  # fmt: skip
    "csv-active-word": BadFile(
        "c.csv", _csv("item_id,title,category,active", "n-1,Shirt,tops,maybe"), ("active",)
    ),
    "wrong-extension": BadFile("c.xlsx", b"PK\x03\x04", (".csv or .parquet",)),
    # Parquet
    "parquet-title-list": BadFile(
        "c.parquet", _parquet(title=pa.array([["Linen", "shirt"]])), ("title", "list")
    ),
    "parquet-category-struct": BadFile(
        "c.parquet", _parquet(category=pa.array([{"name": "tops"}])), ("category", "struct")
    ),
    "parquet-title-binary": BadFile(
        "c.parquet", _parquet(title=pa.array([b"\xff\xfe"], pa.binary())), ("title", "binary")
    ),
    "parquet-stock-above-int32": BadFile(
        "c.parquet", _parquet(stock=pa.array([2**40], pa.int64())), ("row 2", "stock")
    ),
    "parquet-price-inf": BadFile("c.parquet", _parquet(price=pa.array([float("inf")])), ("price",)),
    "parquet-embedding-nan": BadFile(
        "c.parquet", _parquet(emb_0=pa.array([float("nan")])), ("emb_0",)
    ),
    "parquet-attribute-struct": BadFile(
        "c.parquet", _parquet(fit=pa.array([{"waist": 1}])), ("column fit",)
    ),
    "parquet-nul-in-column-name": BadFile(
        "c.parquet", _parquet(**{"co\x00l": pa.array(["x"])}), ("column 4",)
    ),
    "parquet-duplicate-column": BadFile(
        "c.parquet", _duplicate_columns, ("'price'", "more than once")
    ),
    "parquet-corrupt": BadFile("c.parquet", b"PAR1" + b"\x00" * 64 + b"PAR1", ("c.parquet",)),
}

POLICY_CASES = {
    "toml-epsilon-nan": BadFile("p.toml", b"epsilon = nan\n", ("epsilon", "finite")),
    "toml-auto-threshold-nan": BadFile("p.toml", b"auto_threshold = nan\n", ("auto_threshold",)),
    "toml-learning-rate-inf": BadFile("p.toml", b"learning_rate = inf\n", ("learning_rate",)),
    "toml-learning-rate-absurd": BadFile("p.toml", b"learning_rate = 1e300\n", ("learning_rate",)),
    "toml-temperature-inf": BadFile(
        "p.toml", b"uncertainty_temperature = inf\n", ("uncertainty_temperature",)
    ),
    "toml-not-utf8": BadFile("p.toml", 'name = "\xe9t\xe9"\n'.encode("latin-1"), ("UTF-8",)),
    "toml-binary": BadFile("p.toml", bytes(range(256)), ("p.toml",)),
    "toml-syntax": BadFile("p.toml", b"epsilon = = 1\n", ("p.toml",)),
    "toml-epsilon-text": BadFile("p.toml", b'epsilon = "0.1"\n', ("epsilon",)),
    "toml-unknown-field": BadFile("p.toml", b"colour = 1\n", ("colour", "unknown")),
    "toml-table": BadFile("p.toml", b"[policy]\nepsilon = 0.1\n", ("policy",)),
    "toml-vw-bits-huge": BadFile("p.toml", b"vw_bits = 9223372036854775807\n", ("vw_bits",)),
    "toml-name-control": BadFile("p.toml", b'name = "a\\u0000b"\n', ("name",)),
    "json-nan": BadFile("p.json", b'{"epsilon": NaN}', ("epsilon", "finite")),
    "json-infinity": BadFile("p.json", b'{"softmax_lambda": Infinity}', ("softmax_lambda",)),
    "json-huge-number": BadFile("p.json", b'{"squarecb_gamma_scale": 1e999}', ("squarecb",)),
    "json-list": BadFile("p.json", b"[1, 2]", ("mapping",)),
    "json-deep": BadFile("p.json", b"[" * 100_000 + b"]" * 100_000, ("p.json",)),
    "json-not-utf8": BadFile("p.json", b'{"name": "\xff"}', ("UTF-8",)),
    "json-syntax": BadFile("p.json", b'{"epsilon": }', ("p.json",)),
    "wrong-extension": BadFile("p.yaml", b"epsilon: 0.1\n", (".toml or .json",)),
}


@pytest.fixture
def stored_state(
    client: FlaskClient,
    auth_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    demo_catalog: DemoCatalog,
) -> None:
    """A catalog, a config and a delivered event: rows a refused file must leave alone."""
    activate_config(session_factory, **DELIVER_AT_ONCE)
    ranked(client, auth_headers, dict(demo_catalog.customers[0]))


def _write(tmp_path: Path, case: BadFile) -> Path:
    path = tmp_path / case.name
    if callable(case.content):
        case.content(path)
    else:
        path.write_bytes(case.content)
    return path


def _refused(arguments: list[str], case_names: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    for words in case_names:
        assert words in result.output, result.output


@pytest.mark.usefixtures("stored_state")
@pytest.mark.parametrize("case", list(CATALOG_CASES.values()), ids=list(CATALOG_CASES))
def test_broken_catalog_files_are_refused_by_name(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session], case: BadFile
) -> None:
    path = _write(tmp_path, case)
    before = snapshot(session_factory)

    _refused(["catalog", "load", str(path), "--database-url", database_url], case.names)
    # The file comes first, then the row or line and column (a directory says so instead).
    result = CliRunner().invoke(
        main, ["catalog", "load", str(path), "--database-url", database_url]
    )
    assert result.output.startswith(f"Error: {path}: "), result.output

    assert snapshot(session_factory) == before


@pytest.mark.usefixtures("stored_state")
@pytest.mark.parametrize("case", list(POLICY_CASES.values()), ids=list(POLICY_CASES))
def test_broken_policy_configs_are_refused_by_name(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session], case: BadFile
) -> None:
    path = _write(tmp_path, case)
    before = snapshot(session_factory)

    _refused(["policy", "set", str(path), "--database-url", database_url], (*case.names, path.name))

    assert snapshot(session_factory) == before


@pytest.mark.usefixtures("stored_state")
@pytest.mark.parametrize("command", ["catalog load", "policy set"])
def test_a_directory_is_refused_by_name(
    tmp_path: Path, database_url: str, session_factory: sessionmaker[Session], command: str
) -> None:
    folder = tmp_path / ("items.csv" if command == "catalog load" else "policy.toml")
    folder.mkdir()
    before = snapshot(session_factory)

    _refused([*command.split(), str(folder), "--database-url", database_url], ("directory",))

    assert snapshot(session_factory) == before


ARGUMENT_CASES = {
    "curator-name-with-nul": (
        ["curator", "add", "a\x00b", "--password", "long-enough-pw"],
        "username",
    ),
    "curator-name-too-long": (
        ["curator", "add", "c" * 81, "--password", "long-enough-pw"],
        "username",
    ),
    "curator-password-short": (["curator", "add", "dana", "--password", "short"], "password"),
    "token-name-with-nul": (["token", "create", "svc\x00"], "token name"),
    "token-name-with-newline": (["token", "create", "svc\nx"], "token name"),
    "token-name-too-long": (["token", "create", "t" * 121], "token name"),
    "token-unknown-curator": (["token", "create", "svc", "--curator", "nobody"], "nobody"),
}


@pytest.mark.usefixtures("stored_state")
@pytest.mark.parametrize(("arguments", "names"), ARGUMENT_CASES.values(), ids=list(ARGUMENT_CASES))
def test_bad_account_arguments_are_refused_by_name(
    database_url: str, session_factory: sessionmaker[Session], arguments: list[str], names: str
) -> None:
    before = snapshot(session_factory)

    _refused([*arguments, "--database-url", database_url], (names,))

    assert snapshot(session_factory) == before
