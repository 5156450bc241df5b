"""Streaming validation of a file against its data contract, with pyarrow, in batches: memory does not grow
with the number of rows (except for the values of columns declared unique, which must be compared: see
`mlvault.contracts.schema.UNIQUE_BYTES_PER_ROW`).

Explicit by design (GUIDE.md section 6): column types come from the contract, never inference; null tokens are
only those the contract lists (pyarrow would turn "NaN", "NULL", "NA" into nulls); "1e400" is caught as a
non-finite value; invalid UTF-8, ragged rows, duplicate column names and corrupt files are refused.
Each violation raises VerificationError with a stable reason code and details a human can act on: the column
(by name), the first offending data rows (1 = the first row after the header) and values, expected versus got.

Which defect is reported when a file has several (docs/contracts.md, "Which code wins"): the size first, then
the bytes as they are read (encoding, line length: `_TextGuard`, ahead of the parser), then the header, then the
rows in file order, one block at a time (1 MiB of CSV or JSON Lines, 65,536 Parquet rows): in a block, a row the
parser cannot read, then the contract's columns in the contract's order, each with its checks in a fixed order
(null, non-finite, range, allowed, pattern, formula, increasing key); at the end of the file the row count and
the `unique: true` columns.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from mlvault.contracts.schema import NUMERIC, Contract
from mlvault.errors import ContractReason, VerificationError

BLOCK_SIZE = 1 << 20  # the reader's block; a CSV or JSON Lines line (the header included) may not be longer
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
_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
_RETAINED_READS = 8  # JSON Lines: the reads kept to name the row and field of an error (pyarrow reads ahead)


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
    guard = _TextGuard(stream, jsonl=contract.format == "jsonl")
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


class _TextGuard:
    """The bytes of a CSV or JSON Lines file as the parser reads them, checked first: UTF-8 (no UTF-16 or UTF-32
    byte-order mark, no NUL byte, no invalid sequence) and no line longer than BLOCK_SIZE. A defect raises
    BAD_ENCODING or LINE_TOO_LONG with its byte offset before the parser sees those bytes.

    JSON Lines: every read ends at a line break, so that each of pyarrow's blocks is one read and one record
    batch; the last reads are kept, so that an error of the parser can be traced to its line. CSV: the first
    line (the header) is kept, to name the columns of an error raised before the reader has a schema."""

    def __init__(self, raw: BinaryIO, *, jsonl: bool = False) -> None:
        self._raw = raw
        self._aligned = jsonl
        self._first_line = "the first line" if jsonl else "the header"
        self.head = b""  # the bytes up to the first line break (or the first block)
        self._replay = b""  # CSV: bytes read ahead (the first line), returned by the next reads
        self._pending = b""  # an incomplete UTF-8 sequence at the end of the last read
        self._carry = b""  # aligned: the bytes after the last line break, returned by the next read
        self.offset = 0  # bytes of the file checked so far
        self._line_start = 0  # offset of the first byte after the last line break seen
        self.header_end: int | None = None  # offset of the first line break
        self.batches = 0  # record batches the caller took from the parser (aligned: one per read)
        self.reads: deque[tuple[int, bytes]] = deque(maxlen=_RETAINED_READS)  # aligned: (read number, bytes)
        self._read_count = 0

    closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._aligned:
            if self._replay:  # the first line, read ahead to check the header
                wanted = len(self._replay) if size is None or size < 0 else size
                data, self._replay = self._replay[:wanted], self._replay[wanted:]
                if len(data) < wanted:
                    more = self._raw.read(wanted - len(data))
                    self._check(more)
                    data += more
                return data
            data = self._raw.read(size)
            self._check(data)
            return data
        wanted = BLOCK_SIZE if size is None or size < 0 else size
        data = self._carry + self._fill(wanted - len(self._carry))
        if len(data) < wanted:  # the end of the file
            self._carry = b""
        else:
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                raise self._too_long(self._line_start)
            data, self._carry = data[:cut], data[cut:]
        if data:
            self.reads.append((self._read_count, data))
            self._read_count += 1
        return data

    def _fill(self, size: int) -> bytes:
        parts, left = [], size
        while left > 0:
            part = self._raw.read(left)
            if not part:
                break
            self._check(part)
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def _check(self, data: bytes) -> None:
        start = self.offset
        if not data:
            if self._pending:
                self._bad(start - len(self._pending), self._pending, "a UTF-8 sequence cut short by the end")
            return
        if self.header_end is None:
            first = data.find(b"\n")
            self.head += data if first < 0 else data[: first + 1]
            if first >= 0:
                self.header_end = start + first
        if start == 0:
            for bom, name in _BOMS.items():
                if data.startswith(bom):
                    self._bad(0, data, f"a {name} byte-order mark (the file is {name}, not UTF-8)")
        # the first defect of the bytes wins: a NUL byte (valid UTF-8, but not text) or an invalid sequence
        nul = data.find(b"\x00")
        text = self._pending + data if self._pending else data
        if text.isascii():
            self._pending = b""
        else:
            try:
                _, used = codecs.utf_8_decode(text, "strict", False)
            except UnicodeDecodeError as err:
                at = start - len(self._pending) + err.start
                if nul < 0 or at < start + nul:
                    self._bad(at, text[err.start :], "invalid UTF-8")
            else:
                self._pending = text[used:]
        if nul >= 0:
            self._bad(start + nul, data[nul:], "a NUL byte (binary data, or UTF-16 without a byte-order mark)")
        self.offset += len(data)
        last = data.rfind(b"\n")
        if last >= 0:
            self._line_start = start + last + 1
        if self.offset - self._line_start >= BLOCK_SIZE:
            raise self._too_long(self._line_start)

    def _where(self, offset: int) -> str:
        if self.header_end is None or offset <= self.header_end:
            return f"at byte {offset} (in {self._first_line})"
        return f"at byte {offset}"

    def _bad(self, offset: int, data: bytes, what: str) -> None:
        raise fail(ContractReason.BAD_ENCODING, f"{self._where(offset)}: {what}: {data[:16]!r}; expected UTF-8 text")

    def first_line_names(self, delimiter: str) -> tuple[str, ...]:
        """CSV: read ahead to the end of the first line (it is returned again by the next reads) and return its
        names: the header is checked before the reader converts any row."""
        parts = []
        while self.header_end is None:
            part = self._raw.read(BLOCK_SIZE)
            self._check(part)
            if not part:
                break
            parts.append(part)
        self._replay = b"".join(parts)
        return self.header_names(delimiter) if self.header_end is not None else ()

    def header_names(self, delimiter: str) -> tuple[str, ...]:
        """The CSV header's names, from the first line (for an error raised while the reader opens)."""
        import csv as pycsv

        if self.head.count(b'"') % 2:
            return ()  # a quoted name with a line break: the reader decides
        try:
            line = self.head.decode("utf-8-sig").rstrip("\r\n")  # the reader skips a UTF-8 byte-order mark too
            return tuple(next(pycsv.reader([line], delimiter=delimiter)))
        except (UnicodeDecodeError, StopIteration, pycsv.Error):
            return ()

    def _too_long(self, start: int) -> VerificationError:
        first = f" ({self._first_line})" if start == 0 else ""
        return fail(
            ContractReason.LINE_TOO_LONG,
            f"the line starting at byte {start}{first} runs for {BLOCK_SIZE} bytes or more without a line break; "
            f"lines must be shorter than {BLOCK_SIZE} bytes (the reader's block)",
        )


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
        names = stream.header_names(dialect.delimiter) if isinstance(stream, _TextGuard) else ()
        raise _csv_error(err, contract, names, 0) from None


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
        guard = stream if isinstance(stream, _TextGuard) else _TextGuard(stream)
        raise _json_error(err, contract, _Checker(contract), guard) from None


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


def _json_error(err: Exception, contract: Contract, checker: _Checker, guard: _TextGuard) -> VerificationError:
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


def _failed_block(guard: _TextGuard) -> bytes | None:
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
        raise fail(
            ContractReason.CORRUPT_FILE, f"Parquet data unreadable after data row {checker.rows}: {err}"
        ) from None
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
        self._utf8 = contract.format == "parquet"  # CSV and JSON Lines text is checked as it is read

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
        names = batch.schema.names
        for column in self.contract.columns:
            if column.name not in names:
                continue
            values = batch.column(names.index(column.name))
            self._check(column, values)
            if column.unique is True:
                # decoded: a batch's dictionary of unique values is as large as the values, plus the indices
                plain = values.dictionary_decode() if pa.types.is_dictionary(values.type) else values
                self._unique[column.name].append(plain)
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
        if self._utf8 and column.type == "string":
            self._check_utf8(column.name, values, distinct)
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

    def _check_utf8(self, name: str, values: pa.Array, distinct: pa.Array) -> None:
        """Parquet does not check that its strings are UTF-8: check the batch's distinct values."""
        try:
            distinct.validate(full=True)
        except pa.ArrowInvalid:
            bad = [v for v in distinct.cast(pa.binary()).to_pylist() if v is not None and not _is_utf8(v)]
            plain = values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values
            mask = pc.fill_null(pc.is_in(plain.cast(pa.binary()), value_set=pa.array(bad, pa.binary())), False)
            indices = pc.indices_nonzero(mask).to_pylist()[:SHOWN]
            raise fail(
                ContractReason.BAD_ENCODING,
                f"column {name}: rows {[self.rows + i + 1 for i in indices]} have invalid UTF-8 {bad[:SHOWN]}; "
                "expected UTF-8 text",
            ) from None

    def _check_increasing(self, name: str, values: pa.Array) -> None:
        """Strictly increasing across batches: unique in constant memory (for huge files)."""
        if not len(values):
            return
        previous = self._last.get(name)
        joined = values if previous is None else pa.concat_arrays([pa.array([previous], type=values.type), values])
        steps = pc.fill_null(pc.greater(joined[1:], joined[:-1]), False)
        if len(steps) and not pc.all(steps).as_py():  # all() of nothing is null, not true
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
            self._check_unique(name, chunks)
        return ValidationReport(
            dataset=contract.dataset,
            contract_version=contract.version,
            format=contract.format,
            rows=self.rows,
            columns=self.names,
        )

    def _check_unique(self, name: str, chunks: list[pa.Array]) -> None:
        """Sort and compare neighbours (a hash table costs five times the memory; GUIDE.md section 7). Nulls are
        not values: several rows may be null. Memory: the values twice and 8 bytes per row of sort order
        (schema.UNIQUE_BYTES_PER_ROW)."""
        values = pa.concat_arrays(chunks) if chunks else None
        chunks.clear()
        if values is None or len(values) - values.null_count < 2:
            return
        order = pc.sort_indices(values)  # nulls last
        ordered = pc.take(values, order)
        del values
        present = len(ordered) - ordered.null_count
        same = pc.fill_null(pc.equal(ordered.slice(1, present - 1), ordered.slice(0, present - 1)), False)
        if not pc.any(same).as_py():
            return
        at = pc.indices_nonzero(same)  # ordered[p + 1] repeats ordered[p]; the sort is stable: a later row
        repeats = pc.take(order, pc.add(at, 1))  # 0-based rows that repeat an earlier row's value
        first = pc.take(repeats, pc.bottom_k_unstable(repeats, min(SHOWN, len(repeats))))
        shown = pc.unique(pc.take(ordered, pc.add(pc.filter(at, pc.is_in(repeats, value_set=first)), 1)))
        described = []
        for value in shown.to_pylist():
            where = pc.indices_nonzero(pc.fill_null(pc.equal(ordered, pa.scalar(value, ordered.type)), False))
            rows = sorted(r + 1 for r in pc.take(order, where).to_pylist())
            more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
            described.append((rows[1], f"{value!r} at rows {rows[:SHOWN]}{more}"))
        raise fail(
            ContractReason.DUPLICATE_KEY,
            f"column {name} must be unique; {len(repeats)} row(s) repeat an earlier row's value: "
            + "; ".join(text for _, text in sorted(described)),
        )


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
