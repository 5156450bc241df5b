"""`mlvault contract init`: a draft contract from a sample file (CSV, Parquet, JSON Lines), in one streaming pass.

Memory is flat in the file size: the file is read one block at a time (CSV with `pyarrow.csv.open_csv` in 1 MiB
blocks, every column as text; Parquet with `iter_batches` and `pre_buffer=False`; JSON Lines in line-aligned 1 MiB
chunks, each read with `pyarrow.json.open_json`), and each column keeps a fixed amount of state
(mlvault_tools.draft_profile: at most `max_allowed` + 1 distinct values). Nothing is inferred silently: every guess
is printed with its evidence (the first value that refuted a more specific type, the nulls seen, the observed range,
the size of the domain, the increasing key), so that a reviewer can tighten the draft. The draft is valid for the
library's `parse_contract` and accepts the sample it was drawn from."""

from __future__ import annotations

import csv as pycsv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from mlvault.contracts.schema import Contract, parse_contract
from mlvault.contracts.validate import BLOCK_SIZE, PARQUET_BATCH_ROWS
from mlvault_tools.contract_errors import DraftError, DraftReason
from mlvault_tools.contract_file import Descriptions, contract_document
from mlvault_tools.draft_profile import CSV_TYPES, JSON_TEXT_TYPES, ColumnProfile, key_candidate

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DELIMITERS = (",", ";", "\t", "|")
PARQUET_TYPES = {  # str(arrow type) -> mlvault type; Parquet columns are compared exactly
    "int32": "int32",
    "int64": "int64",
    "float": "float32",
    "double": "float64",
    "string": "string",
    "bool": "bool",
    "date32[day]": "date32",
    "timestamp[ms]": "timestamp[ms]",
}
JSON_KINDS = {"int": ["int64", "float64"], "float": ["float64"], "bool": ["bool"], "string": list(JSON_TEXT_TYPES)}


@dataclass
class Draft:
    """A drafted contract: its canonical JSON, the parsed contract, and what was guessed and why."""

    document: dict[str, Any]
    contract: Contract
    rows: int
    lines: list[str] = field(default_factory=list)


def draft(
    path: Path,
    *,
    dataset: str,
    format_: str | None = None,
    delimiter: str | None = None,
    null_values: list[str] | None = None,
    max_allowed: int = 20,
) -> Draft:
    """A contract drafted from a sample file, with the evidence for each guess; DraftError if it cannot be."""
    if format_ is None and path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{path.name}: the format is not in its name ({', '.join(SUFFIXES)}): give --format")
    fmt = format_ or SUFFIXES[path.suffix.lower()]
    lines = [f"format {fmt}: " + ("--format" if format_ else f"the file name ends in {path.suffix}")]
    if path.stat().st_size == 0:
        raise DraftError(DraftReason.EMPTY_SAMPLE, f"{path} has no bytes")
    dialect = None
    if fmt == "csv":
        profiles, rows, dialect = _csv(path, delimiter, null_values, max_allowed, lines)
    elif fmt == "parquet":
        profiles, rows = _parquet(path, max_allowed)
    else:
        profiles, rows = _jsonl(path, max_allowed)
    if rows == 0:
        raise DraftError(DraftReason.EMPTY_SAMPLE, f"{path} has no rows: a draft needs data to learn from")
    types = {p.name: (p.candidates[0] if (p.rows or p.fixed) else "string") for p in profiles}
    key = key_candidate(profiles, types)
    columns = []
    for profile in profiles:
        column, evidence = profile.guess(rows, key, csv=fmt == "csv")
        columns.append(column)
        lines.append(f"{profile.name}: " + "; ".join(evidence))
    if dialect is not None:
        lines.insert(3, _formula_policy(dialect, profiles, types))
    if key is None:
        lines.append("key: none drafted (no column strictly increases without a null)")
    lines.append(
        f"rows: min 1 (the sample has {rows}); no rows.max and no max_bytes: set them from what producers send "
        "(unique: true needs both)"
    )
    lines.append("label, protected_attributes, screening: not guessed (set them for the screen and the fairness gate)")
    description = f"Drafted by mlvault contract init from {path.name} ({rows} rows): review every guess before use."
    data: dict[str, Any] = {"dataset": dataset, "version": "1", "format": fmt}
    if dialect is not None:
        data["csv"] = dialect
    data |= {"rows": {"min": 1}, "columns": columns}
    contract = parse_contract(data, f"the draft of {dataset}")
    return Draft(contract_document(contract, Descriptions(description)), contract, rows, lines)


def _formula_policy(dialect: dict[str, Any], profiles: list[ColumnProfile], types: dict[str, str]) -> str:
    cells = [(p.name, *p.formula) for p in profiles if types[p.name] == "string" and p.formula]
    if not cells:
        return "csv formula_injection reject: no text cell starts with = + - @, tab or CR"
    dialect["formula_injection"] = "allow"
    shown = ", ".join(f"{name} row {row} {value[:20]!r}" for name, row, value in cells[:3])
    return (
        f"csv formula_injection allow (REVIEW): text cells start with = + - @, tab or CR ({shown}); a spreadsheet "
        "would run them as formulas; set reject unless such cells are legitimate"
    )


# --- CSV ----------------------------------------------------------------------------------------------------


def _csv(
    path: Path, delimiter: str | None, null_values: list[str] | None, max_allowed: int, lines: list[str]
) -> tuple[list[ColumnProfile], int, dict[str, Any]]:
    import pyarrow.csv as pcsv

    with path.open("rb") as stream:
        head = stream.read(BLOCK_SIZE)
    end = head.find(b"\n")
    if end < 0 and len(head) == BLOCK_SIZE:
        raise DraftError(DraftReason.UNREADABLE_SAMPLE, "the header runs for 1 MiB or more (mlvault's line limit)")
    try:
        header = head[: end if end >= 0 else len(head)].decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as err:
        raise DraftError(
            DraftReason.UNREADABLE_SAMPLE, f"the header is not UTF-8 ({err}); mlvault reads UTF-8"
        ) from None
    counts = {d: header.count(d) for d in DELIMITERS}
    if delimiter is None:
        delimiter = max(DELIMITERS, key=lambda d: counts[d]) if any(counts.values()) else ","
        others = ", ".join(f"{counts[d]} {d!r}" for d in DELIMITERS if d != delimiter)
        lines.append(f"csv delimiter {delimiter!r}: the header has {counts[delimiter]} of them ({others}; --delimiter)")
    else:
        lines.append(f"csv delimiter {delimiter!r}: --delimiter")
    names = next(pycsv.reader([header], delimiter=delimiter), [])
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates or not names:
        raise DraftError(DraftReason.UNREADABLE_SAMPLE, f"the header names columns twice or none: {duplicates}")
    tokens = [""] if null_values is None else list(null_values)
    lines.append(
        f"csv null tokens {tokens}: "
        + ("--null-value" if null_values is not None else "an empty cell is null (--null-value for others)")
        + "; a header; UTF-8"
    )
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=tokens,
                strings_can_be_null=bool(tokens),
                quoted_strings_can_be_null=False,
            ),
        )
        if reader.schema.names != names or not all(pa.types.is_string(t) for t in reader.schema.types):
            raise DraftError(DraftReason.UNREADABLE_SAMPLE, f"the header reads two ways: {names} and {reader.schema}")
        profiles = [ColumnProfile(n, list(CSV_TYPES), max_allowed) for n in names]
        rows = 0
        for batch in reader:
            for profile, values in zip(profiles, batch.columns, strict=True):
                profile.observe(values, rows, text=True)
            rows += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise DraftError(DraftReason.UNREADABLE_SAMPLE, f"not readable as CSV: {err}") from None
    dialect = {
        "delimiter": delimiter,
        "header": True,
        "encoding": "utf-8",
        "null_values": tokens,
        "formula_injection": "reject",
    }
    return profiles, rows, dialect


# --- Parquet ------------------------------------------------------------------------------------------------


def _parquet(path: Path, max_allowed: int) -> tuple[list[ColumnProfile], int]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=BLOCK_SIZE)
        schema = parquet.schema_arrow
    except (pa.ArrowInvalid, OSError) as err:
        raise DraftError(DraftReason.UNREADABLE_SAMPLE, f"not a readable Parquet file: {err}") from None
    unsupported = [f"{f.name} ({f.type})" for f in schema if str(f.type) not in PARQUET_TYPES]
    if unsupported:
        raise DraftError(
            DraftReason.UNSUPPORTED_COLUMN,
            f"column(s) {', '.join(unsupported)}: mlvault types Parquet columns exactly as int32, int64, float32, "
            "float64, string, bool, date32 or timestamp[ms] (no zone): write them as one of those",
        )
    if len(set(schema.names)) < len(schema.names):
        raise DraftError(DraftReason.UNREADABLE_SAMPLE, f"columns named twice: {schema.names}")
    profiles = [
        ColumnProfile(f.name, [PARQUET_TYPES[str(f.type)]], max_allowed, fixed=True, schema_nullable=f.nullable)
        for f in schema
    ]
    rows = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
            for profile, values in zip(profiles, batch.columns, strict=True):
                profile.observe(values, rows, text=False)
            rows += batch.num_rows
    except (pa.ArrowInvalid, OSError) as err:
        raise DraftError(DraftReason.UNREADABLE_SAMPLE, f"Parquet data unreadable after row {rows}: {err}") from None
    return profiles, rows


# --- JSON Lines ---------------------------------------------------------------------------------------------


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """The file in chunks of whole lines, each at most about BLOCK_SIZE."""
    carry = b""
    while True:
        data = stream.read(BLOCK_SIZE)
        if not data:
            if carry.strip():
                yield carry
            return
        data = carry + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) >= BLOCK_SIZE:
                raise DraftError(DraftReason.UNREADABLE_SAMPLE, "a line of 1 MiB or more (mlvault refuses them)")
            carry = data
            continue
        carry = data[cut:]
        yield data[:cut]


def _kind(name: str, type_: pa.DataType) -> str | None:
    if pa.types.is_integer(type_):
        return "int"
    if pa.types.is_floating(type_):
        return "float"
    if pa.types.is_boolean(type_):
        return "bool"
    if pa.types.is_string(type_) or pa.types.is_timestamp(type_):  # timestamps: read again as their text
        return "string"
    if pa.types.is_null(type_):
        return None
    raise DraftError(
        DraftReason.UNSUPPORTED_COLUMN, f"field {name} holds {type_} values: mlvault columns are flat values"
    )


def _read_chunk(chunk: bytes, rows: int) -> pa.Table:
    import pyarrow.json as pj

    def read(schema: pa.Schema | None = None) -> pa.Table:
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer") if schema else None
        reader = pj.open_json(
            io.BytesIO(chunk),
            read_options=pj.ReadOptions(block_size=len(chunk) + 1, use_threads=False),
            parse_options=options,
        )
        return reader.read_all()

    try:
        table = read()
        text = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
        return read(pa.schema([(n, pa.string()) for n in text])).select(table.schema.names) if text else table
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        message = str(err)
        changed = re.search(r"Column\(/([^)]*)\) changed from (\w+) to (\w+) in row (\d+)", message)
        if changed:
            raise DraftError(
                DraftReason.UNSUPPORTED_COLUMN,
                f"field {changed[1]} holds a {changed[2]} and a {changed[3]} (by row {rows + int(changed[4]) + 1}): "
                "an mlvault column has one type",
            ) from None
        raise DraftError(DraftReason.UNREADABLE_SAMPLE, f"not JSON Lines after row {rows}: {message}") from None


def _jsonl(path: Path, max_allowed: int) -> tuple[list[ColumnProfile], int]:
    profiles: dict[str, ColumnProfile] = {}
    kinds: dict[str, str | None] = {}
    rows = 0
    with path.open("rb") as stream:
        for chunk in _chunks(stream):
            table = _read_chunk(chunk, rows)
            for name in table.schema.names:
                values = table.column(name).combine_chunks()
                kind = _kind(name, values.type)
                if name not in profiles:
                    profiles[name] = ColumnProfile(name, [], max_allowed)
                    profiles[name].absent_before(rows)
                    kinds[name] = None
                if kind is not None and kinds[name] is None:
                    kinds[name], profiles[name].candidates = kind, list(JSON_KINDS[kind])
                elif kind is not None and kind != kinds[name] and {kind, kinds[name]} != {"int", "float"}:
                    raise DraftError(
                        DraftReason.UNSUPPORTED_COLUMN,
                        f"field {name} holds {kinds[name]} and {kind} values (rows {rows + 1} to "
                        f"{rows + table.num_rows}): an mlvault column has one type",
                    )
                if kind == "string" and not pa.types.is_string(values.type):
                    values = values.cast(pa.string())
                profiles[name].observe(values, rows, text=kind == "string")
            for name in set(profiles) - set(table.schema.names):
                profiles[name].observe(pa.nulls(table.num_rows), rows, text=False)
            rows += table.num_rows
    return list(profiles.values()), rows
