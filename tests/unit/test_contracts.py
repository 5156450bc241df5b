"""Data contracts: one file per reason code that triggers exactly it, the explicit-null and inference traps,
Parquet schema checks, and contract files validated as a whole."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlvault.contracts.schema import ContractError, load_all, parse_contract
from mlvault.contracts.validate import check, validate_file
from mlvault.errors import ContractReason, VerificationError

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
IRIS = load_all(CONTRACTS)["iris"]
HEADER = "sample_id,sepal_length,sepal_width,petal_length,petal_width,site,notes,species\n"
GOOD_ROWS = [
    "1,5.1,3.5,1.4,0.2,fr-01,,setosa\n",
    "2,7.0,3.2,4.7,1.4,de-02,checked,versicolor\n",
    "3,6.3,3.3,6.0,2.5,fr-01,,virginica\n",
]


def csv_file(tmp_path, text: str | bytes, name="batch.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def rejected(path, contract=IRIS) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        validate_file(path, contract)
    return err.value


def test_a_good_csv_passes(tmp_path):
    report = validate_file(csv_file(tmp_path, HEADER + "".join(GOOD_ROWS)), IRIS)
    assert report.rows == 3
    assert report.columns[0] == "sample_id"


def with_row(row: str) -> str:
    return HEADER + "".join(GOOD_ROWS) + row


CSV_CASES = {
    ContractReason.EMPTY_FILE: ("", "no bytes"),
    ContractReason.NO_ROWS: (HEADER, "header but no rows"),
    ContractReason.BAD_ENCODING: (HEADER.encode() + b"4,5.0,3.0,1.0,0.1,fr-01,caf\xe9,setosa\n", "expected UTF-8"),
    ContractReason.WRONG_DELIMITER: (HEADER.replace(",", ";") + GOOD_ROWS[0].replace(",", ";"), "seems to use ';'"),
    ContractReason.RAGGED_ROW: (with_row("4,5.0,3.0,1.0\n"), "row 4 has 4 fields, expected 8"),
    ContractReason.DUPLICATE_COLUMN: (HEADER.replace("notes", "site") + GOOD_ROWS[0], "['site']"),
    ContractReason.MISSING_COLUMN: (HEADER.replace(",species", "") + "1,5.1,3.5,1.4,0.2,fr-01,\n", "['species']"),
    ContractReason.UNEXPECTED_COLUMN: (
        HEADER.replace("notes", "email") + GOOD_ROWS[0],
        "forbidden column(s) ['email']",
    ),
    ContractReason.TYPE_MISMATCH: (
        with_row("4,five,3.0,1.0,0.1,fr-01,,setosa\n"),
        "column sepal_length: row 4 has 'five'; expected float64",
    ),
    ContractReason.NULL_VALUE: (with_row("4,5.0,3.0,1.0,0.1,,,setosa\n"), "column site"),
    ContractReason.NON_FINITE: (with_row("4,1e400,3.0,1.0,0.1,fr-01,,setosa\n"), "column sepal_length"),
    ContractReason.OUT_OF_RANGE: (with_row("4,25.0,3.0,1.0,0.1,fr-01,,setosa\n"), "first rows [4] with values [25.0]"),
    ContractReason.VALUE_NOT_ALLOWED: (with_row("4,5.0,3.0,1.0,0.1,fr-01,,daisy\n"), "values ['daisy']"),
    ContractReason.PATTERN_MISMATCH: (with_row("4,5.0,3.0,1.0,0.1,France,,setosa\n"), "values ['France']"),
    ContractReason.DUPLICATE_KEY: (
        with_row("3,5.0,3.0,1.0,0.1,fr-01,,setosa\n"),
        "must strictly increase; row 4 has 3 after 3",
    ),
    ContractReason.FORMULA_INJECTION: (
        with_row('4,5.0,3.0,1.0,0.1,fr-01,"=HYPERLINK(""x"")",setosa\n'),
        "column notes",
    ),
}


@pytest.mark.parametrize("reason", sorted(CSV_CASES))
def test_each_csv_violation_has_its_reason_and_details(tmp_path, reason):
    text, detail = CSV_CASES[reason]
    err = rejected(csv_file(tmp_path, text))
    assert err.reason == reason, err.detail
    assert detail in err.detail


def test_nan_and_null_tokens_are_not_silently_nulls(tmp_path):
    # pyarrow's default would read "NA"/"NULL" as null in a string column and "NaN" as a null-free NaN
    err = rejected(csv_file(tmp_path, with_row("4,NaN,3.0,1.0,0.1,fr-01,,setosa\n")))
    assert err.reason == ContractReason.NON_FINITE
    err = rejected(csv_file(tmp_path, with_row("4,5.0,3.0,1.0,0.1,NA,,setosa\n")))
    assert err.reason == ContractReason.PATTERN_MISMATCH  # "NA" stays the text "NA"


def test_row_count_bounds(tmp_path):
    bounded = parse_contract({**json.loads((CONTRACTS / "iris.json").read_text()), "rows": {"min": 1, "max": 2}})
    err = rejected(csv_file(tmp_path, HEADER + "".join(GOOD_ROWS)), bounded)
    assert err.reason == ContractReason.ROW_COUNT_OUT_OF_BOUNDS


def test_file_size_cap(tmp_path):
    small = parse_contract({**json.loads((CONTRACTS / "iris.json").read_text()), "max_bytes": 10})
    assert rejected(csv_file(tmp_path, HEADER + GOOD_ROWS[0]), small).reason == ContractReason.FILE_TOO_LARGE


def test_no_contract_and_version_mismatch(tmp_path):
    path = csv_file(tmp_path, HEADER + "".join(GOOD_ROWS))
    with pytest.raises(VerificationError) as err:
        check(path, dataset="weather", directory=CONTRACTS)
    assert err.value.reason == ContractReason.NO_CONTRACT
    with pytest.raises(VerificationError) as err:
        check(path, dataset="iris", directory=CONTRACTS, contract_version="2")
    assert err.value.reason == ContractReason.CONTRACT_VERSION_MISMATCH
    assert check(path, dataset="iris", directory=CONTRACTS, contract_version="1").rows == 3


SALES = load_all(CONTRACTS)["sales"]
SALES_SCHEMA = pa.schema(
    [
        pa.field("store_id", pa.int32(), nullable=False),
        pa.field("day", pa.date32(), False),
        pa.field("revenue", pa.float64(), False),
        pa.field("promo", pa.bool_(), True),
    ]
)


def parquet(tmp_path, table: pa.Table) -> Path:
    path = tmp_path / "sales.parquet"
    pq.write_table(table, path)
    return path


def sales(**columns) -> dict:
    import datetime

    base = {
        "store_id": pa.array([1, 2], pa.int32()),
        "day": pa.array([datetime.date(2026, 1, 1)] * 2),
        "revenue": pa.array([10.5, 20.0]),
        "promo": pa.array([True, None]),
    }
    return {**base, **columns}


def test_a_good_parquet_passes(tmp_path):
    path = parquet(tmp_path, pa.Table.from_pydict(sales(), schema=SALES_SCHEMA))
    assert validate_file(path, SALES).rows == 2


@pytest.mark.parametrize(
    ("table", "reason", "detail"),
    [
        (
            lambda: pa.Table.from_pydict(
                sales(store_id=pa.array([1, 2], pa.int64())),
                schema=SALES_SCHEMA.set(0, pa.field("store_id", pa.int64(), False)),
            ),
            ContractReason.SCHEMA_MISMATCH,
            "expected int32, got int64",
        ),
        (
            lambda: pa.Table.from_pydict(sales(), schema=SALES_SCHEMA.set(2, pa.field("revenue", pa.float64(), True))),
            ContractReason.SCHEMA_MISMATCH,
            "expected required (not null), got nullable",
        ),
        (
            lambda: pa.Table.from_pydict(
                sales(promo=pa.array([[True], [False]])),
                schema=SALES_SCHEMA.set(3, pa.field("promo", pa.list_(pa.bool_()), True)),
            ),
            ContractReason.SCHEMA_MISMATCH,
            "column promo: expected bool, got list<element: bool>",
        ),
        (
            lambda: pa.Table.from_pydict({k: v for k, v in sales().items() if k != "revenue"}),
            ContractReason.MISSING_COLUMN,
            "['revenue']",
        ),
        (
            lambda: pa.Table.from_pydict({**sales(), "extra": pa.array([1, 2])}),
            ContractReason.UNEXPECTED_COLUMN,
            "['extra']",
        ),
        (
            lambda: pa.Table.from_pydict(sales(revenue=pa.array([10.0, -1.0])), schema=SALES_SCHEMA),
            ContractReason.OUT_OF_RANGE,
            "first rows [2]",
        ),
    ],
)
def test_parquet_schema_is_compared_exactly(tmp_path, table, reason, detail):
    err = rejected(parquet(tmp_path, table()), SALES)
    assert err.reason == reason, err.detail
    assert detail in err.detail


def test_corrupt_parquet(tmp_path):
    path = parquet(tmp_path, pa.Table.from_pydict(sales(), schema=SALES_SCHEMA))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + b"\x00" * 16 + data[len(data) // 2 + 16 :])
    assert rejected(path, SALES).reason == ContractReason.CORRUPT_FILE
    path.write_bytes(b"PAR1 not really")
    assert rejected(path, SALES).reason == ContractReason.CORRUPT_FILE


EVENTS = load_all(CONTRACTS)["events"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            '{"event_id": "ev-0000000a", "user_age": 31, "income": 1000.5}\n'
            '{"event_id": "ev-0000000b", "user_age": 40, "income": null}\n',
            None,
        ),
        (
            '{"event_id": "ev-0000000a", "user_age": 31}\n{"event_id": "ev-0000000a", "user_age": 32}\n',
            ContractReason.DUPLICATE_KEY,
        ),
        ('{"event_id": "ev-0000000a", "user_age": 31, "ssn": "x"}\n', ContractReason.UNEXPECTED_COLUMN),
        ('{"event_id": "ev-0000000a", "user_age": "old"}\n', ContractReason.TYPE_MISMATCH),
        ('{"event_id": "ev-0000000a", "user_age": 31\n', ContractReason.CORRUPT_FILE),
        ('{"event_id": "ev-0000000a"}\n', ContractReason.NULL_VALUE),
    ],
)
def test_json_lines(tmp_path, text, reason):
    path = csv_file(tmp_path, text, "events.jsonl")
    if reason is None:
        assert validate_file(path, EVENTS).rows == 2
    else:
        err = rejected(path, EVENTS)
        assert err.reason == reason, err.detail


def test_every_contract_reason_has_a_test():
    tested = set(CSV_CASES) | {
        ContractReason.ROW_COUNT_OUT_OF_BOUNDS,
        ContractReason.FILE_TOO_LARGE,
        ContractReason.NO_CONTRACT,
        ContractReason.CONTRACT_VERSION_MISMATCH,
        ContractReason.SCHEMA_MISMATCH,
        ContractReason.CORRUPT_FILE,
        ContractReason.POISONING_SUSPECTED,  # tests/unit/test_screen.py
        ContractReason.LINE_TOO_LONG,  # tests/unit/test_content_checks.py
    }
    assert tested == set(tuple(ContractReason))


DOC = json.loads((CONTRACTS / "iris.json").read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(fromat="csv"), "unknown field(s) ['fromat']"),
        (lambda d: d["columns"][1].update(type="float"), "columns[1] (sepal_length): type must be one of"),
        (lambda d: d["columns"][1].update(min=30), "min 30 is above max 20"),
        (lambda d: d["columns"][5].update(min=1), "min needs a numeric column"),
        (lambda d: d["columns"][5].update(pattern="[a-z"), "pattern does not compile"),
        (lambda d: d.update(label="label"), "label 'label' is not a declared column"),
        (lambda d: d.update(protected_attributes=["gender"]), "protected_attributes ['gender']"),
        (lambda d: d["csv"].update(formula_injection="escape"), "escaping would change the signed bytes"),
        (lambda d: d["csv"].update(delimiter=";;"), "delimiter must be one character"),
        (lambda d: d["columns"].append(d["columns"][0]), "columns declared twice: ['sample_id']"),
        (lambda d: d.update(forbidden_columns=["site"]), "both declared and forbidden"),
        (lambda d: d["columns"][0].update(nullable=True), 'columns[0] (sample_id): unique "increasing" needs a column'),
    ],
)
def test_contract_typos_fail_with_the_field(mutate, message):
    data = copy.deepcopy(DOC)
    mutate(data)
    with pytest.raises(ContractError, match=re.escape(message)):
        parse_contract(data, "contracts/iris.json")


def test_contract_check_cli_is_the_producers_shift_left(tmp_path):
    import subprocess
    import sys

    good = csv_file(tmp_path, HEADER + "".join(GOOD_ROWS), "good.csv")
    bad = csv_file(tmp_path, with_row("4,5.0,3.0,1.0,0.1,fr-01,,daisy\n"), "bad.csv")

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "mlvault_tools.cli", "contract", "check", *args, "--contracts", str(CONTRACTS)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = run(str(good), "--dataset", "iris", "--contract-version", "1")
    assert ok.returncode == 0
    assert ok.stdout.startswith("PASS")
    refused = run(str(bad), "--dataset", "iris")
    assert refused.returncode == 3
    assert refused.stdout.startswith("REJECT VALUE_NOT_ALLOWED: column species")


def test_increasing_keys_are_checked_across_batches_in_constant_memory(tmp_path):
    rows = [f"{i},5.0,3.0,1.0,0.1,fr-01,,setosa\n" for i in range(1, 60_001)]
    rows.append("59999,5.0,3.0,1.0,0.1,fr-01,,setosa\n")  # lands in a later 1 MiB block than its twin
    path = csv_file(tmp_path, HEADER + "".join(rows))
    assert path.stat().st_size > 2 * (1 << 20)
    err = rejected(path)
    assert err.reason == ContractReason.DUPLICATE_KEY
    assert "row 60001 has 59999 after 60000" in err.detail
