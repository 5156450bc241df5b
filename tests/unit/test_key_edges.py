"""Key columns at their edges, through what `mlvault contract check` and ingest call (`check`, and the stream
reader the verify function feeds): a one-row file passes in every format and uniqueness mode (it was refused
`DUPLICATE_KEY: row 1 has 1 after 1` under "increasing": all() of no steps is null, not true), while a real
duplicate or a decreasing key is still refused with its row numbers, at the first row of a file and at the first
row of a later batch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlvault.contracts.column_checks import ValidationReport
from mlvault.contracts.schema import load_contract
from mlvault.contracts.validate import PARQUET_BATCH_ROWS, check, validate_stream
from mlvault.errors import ContractReason, VerificationError

FORMATS = ("csv", "jsonl", "parquet")
MODES = ("increasing", True, False)
COLUMNS = ("id", "x", "kind")
SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("x", pa.float64(), False),
        pa.field("kind", pa.string(), False),
    ]
)


def contracts(tmp_path: Path, fmt: str, unique) -> Path:
    """A contract directory with dataset "keys" in that format, its key `id` declared with that `unique`."""
    directory = tmp_path / "contracts"
    directory.mkdir(exist_ok=True)
    contract = {
        "dataset": "keys",
        "version": "1",
        "format": fmt,
        "max_bytes": 10_000_000,
        "rows": {"min": 1, "max": 100_000},
        "columns": [
            {"name": "id", "type": "int64", "unique": unique, "min": 1},
            {"name": "x", "type": "float64", "min": 0, "max": 10},
            {"name": "kind", "type": "string", "allowed": ["a", "b"]},
        ],
    }
    if fmt == "csv":
        contract["csv"] = {"delimiter": ",", "header": True, "encoding": "utf-8", "null_values": [""]}
    (directory / "keys.json").write_text(json.dumps(contract))
    return directory


def encoded(fmt: str, ids: list[int]) -> bytes:
    rows = [{"id": i, "x": 1.5, "kind": "a"} for i in ids]
    if fmt == "csv":
        return ("id,x,kind\n" + "".join(f"{r['id']},{r['x']},{r['kind']}\n" for r in rows)).encode()
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), sink)
    return sink.getvalue()


def checked(tmp_path: Path, fmt: str, unique, ids: list[int]) -> ValidationReport:
    """`check` on the file (what the CLI calls); for CSV and JSON Lines also `validate_stream` on its bytes (what
    the verify function calls on the S3 body): both must agree."""
    directory = contracts(tmp_path, fmt, unique)
    data = encoded(fmt, ids)
    path = tmp_path / f"batch.{fmt}"
    path.write_bytes(data)
    report = check(path, dataset="keys", directory=directory)
    if fmt != "parquet":
        streamed = validate_stream(io.BytesIO(data), load_contract(directory, "keys"), size=len(data))
        assert streamed == report
    return report


def refused(tmp_path: Path, fmt: str, unique, ids: list[int]) -> tuple[str, str]:
    directory = contracts(tmp_path, fmt, unique)
    data = encoded(fmt, ids)
    path = tmp_path / f"batch.{fmt}"
    path.write_bytes(data)
    with pytest.raises(VerificationError) as from_file:
        check(path, dataset="keys", directory=directory)
    if fmt != "parquet":
        with pytest.raises(VerificationError) as from_stream:
            validate_stream(io.BytesIO(data), load_contract(directory, "keys"), size=len(data))
        assert (from_stream.value.reason, from_stream.value.detail) == (from_file.value.reason, from_file.value.detail)
    return from_file.value.reason, from_file.value.detail


def report(fmt: str, rows: int) -> ValidationReport:
    return ValidationReport(dataset="keys", contract_version="1", format=fmt, rows=rows, columns=COLUMNS)


@pytest.mark.parametrize("unique", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_one_row_file_passes_in_every_format_and_uniqueness_mode(tmp_path, fmt, unique):
    assert checked(tmp_path, fmt, unique, [1]) == report(fmt, 1)


@pytest.mark.parametrize("unique", MODES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_two_increasing_rows_pass(tmp_path, fmt, unique):
    assert checked(tmp_path, fmt, unique, [6, 7]) == report(fmt, 2)


@pytest.mark.parametrize(
    ("unique", "detail"),
    [
        ("increasing", "column id must strictly increase; row 2 has 7 after 7"),
        (True, "column id must be unique; 1 row(s) repeat an earlier row's value: 7 at rows [1, 2]"),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_two_row_file_with_a_real_duplicate_is_still_refused_with_its_rows(tmp_path, fmt, unique, detail):
    assert refused(tmp_path, fmt, unique, [7, 7]) == (ContractReason.DUPLICATE_KEY, detail)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_duplicate_passes_where_the_key_is_not_unique(tmp_path, fmt):
    assert checked(tmp_path, fmt, False, [7, 7]) == report(fmt, 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_decreasing_key_is_still_refused_under_increasing(tmp_path, fmt):
    assert refused(tmp_path, fmt, "increasing", [7, 6]) == (
        ContractReason.DUPLICATE_KEY,
        "column id must strictly increase; row 2 has 6 after 7",
    )


@pytest.mark.parametrize("unique", [True, False])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_decreasing_key_passes_unless_it_must_increase(tmp_path, fmt, unique):
    assert checked(tmp_path, fmt, unique, [7, 6]) == report(fmt, 2)


# --- the first row of a later batch: a one-row batch after a full one (Parquet: PARQUET_BATCH_ROWS a batch) ----


def test_a_one_row_last_batch_is_compared_with_the_batch_before(tmp_path):
    ids = list(range(1, PARQUET_BATCH_ROWS + 1))
    assert checked(tmp_path, "parquet", "increasing", [*ids, PARQUET_BATCH_ROWS + 1]) == report(
        "parquet", PARQUET_BATCH_ROWS + 1
    )
    assert refused(tmp_path, "parquet", "increasing", [*ids, PARQUET_BATCH_ROWS]) == (
        ContractReason.DUPLICATE_KEY,
        f"column id must strictly increase; row {PARQUET_BATCH_ROWS + 1} has {PARQUET_BATCH_ROWS} after "
        f"{PARQUET_BATCH_ROWS}",
    )
    assert refused(tmp_path, "parquet", True, [*ids, PARQUET_BATCH_ROWS]) == (
        ContractReason.DUPLICATE_KEY,
        "column id must be unique; 1 row(s) repeat an earlier row's value: "
        f"{PARQUET_BATCH_ROWS} at rows [{PARQUET_BATCH_ROWS}, {PARQUET_BATCH_ROWS + 1}]",
    )
