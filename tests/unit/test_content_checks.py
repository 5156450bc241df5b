"""The content gate is right about every file (issue 11, item 4), through `mlvault contract check`: the bytes
are checked before they are parsed (encoding, line length), each refusal names the column and the data row
(1 = the first row after the header) with the exact reason code and message, a column the contract does not
require and the file lacks is profiled as absent, and a contract whose `unique: true` columns cannot fit the
verifier's memory is refused when it is loaded."""

from __future__ import annotations

import copy
import json
import re
import shutil
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlvault.contracts.schema import (
    UNIQUE_BYTES_PER_ROW,
    UNIQUE_BYTES_PER_TEXT_BYTE,
    UNIQUE_MEMORY_BUDGET,
    VERIFIER_MEMORY_MB,
    ContractError,
    load_all,
    load_contract,
    parse_contract,
)
from mlvault.contracts.validate import BLOCK_SIZE
from mlvault_tools.cli import main
from mlvault_tools.samples import iris_batch, loans_batch

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
HEADER = "sample_id,sepal_length,sepal_width,petal_length,petal_width,site,notes,species\n"
ROWS = [
    "1,5.1,3.5,1.4,0.2,fr-01,,setosa\n",
    "2,7.0,3.2,4.7,1.4,de-02,checked,versicolor\n",
    "3,6.3,3.3,6.0,2.5,fr-01,,virginica\n",
]
GOOD = HEADER + "".join(ROWS)


def check(capsys, path: Path, dataset: str = "iris", *options: str, contracts: Path = CONTRACTS) -> tuple[int, str]:
    """`mlvault contract check PATH --dataset D` in-process: (exit code, stdout + stderr)."""
    code = main(["contract", "check", str(path), "--dataset", dataset, "--contracts", str(contracts), *options])
    out = capsys.readouterr()
    return code, (out.out + out.err).strip()


def write(tmp_path: Path, data: str | bytes, name: str = "batch.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# --- the bytes first: encoding and line length ------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            GOOD.encode("utf-16"),
            "BAD_ENCODING: at byte 0 (in the header): a UTF-16 byte-order mark (the file is UTF-16, not UTF-8): "
            "b'\\xff\\xfes\\x00a\\x00m\\x00p\\x00l\\x00e\\x00_\\x00'; expected UTF-8 text",
        ),
        (
            GOOD.encode("utf-16-le"),  # no byte-order mark: ASCII with NUL bytes between
            "BAD_ENCODING: at byte 1 (in the header): a NUL byte (binary data, or UTF-16 without a byte-order "
            "mark): b'\\x00a\\x00m\\x00p\\x00l\\x00e\\x00_\\x00i\\x00d'; expected UTF-8 text",
        ),
        (
            bytes(range(256)) * 64,
            "BAD_ENCODING: at byte 0 (in the header): a NUL byte (binary data, or UTF-16 without a byte-order "
            "mark): b'\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r\\x0e\\x0f'; expected UTF-8 text",
        ),
        (
            b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)) * 64,
            "BAD_ENCODING: at byte 0 (in the header): invalid UTF-8: b'\\x89PNG\\r\\n\\x1a\\n\\x01\\x02\\x03\\x04"
            "\\x05\\x06\\x07\\x08'; expected UTF-8 text",
        ),
        (  # a ragged row first, then invalid UTF-8 in the same block: the bytes are checked before they are parsed
            (HEADER + ROWS[0] + "2,7.0\n" + "3,6.3,3.3,6.0,2.5,fr-01,caf").encode() + b"\xe9,setosa\n",
            "BAD_ENCODING: at byte 144: invalid UTF-8: b'\\xe9,setosa\\n'; expected UTF-8 text",
        ),
        (
            b"x" * (50 * 1024 * 1024),  # 50 MB without a line break
            f"LINE_TOO_LONG: the line starting at byte 0 (the header) runs for {BLOCK_SIZE} bytes or more without a "
            f"line break; lines must be shorter than {BLOCK_SIZE} bytes (the reader's block)",
        ),
        (
            (GOOD + "4,5.0,3.0,1.0,0.1,fr-01," + "n" * (2 * BLOCK_SIZE) + ",setosa\n").encode(),
            f"LINE_TOO_LONG: the line starting at byte {len(GOOD)} runs for {BLOCK_SIZE} bytes or more without a "
            f"line break; lines must be shorter than {BLOCK_SIZE} bytes (the reader's block)",
        ),
    ],
    ids=["utf16-bom", "utf16-no-bom", "binary", "png", "encoding-before-ragged", "50MB-line", "long-row"],
)
def test_the_bytes_are_checked_before_they_are_parsed(capsys, tmp_path, data, message):
    code, out = check(capsys, write(tmp_path, data))
    assert (code, out) == (3, f"REJECT {message}")


@pytest.mark.parametrize(
    "data",
    [
        "\ufeff" + GOOD,  # a UTF-8 byte-order mark
        HEADER + ROWS[0] + f"2,7.0,3.2,4.7,1.4,de-02,{'é' * (BLOCK_SIZE // 2 - 40)},versicolor\n" + ROWS[2],
        HEADER + ROWS[0],  # one row: a first batch of one row is not a broken increasing key
    ],
    ids=["utf8-bom", "multibyte-across-reads", "one-row"],
)
def test_valid_text_passes(capsys, tmp_path, data):
    path = write(tmp_path, data.encode())
    code, out = check(capsys, path)
    assert (code, out) == (0, f"PASS {path}: {data.count(chr(10)) - 1} rows, 8 columns, contract iris v1 (csv)")


# --- rows numbered from 1 after the header, columns by name -----------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD + "4,5.0,3.0,1.0\n", "RAGGED_ROW: row 4 has 4 fields, expected 8: '4,5.0,3.0,1.0'"),
        (
            GOOD + "4,5.0,abc,1.0,0.1,fr-01,,setosa\n",
            "TYPE_MISMATCH: column sepal_width: row 4 has 'abc'; expected float64",
        ),
        (  # the file's column order is not the contract's: the column is named from the file's header
            "species,sample_id,site,sepal_length,sepal_width,petal_length,petal_width\nsetosa,1,fr-01,5.1,x,1.4,0.2\n",
            "TYPE_MISMATCH: column sepal_width: row 1 has 'x'; expected float64",
        ),
        (
            HEADER + "".join(f"{i},5.0,3.0,1.0,0.1,fr-01,,setosa\n" for i in range(1, 40_001)) + "40001,5.0,3.0\n",
            "RAGGED_ROW: row 40001 has 3 fields, expected 8: '40001,5.0,3.0'",
        ),
        (
            HEADER
            + '1,5.1,3.5,1.4,0.2,fr-01,"two\nlines",setosa\n'
            + "2,5.1,3.5,1.4,0.2,fr-01,,setosa\n3,five,3,1,1,fr-01,,setosa\n",
            "TYPE_MISMATCH: column sepal_length: row 3 has 'five'; expected float64",  # a quoted line break
        ),
    ],
    ids=["ragged", "type", "reordered", "ragged-late", "quoted-newline"],
)
def test_csv_refusals_name_the_column_and_the_data_row(capsys, tmp_path, data, message):
    assert check(capsys, write(tmp_path, data)) == (3, f"REJECT {message}")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            HEADER.replace(",species", "") + "1,5.1,abc,1.4,0.2,fr-01,\n",
            "MISSING_COLUMN: missing column(s) ['species']; got ['sample_id', 'sepal_length', 'sepal_width', "
            "'petal_length', 'petal_width', 'site', 'notes']",
        ),
        (
            HEADER.replace("notes", "email") + "1,5.1,3.5,1.4,0.2,fr-01,x,setosa,y\n",
            "UNEXPECTED_COLUMN: forbidden column(s) ['email']",
        ),
        ("sample_id,sample_id,sepal_width\n1,x,2\n", "DUPLICATE_COLUMN: columns appear more than once: ['sample_id']"),
    ],
    ids=["missing-then-type", "forbidden-then-ragged", "duplicate-then-type"],
)
def test_the_header_is_judged_before_any_row(capsys, tmp_path, data, message):
    assert check(capsys, write(tmp_path, data)) == (3, f"REJECT {message}")


LINES = "".join(f'{{"event_id": "ev-{i:08x}", "user_age": 31}}\n' for i in range(60_000))  # > 2 blocks


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            '{"event_id": "ev-0000000a", "user_age": 31, "income": 1e400}\n',
            "NON_FINITE: column income: row 1 has 1e400, which is not finite; expected finite numbers",
        ),
        (
            LINES + '\n{"event_id": "ev-ffffffff", "user_age": 31, "income": -1e400}\n',  # a blank line is not a row
            "NON_FINITE: column income: row 60001 has -1e400, which is not finite; expected finite numbers",
        ),
        (
            LINES + '{"event_id": "ev-ffffffff", "user_age": 31, "zzz": 1}\n',
            "UNEXPECTED_COLUMN: column(s) ['zzz'] (row 60001) are not in contract events v1",
        ),
        (
            '{"event_id": "ev-0000000a", "user_age": 31}\n{"event_id": "ev-0000000b", "user_age": "old"}\n',
            'TYPE_MISMATCH: column user_age: row 2 has "old"; expected int64',
        ),
        (
            '{"event_id": "ev-0000000a", "user_age": 31}\n{"event_id": "ev-0000000b", "user_age": 31.5}\n',
            "TYPE_MISMATCH: column user_age: row 2 has 31.5; expected int64",
        ),
        (
            '{"event_id": "ev-0000000a", "user_age": 31}\n{"event_id": "ev-0000000b", "user_age": 31\n',
            "CORRUPT_FILE: row 2 is not valid JSON (Expecting ',' delimiter: line 1 column 43 (char 42)): "
            'b\'{"event_id": "ev-0000000b", "user_age": 31\'',
        ),
        (
            '{"event_id": "ev-0000000a", "user_age": 31}\n[1, 2]\n',
            "CORRUPT_FILE: row 2 is not a JSON object: b'[1, 2]'",
        ),
        (
            '{"event_id": "ev-0000000a", "user_age": 31}\n{"event_id": "ev-0000000b", "user_age": 32}\n'
            '{"event_id": "ev-0000000a", "user_age": 33}\n{"event_id": "ev-0000000b", "user_age": 34}\n'
            '{"event_id": "ev-0000000a", "user_age": 35}\n',
            "DUPLICATE_KEY: column event_id must be unique; 3 row(s) repeat an earlier row's value: "
            "'ev-0000000a' at rows [1, 3, 5]; 'ev-0000000b' at rows [2, 4]",
        ),
        (
            LINES + '{"event_id": "ev-00000007", "user_age": 31}\n',
            "DUPLICATE_KEY: column event_id must be unique; 1 row(s) repeat an earlier row's value: "
            "'ev-00000007' at rows [8, 60001]",
        ),
        (
            "x" * (3 * BLOCK_SIZE),
            f"LINE_TOO_LONG: the line starting at byte 0 (the first line) runs for {BLOCK_SIZE} bytes or more "
            f"without a line break; lines must be shorter than {BLOCK_SIZE} bytes (the reader's block)",
        ),
    ],
    ids=[
        "1e400",
        "1e400-late",
        "undeclared-late",
        "type",
        "float-in-int",
        "corrupt",
        "array",
        "dup",
        "dup-late",
        "long",
    ],
)
def test_json_lines_refusals_name_the_field_and_the_row(capsys, tmp_path, data, message):
    assert check(capsys, write(tmp_path, data, "events.jsonl"), "events") == (3, f"REJECT {message}")


def test_parquet_text_that_is_not_utf8_is_bad_encoding(capsys, tmp_path):
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "tags.json").write_text(
        json.dumps(
            {
                "dataset": "tags",
                "version": "1",
                "format": "parquet",
                "columns": [{"name": "id", "type": "int64"}, {"name": "tag", "type": "string"}],
            }
        )
    )
    text = b"okokok\xff\xfe"
    tag = pa.Array.from_buffers(
        pa.string(), 3, [None, pa.py_buffer(struct.pack("<iiii", 0, 2, 4, 8)), pa.py_buffer(text)]
    )
    schema = pa.schema([pa.field("id", pa.int64(), False), pa.field("tag", pa.string(), False)])
    pq.write_table(pa.table({"id": [1, 2, 3], "tag": tag}, schema=schema), tmp_path / "tags.parquet")
    code, out = check(capsys, tmp_path / "tags.parquet", "tags", contracts=contracts)
    assert (code, out) == (
        3,
        "REJECT BAD_ENCODING: column tag: rows [3] have invalid UTF-8 [b'ok\\xff\\xfe']; expected UTF-8 text",
    )


# --- a column the contract does not require, absent from the file ------------------------------------------


def _csv(path: Path, batch: pa.RecordBatch) -> Path:
    pacsv.write_csv(pa.Table.from_batches([batch]), path, pacsv.WriteOptions(quoting_style="none"))
    return path


def test_a_clean_batch_without_an_optional_column_is_not_profiled_with_another_columns_values(capsys, tmp_path):
    def with_notes(seed: int) -> pa.RecordBatch:
        batch = iris_batch(4000, seed)
        notes = pa.array(["checked" if i % 3 else None for i in range(batch.num_rows)], pa.string())
        return batch.set_column(batch.schema.get_field_index("notes"), batch.schema.field("notes"), notes)

    baseline = tmp_path / "baseline.json"
    assert check(capsys, _csv(tmp_path / "base.csv", with_notes(1)), "iris", "--profile-out", str(baseline))[0] == 0
    clean = iris_batch(2000, 2)
    clean = clean.drop_columns(["notes"]) if hasattr(clean, "drop_columns") else clean
    code, out = check(capsys, _csv(tmp_path / "clean.csv", clean), "iris", "--baseline", str(baseline))
    assert code == 0, out
    assert out.endswith("screen: no shift against the baseline")


def test_an_absent_optional_text_column_before_an_integer_last_column_does_not_crash(capsys, tmp_path):
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, contracts)
    loans = json.loads((CONTRACTS / "loans.json").read_text())
    loans["columns"].insert(4, {"name": "note", "type": "string", "nullable": True, "required": False})
    (contracts / "loans.json").write_text(json.dumps(loans))
    base = loans_batch(5000, 1)
    note = pa.array(["ok" if i % 2 else "late" for i in range(base.num_rows)], pa.string())
    base = pa.RecordBatch.from_arrays(
        [*base.columns[:4], note, *base.columns[4:]], names=[*base.schema.names[:4], "note", *base.schema.names[4:]]
    )
    baseline = tmp_path / "baseline.json"
    made = check(
        capsys, _csv(tmp_path / "base.csv", base), "loans", "--profile-out", str(baseline), contracts=contracts
    )
    assert made[0] == 0, made
    code, out = check(
        capsys,
        _csv(tmp_path / "clean.csv", loans_batch(2000, 2)),
        "loans",
        "--baseline",
        str(baseline),
        contracts=contracts,
    )
    assert code == 0, out
    assert "no shift against the baseline" in out


# --- unique: true memory, refused at load (synth) ----------------------------------------------------------

EVENTS = json.loads((CONTRACTS / "events.json").read_text())


def test_the_memory_budget_is_the_verifiers():
    """infra gives the verify function ONE_VCPU_MB (wherever infra defines it): not less than the budget assumes."""
    defined = [
        int(m[1])
        for p in (ROOT / "infra").rglob("*.py")
        for m in re.finditer(r"^ONE_VCPU_MB = (\d+)", p.read_text(), re.M)
    ]
    assert defined
    assert min(defined) >= VERIFIER_MEMORY_MB
    assert UNIQUE_MEMORY_BUDGET < VERIFIER_MEMORY_MB * 2**20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.pop("rows"),
            "unique: true column(s) ['event_id'] keep every value until the end of the file (event_id (string) "
            f"{UNIQUE_BYTES_PER_ROW['string']} bytes per row + {UNIQUE_BYTES_PER_TEXT_BYTE} per byte of text): the "
            "contract needs rows.max to bound that memory; the verifier's budget for them is "
            f"{UNIQUE_MEMORY_BUDGET // 2**20} MiB of its {VERIFIER_MEMORY_MB} MB",
        ),
        (
            lambda d: d.pop("max_bytes"),
            "the contract needs max_bytes (it bounds the text kept) to bound that memory",
        ),
        (
            lambda d: d["rows"].update(max=100_000_000),
            f"unique: true column(s) ['event_id'] may need "
            f"{(100_000_000 * UNIQUE_BYTES_PER_ROW['string'] + 268435456 * UNIQUE_BYTES_PER_TEXT_BYTE) // 2**20} MiB "
            "for rows.max 100000000 and max_bytes 268435456",
        ),
        (
            lambda d: d["columns"].append({"name": "flag", "type": "bool", "unique": True}),
            "unique: true on a bool column allows two rows at most",
        ),
    ],
    ids=["no-rows-max", "no-max-bytes", "too-many-rows", "bool"],
)
def test_a_contract_whose_unique_values_cannot_fit_the_verifier_is_refused_at_load(tmp_path, change, message):
    data = copy.deepcopy(EVENTS)
    change(data)
    (tmp_path / "events.json").write_text(json.dumps(data))
    with pytest.raises(ContractError, match=re.escape(message)):
        load_all(tmp_path)
    with pytest.raises(ContractError, match=re.escape(message)):
        load_contract(tmp_path, "events")


def test_the_largest_rows_max_that_fits_is_named_and_accepted():
    data = copy.deepcopy(EVENTS)
    data["rows"]["max"] = 100_000_000
    with pytest.raises(ContractError) as err:
        parse_contract(data, "events.json")
    fits = int(re.search(r"at most (\d+) rows fit", str(err.value))[1])
    data["rows"]["max"] = fits
    assert parse_contract(data).max_rows == fits
    data["rows"]["max"] = fits + 1
    with pytest.raises(ContractError):
        parse_contract(data)


def test_every_shipped_contract_fits():
    assert set(load_all(CONTRACTS)) >= {"iris", "events", "sales", "loans"}


def test_the_pre_flight_screen_applies_ingest_minimums_and_says_what_it_skipped(capsys, tmp_path):
    baseline = tmp_path / "baseline.json"
    assert (
        check(capsys, _csv(tmp_path / "base.csv", iris_batch(4000, 1)), "iris", "--profile-out", str(baseline))[0] == 0
    )
    code, out = check(capsys, _csv(tmp_path / "small.csv", iris_batch(12, 2)), "iris", "--baseline", str(baseline))
    assert code == 0, out
    assert out.splitlines()[1:] == [
        "screen: not screened: 12 rows, fewer than min_rows 100",
        "screen: not screened here; ingest screens it in the producer's rolling window of small batches",
    ]
    assert "no shift" not in out
    code, out = check(capsys, _csv(tmp_path / "some.csv", iris_batch(300, 3)), "iris", "--baseline", str(baseline))
    assert code == 0, out
    skipped = [line for line in out.splitlines() if line.startswith("screen: label ")]
    assert len(skipped) == 3  # each label has about 100 rows, under the per-label minimum of ingest
    assert all("fewer than 200: its label_feature_psi skipped" in line for line in skipped), skipped
    assert out.endswith("screen: no shift against the baseline in the checks it ran")
    main(["contract", "check", str(tmp_path / "some.csv"), "--dataset", "iris", "--baseline", str(baseline), "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert (answer["verdict"], answer["screen"]["screened"], len(answer["screen"]["skipped"])) == ("PASS", True, 3)
