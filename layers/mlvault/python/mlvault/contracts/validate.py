"""Streaming validation of a file against its data contract, with pyarrow, in batches: memory does not grow
with the number of rows (except for the values of columns declared unique, which must be compared).

Explicit by design (GUIDE.md section 6): column types come from the contract, never inference; null tokens are
only those the contract lists (pyarrow would turn "NaN", "NULL", "NA" into nulls); "1e400" is caught as a
non-finite value; invalid UTF-8, ragged rows, duplicate column names and corrupt files are refused.
Each violation raises VerificationError with a stable reason code and details a human can act on: the column,
the first offending data rows (1 = the first row after the header) and values, expected versus got.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from mlvault.contracts.schema import NUMERIC, Contract
from mlvault.errors import ContractReason, VerificationError

BLOCK_SIZE = 1 << 20
PARQUET_BATCH_ROWS = 65_536
SHOWN = 5
_OTHER_DELIMITERS = (",", ";", "\t", "|")
_FORMULA_START = r"^[=+\-@\t\r]"
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


Observer = Callable[[pa.RecordBatch], None]


@dataclass(frozen=True)
class ValidationReport:
    dataset: str
    contract_version: str
    format: str
    rows: int
    columns: tuple[str, ...]


def fail(reason: str, detail: str) -> VerificationError:
    return VerificationError(reason, detail)


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
    checker = _Checker(contract, observe)
    reader = _open_csv(stream, contract) if contract.format == "csv" else _open_jsonl(stream, contract)
    checker.header(reader.schema.names)
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise _arrow_error(err, contract, checker.rows) from None
        checker.add(batch)
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
        raise _arrow_error(err, contract, 0) from None


def _open_jsonl(stream: BinaryIO, contract: Contract):
    import pyarrow.json as pj

    schema = pa.schema([pa.field(c.name, _ARROW_TYPES[c.type]) for c in contract.columns])
    try:
        return pj.open_json(
            stream,
            read_options=pj.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error"),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise _arrow_error(err, contract, 0) from None


def _arrow_error(err: Exception, contract: Contract, rows_before: int) -> VerificationError:
    message = str(err).strip()
    where = f"(after data row {rows_before})" if rows_before else "(in the first block)"
    if "Empty CSV file" in message:
        return fail(ContractReason.EMPTY_FILE, "the file has no header and no rows")
    if "invalid UTF8" in message or "invalid UTF-8" in message:
        return fail(ContractReason.BAD_ENCODING, f"{message} {where}; expected UTF-8")
    ragged = re.search(r"Expected (\d+) columns, got (\d+): (.*)", message)
    if ragged:
        return fail(
            ContractReason.RAGGED_ROW, f"expected {ragged[1]} fields, got {ragged[2]} {where}: {ragged[3][:120]!r}"
        )
    conversion = re.search(
        r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to (\S+): invalid value '(.*)'", message
    )
    if conversion:
        column = int(conversion[1])
        name = contract.columns[column].name if column < len(contract.columns) else f"#{column}"
        line = f"line {conversion[2]}" if conversion[2] else where
        return fail(
            ContractReason.TYPE_MISMATCH, f"column {name}: value {conversion[4][:60]!r} is not {conversion[3]} ({line})"
        )
    changed = re.search(r"Column\((\S+)\) changed from (\w+) to (\w+) in row (\d+)", message)
    if changed:
        return fail(
            ContractReason.TYPE_MISMATCH,
            f"column {changed[1].lstrip('/')}: expected {changed[2]}, got {changed[3]} "
            f"(row {int(changed[4]) + 1} of a block {where})",
        )
    if "unexpected field" in message.lower():
        return fail(ContractReason.UNEXPECTED_COLUMN, f"{message} {where}")
    if "JSON parse error" in message:
        return fail(ContractReason.CORRUPT_FILE, f"{message} {where}")
    if "Could not convert" in message or "conversion" in message.lower() or "changed" in message.lower():
        return fail(ContractReason.TYPE_MISMATCH, f"{message} {where}")
    return fail(ContractReason.CORRUPT_FILE, f"{message} {where}")


def _validate_parquet(path: Path, contract: Contract, observe: Observer | None) -> ValidationReport:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=BLOCK_SIZE)
        schema = parquet.schema_arrow
    except (pa.ArrowInvalid, OSError) as err:
        raise fail(ContractReason.CORRUPT_FILE, f"not a readable Parquet file: {err}") from None
    checker = _Checker(contract, observe)
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
        raise fail(ContractReason.CORRUPT_FILE, f"Parquet data unreadable after row {checker.rows}: {err}") from None
    return checker.finish()


class _Checker:
    """Column and file checks, applied batch by batch."""

    def __init__(self, contract: Contract, observe: Observer | None = None) -> None:
        self.contract = contract
        self._observe = observe
        self.rows = 0
        self.names: tuple[str, ...] = ()
        self._unique: dict[str, list[pa.Array]] = {c.name: [] for c in contract.columns if c.unique is True}
        self._last: dict[str, object] = {}  # columns declared unique "increasing": the last value seen

    def header(self, names: list[str]) -> None:
        contract = self.contract
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise fail(ContractReason.DUPLICATE_COLUMN, f"columns appear more than once: {duplicates}")
        declared = [c.name for c in contract.columns]
        if contract.format == "csv" and len(names) == 1 and len(declared) > 1:
            other = [d for d in _OTHER_DELIMITERS if d != contract.csv.delimiter and d in names[0]]
            if other:
                raise fail(
                    ContractReason.WRONG_DELIMITER,
                    f"the header {names[0][:80]!r} reads as one column; expected "
                    f"{contract.csv.delimiter!r} as the delimiter, the file seems to use {other[0]!r}",
                )
        missing = [c.name for c in contract.columns if c.required and c.name not in names]
        if missing:
            raise fail(ContractReason.MISSING_COLUMN, f"missing column(s) {missing}; got {names}")
        forbidden = [n for n in names if n in contract.forbidden_columns]
        if forbidden:
            raise fail(ContractReason.UNEXPECTED_COLUMN, f"forbidden column(s) {forbidden}")
        extra = [n for n in names if n not in declared]
        if extra and not contract.allow_extra_columns:
            raise fail(
                ContractReason.UNEXPECTED_COLUMN,
                f"column(s) {extra} are not in contract {contract.dataset} v{contract.version}",
            )
        self.names = tuple(names)

    def add(self, batch: pa.RecordBatch) -> None:
        for column in self.contract.columns:
            if column.name not in batch.schema.names:
                continue
            values = batch.column(batch.schema.get_field_index(column.name))
            self._check(column, values)
            if column.unique is True:
                self._unique[column.name].append(values)
            elif column.unique == "increasing":
                self._check_increasing(column.name, values)
        if self._observe is not None:
            self._observe(batch)  # e.g. the poisoning screen's profile, built in the same pass
        self.rows += batch.num_rows
        if self.contract.max_rows is not None and self.rows > self.contract.max_rows:
            raise fail(ContractReason.ROW_COUNT_OUT_OF_BOUNDS, f"more than {self.contract.max_rows} rows")

    def _check(self, column, values: pa.Array) -> None:
        """Cheap aggregates first (one pass per check, over distinct values for strings); the row-level masks
        that name offending rows are built only when a check fails."""
        if not column.nullable and values.null_count:
            self._report(ContractReason.NULL_VALUE, column.name, pc.is_null(values), values, "no nulls")
        if column.type in ("float32", "float64") and pc.all(pc.is_finite(values)).as_py() is False:
            self._report(
                ContractReason.NON_FINITE,
                column.name,
                pc.fill_null(pc.invert(pc.is_finite(values)), False),
                values,
                "finite numbers",
            )
        if column.type in NUMERIC and (column.min is not None or column.max is not None):
            bounds = pc.min_max(values).as_py()
            if bounds["min"] is not None and (
                (column.min is not None and bounds["min"] < column.min)
                or (column.max is not None and bounds["max"] > column.max)
            ):
                masks = [pc.less(values, column.min)] if column.min is not None else []
                masks += [pc.greater(values, column.max)] if column.max is not None else []
                out = masks[0] if len(masks) == 1 else pc.or_(*masks)
                self._report(
                    ContractReason.OUT_OF_RANGE,
                    column.name,
                    pc.fill_null(out, False),
                    values,
                    f"values in [{column.min}, {column.max}]",
                )
        if column.type != "string" and column.allowed is None:
            return
        if pa.types.is_dictionary(values.type):
            # the batch's dictionary holds its distinct values (maybe unused ones too: a precise check follows)
            distinct, text = values.dictionary, values.dictionary_decode
        else:
            distinct = pc.unique(values.drop_null()) if values.null_count else pc.unique(values)
            text = lambda: values  # noqa: E731
        if column.allowed is not None:
            allowed = pa.array(column.allowed, type=distinct.type)
            if not pc.all(pc.is_in(distinct, value_set=allowed)).as_py():
                plain = text()
                outside = pc.fill_null(pc.invert(pc.is_in(plain, value_set=allowed)), False)
                self._report(
                    ContractReason.VALUE_NOT_ALLOWED, column.name, outside, plain, f"one of {list(column.allowed)}"
                )
        if column.pattern is not None:
            regex = f"^(?:{column.pattern})$"
            if not pc.all(pc.match_substring_regex(distinct, regex)).as_py():
                plain = text()
                mismatch = pc.fill_null(pc.invert(pc.match_substring_regex(plain, regex)), False)
                self._report(
                    ContractReason.PATTERN_MISMATCH, column.name, mismatch, plain, f"values matching {column.pattern!r}"
                )
        if (
            column.type == "string"
            and self.contract.format == "csv"
            and self.contract.csv.formula_injection == "reject"
            and pc.any(pc.match_substring_regex(distinct, _FORMULA_START)).as_py()
        ):
            plain = text()
            formula = pc.fill_null(pc.match_substring_regex(plain, _FORMULA_START), False)
            self._report(
                ContractReason.FORMULA_INJECTION,
                column.name,
                formula,
                plain,
                "no cell starting with = + - @ (spreadsheet formula injection)",
            )

    def _check_increasing(self, name: str, values: pa.Array) -> None:
        """Strictly increasing across batches: unique in constant memory (for huge files)."""
        if not len(values):
            return
        previous = self._last.get(name)
        joined = values if previous is None else pa.concat_arrays([pa.array([previous], type=values.type), values])
        steps = pc.fill_null(pc.greater(joined[1:], joined[:-1]), False)
        if not pc.all(steps).as_py():
            k = pc.index(steps, False).as_py()  # joined[k + 1] does not exceed joined[k]
            index = k + 1 if previous is None else k  # its position in this batch
            raise fail(
                ContractReason.DUPLICATE_KEY,
                f"column {name} must strictly increase; row {self.rows + index + 1} has "
                f"{joined[k + 1].as_py()!r} after {joined[k].as_py()!r}",
            )
        self._last[name] = values[-1].as_py()

    def _report(self, reason: str, name: str, mask: pa.Array, values: pa.Array, expected: str) -> None:
        if not pc.any(mask).as_py():
            return
        indices = pc.indices_nonzero(mask).to_pylist()[:SHOWN]
        rows = [self.rows + i + 1 for i in indices]
        shown = [values[i].as_py() for i in indices]
        total = pc.sum(pc.cast(mask, pa.int64())).as_py()
        raise fail(
            reason,
            f"column {name}: {total} row(s) violate it, first rows {rows} with values {shown}; expected {expected}",
        )

    def finish(self) -> ValidationReport:
        contract = self.contract
        if self.rows == 0 and contract.min_rows > 0:
            raise fail(ContractReason.NO_ROWS, "the file has a header but no rows")
        if self.rows < contract.min_rows:
            raise fail(
                ContractReason.ROW_COUNT_OUT_OF_BOUNDS,
                f"{self.rows} rows; the contract needs at least {contract.min_rows}",
            )
        for name, chunks in self._unique.items():
            counts = pc.value_counts(pa.chunked_array(chunks))
            repeated = pc.filter(counts, pc.greater(counts.field("counts"), 1))
            if len(repeated):
                shown = [(v["values"], v["counts"]) for v in repeated.to_pylist()[:SHOWN]]
                raise fail(
                    ContractReason.DUPLICATE_KEY,
                    f"column {name} must be unique; {len(repeated)} value(s) repeat, e.g. (value, times) {shown}",
                )
        return ValidationReport(
            dataset=contract.dataset,
            contract_version=contract.version,
            format=contract.format,
            rows=self.rows,
            columns=self.names,
        )


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


def resolve_contract(directory: str | Path, dataset: str, contract_version: str | None = None) -> Contract:
    """The contract a file is checked against: the dataset's, at the version the producer signed for."""
    from mlvault.contracts.schema import load_contract

    if not (Path(directory) / f"{dataset}.json").is_file():
        raise fail(ContractReason.NO_CONTRACT, f"dataset {dataset!r} has no contract in {directory}")
    contract = load_contract(directory, dataset)
    if contract_version is not None and contract_version != contract.version:
        raise fail(
            ContractReason.CONTRACT_VERSION_MISMATCH,
            f"produced for contract v{contract_version}; dataset {dataset} is at v{contract.version}",
        )
    return contract
