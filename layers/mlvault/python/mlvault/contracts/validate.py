"""Streaming validation of a file against its data contract, with pyarrow, in batches: memory does not grow
with the number of rows (except for the values of columns declared unique, which must be compared: see
`mlvault.contracts.schema.UNIQUE_BYTES_PER_ROW`).

Explicit by design (GUIDE.md section 6): column types come from the contract, never inference; null tokens are
only those the contract lists (pyarrow would turn "NaN", "NULL", "NA" into nulls); "1e400" is caught as a
non-finite value; invalid UTF-8, ragged rows, duplicate column names and corrupt files are refused.
Each violation raises VerificationError with a stable reason code and details a human can act on: the column
(by name), the first offending data rows (1 = the first row after the header) and values, expected versus got.

Which defect is reported when a file has several (docs/contracts.md, "Which code wins"): the size first, then
the bytes as they are read (encoding, line length: `TextGuard`, ahead of the parser), then the header, then the
rows in file order, one block at a time (1 MiB of CSV or JSON Lines, 65,536 Parquet rows): in a block, a row the
parser cannot read, then the contract's columns in the contract's order, each with its checks in a fixed order
(null, non-finite, range, allowed, pattern, formula, increasing key); at the end of the file the row count and
the `unique: true` columns.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from mlvault.contracts.column_checks import Checker, Observer, ValidationReport
from mlvault.contracts.schema import Contract, resolve_contract
from mlvault.contracts.text_guard import BLOCK_SIZE, TextGuard, fail
from mlvault.errors import ContractReason, VerificationError

PARQUET_BATCH_ROWS = 65_536
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())
_ARROW_TYPES = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "date32": pa.date32(),
    "timestamp[ms]": pa.timestamp("ms"),
}


def validate_file(path: str | Path, contract: Contract, observe: Observer | None = None) -> ValidationReport:
    path = Path(path)
    size = path.stat().st_size
    _check_size(size, contract)
    if contract.format == "parquet":
        return _validate_parquet(path, contract, observe)
    with path.open("rb") as stream:
        return validate_stream(stream, contract, size=size, observe=observe)


def validate_stream(
    stream: BinaryIO, contract: Contract, *, size: int, observe: Observer | None = None
) -> ValidationReport:
    """CSV and JSON Lines from any readable stream (an S3 body included); Parquet needs a seekable file."""
    _check_size(size, contract)
    if contract.format == "parquet":
        raise ValueError("Parquet is validated from a seekable file: use validate_file")
    checker = Checker(contract, observe)
    guard = TextGuard(stream, jsonl=contract.format == "jsonl")
    if contract.format == "csv":
        names = guard.first_line_names(contract.csv.delimiter)  # the header before any row is converted
        if names:
            checker.header(list(names))
    reader = _open_csv(guard, contract) if contract.format == "csv" else _open_jsonl(guard, contract)
    checker.header(reader.schema.names)
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            if contract.format == "jsonl":
                raise _json_error(err, contract, checker, guard) from None
            raise _csv_error(err, contract, checker.names, checker.rows) from None
        checker.add(batch)
        guard.batches += 1
    return checker.finish()


def _check_size(size: int, contract: Contract) -> None:
    if contract.max_bytes is not None and size > contract.max_bytes:
        raise fail(ContractReason.FILE_TOO_LARGE, f"{size} bytes; the contract allows {contract.max_bytes}")
    if size == 0:
        raise fail(ContractReason.EMPTY_FILE, "the file has no bytes")


def _open_csv(stream: BinaryIO, contract: Contract):
    import pyarrow.csv as csv

    dialect = contract.csv
    # strings are read dictionary-encoded: checks on text then run over the few distinct values of a batch
    types = {c.name: _DICTIONARY if c.type == "string" else _ARROW_TYPES[c.type] for c in contract.columns}
    try:
        return csv.open_csv(
            stream,
            read_options=csv.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
            parse_options=csv.ParseOptions(delimiter=dialect.delimiter),
            convert_options=csv.ConvertOptions(
                column_types=types,
                null_values=list(dialect.null_values),
                strings_can_be_null=bool(dialect.null_values),
                quoted_strings_can_be_null=False,
                true_values=["true"],
                false_values=["false"],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        names = stream.header_names(dialect.delimiter) if isinstance(stream, TextGuard) else ()
        raise _csv_error(err, contract, names, 0) from None


def _open_jsonl(stream: BinaryIO, contract: Contract):
    import pyarrow.json as pj

    # pyarrow's JSON reader parses timestamps from ISO text but not dates: a date32 column is read as text and
    # converted per batch (_JsonDates), so an ISO date is a date and anything else a TYPE_MISMATCH naming it
    schema = pa.schema(
        [pa.field(c.name, pa.string() if c.type == "date32" else _ARROW_TYPES[c.type]) for c in contract.columns]
    )
    try:
        return _JsonDates(
            pj.open_json(
                stream,
                read_options=pj.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
                parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
            ),
            contract,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        guard = stream if isinstance(stream, TextGuard) else TextGuard(stream)
        raise _json_error(err, contract, Checker(contract), guard) from None


class _JsonDates:
    """A JSON Lines reader whose date32 columns, read as text, come out as dates (ISO 8601 `YYYY-MM-DD`)."""

    def __init__(self, reader, contract: Contract) -> None:
        self._reader = reader
        self._dates = [c.name for c in contract.columns if c.type == "date32"]
        self._rows = 0
        self.schema = reader.schema

    def read_next_batch(self) -> pa.RecordBatch:
        batch = self._reader.read_next_batch()
        for name in self._dates:
            index = batch.schema.get_field_index(name)
            text = batch.column(index)
            try:
                dates = pc.cast(pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=False), pa.date32())
                # strptime normalises impossible dates (2024-02-30): the text must be the date's own ISO form
                exact = pc.fill_null(pc.equal(pc.strftime(dates, format="%Y-%m-%d"), text), True)
                if not pc.all(exact).as_py():
                    raise pa.ArrowInvalid("not an ISO date")
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                bad = next(i for i, v in enumerate(text.to_pylist()) if v is not None and not _iso_date(v))
                raise fail(
                    ContractReason.TYPE_MISMATCH,
                    f"column {name}: value {text[bad].as_py()[:60]!r} is not date32 (an ISO date YYYY-MM-DD; "
                    f"row {self._rows + bad + 1})",
                ) from None
            batch = batch.set_column(index, pa.field(name, pa.date32(), nullable=True), dates)
        self._rows += batch.num_rows
        return batch


def _iso_date(value: str) -> bool:
    from datetime import date

    try:
        return len(value) == 10 and date.fromisoformat(value) is not None
    except ValueError:
        return False


def _csv_error(err: Exception, contract: Contract, names: tuple[str, ...], rows_before: int) -> VerificationError:
    """A CSV reader error, with the column by name and the data row (pyarrow's "Row #N" counts the header)."""
    message = str(err).strip()
    numbered = re.search(r"Row #(\d+)", message)
    row = f"row {int(numbered[1]) - 1}" if numbered else f"a row after data row {rows_before}"
    if "Empty CSV file" in message:
        return fail(ContractReason.EMPTY_FILE, "the file has no header and no rows")
    if "straddling object" in message or "straddles" in message:
        return fail(
            ContractReason.LINE_TOO_LONG,
            f"a row after data row {rows_before} is longer than the reader's {BLOCK_SIZE}-byte block "
            "(quoted line breaks?)",
        )
    ragged = re.search(r"Expected (\d+) columns, got (\d+): (.*)", message)
    if ragged:
        return fail(
            ContractReason.RAGGED_ROW, f"{row} has {ragged[2]} fields, expected {ragged[1]}: {ragged[3][:120]!r}"
        )
    conversion = re.search(
        r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\S+): invalid value '(.*)'", message
    )
    if conversion:
        index = int(conversion[1])
        name = names[index] if index < len(names) else f"#{index + 1}"
        column = contract.column(name)
        expected = column.type if column is not None else conversion[2]
        return fail(
            ContractReason.TYPE_MISMATCH, f"column {name}: {row} has {conversion[3][:60]!r}; expected {expected}"
        )
    if "invalid UTF8" in message or "invalid UTF-8" in message:  # the guard checks first: not expected
        return fail(ContractReason.BAD_ENCODING, f"{message} ({row}); expected UTF-8")
    return fail(ContractReason.CORRUPT_FILE, f"{message} ({row})")


# --- JSON Lines errors: the row and field, found again in the block that failed ---------------------------


def _json_error(err: Exception, contract: Contract, checker: Checker, guard: TextGuard) -> VerificationError:
    """pyarrow names neither the field nor, for some errors, the row. The block that failed is one read (the
    guard aligns reads to line breaks: one block, one record batch), so its lines are parsed again with Python's
    json to name the row, the field and the value; only for the kind of error pyarrow reported, at the row it
    reported when it did (the rows before it passed pyarrow)."""
    message = str(err).strip()
    numbered = re.search(r" in row (\d+)", message)
    index = int(numbered[1]) if numbered else None
    row = f"row {checker.rows + index + 1}" if index is not None else f"a row after data row {checker.rows}"
    lower = message.lower()
    if "unexpected field" in lower:
        kind, default = "field", (ContractReason.UNEXPECTED_COLUMN, f"{row} has a field that is not in the contract")
    elif "too big" in lower:
        kind, default = "finite", (ContractReason.NON_FINITE, f"{row} has a number too large for a float")
    elif "changed from" in message or "failed to convert" in lower or "couldn't parse" in lower:
        kind, default = "type", (ContractReason.TYPE_MISMATCH, f"{row}: {message}")
    else:
        kind, default = "json", (ContractReason.CORRUPT_FILE, f"{row} is not valid JSON Lines: {message}")
    block = _failed_block(guard)
    if block is not None:
        lines = [line for line in block.split(b"\n") if line.strip()]  # pyarrow skips blank lines too
        candidates = [index] if index is not None else range(len(lines))
        for i in candidates:
            if 0 <= i < len(lines):
                found = _line_problem(lines[i], checker.rows + i + 1, contract, kind, message)
                if found is not None:
                    return found
    return fail(*default)


def _failed_block(guard: TextGuard) -> bytes | None:
    for number, data in guard.reads:
        if number == guard.batches:
            return data
    return None


def _line_problem(line: bytes, row: int, contract: Contract, kind: str, message: str) -> VerificationError | None:
    """What is wrong with one JSON line, of the kind pyarrow reported; None if Python sees nothing of it."""
    try:
        value = json.loads(
            line,
            parse_float=lambda text: _Number(text),
            parse_int=lambda text: _Number(text, integral=True),
            parse_constant=lambda text: _Number(text),
        )
    except ValueError as err:
        return fail(ContractReason.CORRUPT_FILE, f"row {row} is not valid JSON ({err}): {line[:120]!r}")
    if not isinstance(value, dict):
        return fail(ContractReason.CORRUPT_FILE, f"row {row} is not a JSON object: {line[:120]!r}")
    declared = {c.name: c for c in contract.columns}
    if kind == "field":
        forbidden = [k for k in value if k in contract.forbidden_columns]
        if forbidden:
            return fail(ContractReason.UNEXPECTED_COLUMN, f"forbidden column(s) {forbidden} (row {row})")
        extra = [k for k in value if k not in declared]
        if extra:
            return fail(
                ContractReason.UNEXPECTED_COLUMN,
                f"column(s) {extra} (row {row}) are not in contract {contract.dataset} v{contract.version}",
            )
        return None
    for name, raw in value.items():
        column = declared.get(name)
        if column is None or not isinstance(raw, _Number):
            continue
        if not math.isfinite(float(raw.text)):
            if column.type in ("float32", "float64"):
                return fail(
                    ContractReason.NON_FINITE,
                    f"column {name}: row {row} has {raw.text}, which is not finite; expected finite numbers",
                )
            return fail(
                ContractReason.TYPE_MISMATCH, f"column {name}: row {row} has {raw.text}; expected {column.type}"
            )
    if kind == "type":
        for name, raw in value.items():
            column = declared.get(name)
            if column is None or raw is None or _fits(raw, column.type):
                continue
            shown = raw.text if isinstance(raw, _Number) else json.dumps(raw)[:60]
            return fail(ContractReason.TYPE_MISMATCH, f"column {name}: row {row} has {shown}; expected {column.type}")
    if kind == "json":
        return fail(ContractReason.CORRUPT_FILE, f"row {row} is not valid JSON Lines: {message}")
    return None


class _Number:
    """A JSON number as written (so that 1e400 stays visible as such)."""

    def __init__(self, text: str, *, integral: bool = False) -> None:
        self.text = text
        self.integral = integral


def _fits(raw: Any, type_: str) -> bool:
    if type_ in ("int32", "int64"):
        return isinstance(raw, _Number) and raw.integral
    if type_ in ("float32", "float64"):
        return isinstance(raw, _Number)
    if type_ == "bool":
        return isinstance(raw, bool)
    return isinstance(raw, str)  # string, and dates and timestamps as text (pyarrow parses them)


# --- Parquet ------------------------------------------------------------------------------------------------


def _validate_parquet(path: Path, contract: Contract, observe: Observer | None) -> ValidationReport:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=BLOCK_SIZE)
        schema = parquet.schema_arrow
    except (pa.ArrowInvalid, OSError) as err:
        raise fail(ContractReason.CORRUPT_FILE, f"not a readable Parquet file: {err}") from None
    checker = Checker(contract, observe)
    checker.header(schema.names)
    for column in contract.columns:
        index = schema.get_field_index(column.name)
        if index < 0:
            continue  # the header check decided
        got = schema.field(index)
        expected = _ARROW_TYPES[column.type]
        if not got.type.equals(expected):
            raise fail(ContractReason.SCHEMA_MISMATCH, f"column {column.name}: expected {expected}, got {got.type}")
        if got.nullable != column.nullable:
            raise fail(
                ContractReason.SCHEMA_MISMATCH,
                f"column {column.name}: expected "
                f"{'nullable' if column.nullable else 'required (not null)'}, got "
                f"{'nullable' if got.nullable else 'required'}",
            )
    try:
        strings = [c.name for c in contract.columns if c.type == "string" and c.name in schema.names]
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=BLOCK_SIZE, read_dictionary=strings)
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
            checker.add(batch)
    except (pa.ArrowInvalid, OSError) as err:
        raise fail(
            ContractReason.CORRUPT_FILE, f"Parquet data unreadable after data row {checker.rows}: {err}"
        ) from None
    return checker.finish()


def check(
    path: str | Path,
    *,
    dataset: str,
    directory: str | Path,
    contract_version: str | None = None,
    observe: Observer | None = None,
) -> ValidationReport:
    """What `mlvault contract check` decides about a file of a dataset (the verifier's checks)."""
    return validate_file(path, resolve_contract(directory, dataset, contract_version), observe)
