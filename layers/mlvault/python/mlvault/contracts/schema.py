"""The contract file: parsed and validated as a whole, so that a typo fails `cdk synth` and the tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlvault.trust.producers import ID_PATTERN

TYPES = ("int32", "int64", "float32", "float64", "string", "bool", "date32", "timestamp[ms]")
NUMERIC = ("int32", "int64", "float32", "float64")
FORMATS = ("csv", "parquet", "jsonl")
FORMULA_POLICIES = ("reject", "allow")

# `unique: true` keeps every value of the column until the end of the file (duplicates can be anywhere), so a
# contract must bound it: rows.max (and, for text, max_bytes) times what a row costs must fit the verifier's
# memory. The verify function runs with VERIFIER_MEMORY_MB (one vCPU; infra's ONE_VCPU_MB must not be smaller);
# VERIFIER_RESERVED_MB of it is left to the runtime, boto3, pyarrow's streaming buffers (a 4-million-row
# validation peaks at ~130 MiB) and the profile; the rest is the budget of the unique columns' values.
VERIFIER_MEMORY_MB = 1769
VERIFIER_RESERVED_MB = 512
UNIQUE_MEMORY_BUDGET = (VERIFIER_MEMORY_MB - VERIFIER_RESERVED_MB) * 2**20  # bytes
# Peak memory per row of a `unique: true` column, measured with `mlvault bench unique` (peak RSS of validating a
# one-column file with `unique: true` minus the same file with `unique: false`, 2 and 4 million rows, pyarrow 26,
# x86_64; validate.py keeps the values, then sorts and compares neighbours): 4-byte types (int32, float32,
# date32) 16.8-20.2 bytes; 8-byte types (int64, float64, timestamp[ms]) 22.4-38.3; strings of 8 bytes 24.0-26.4
# (CSV) and 39.2-44.7 (JSON Lines), of 40 bytes 96.1-133.4: about 22 per row plus 2.2-2.8 per byte of text.
# Charged with a margin (a row of several unique columns pays for each):
UNIQUE_BYTES_PER_ROW = {
    "int32": 24,
    "float32": 24,
    "date32": 24,
    "int64": 40,
    "float64": 40,
    "timestamp[ms]": 40,
    "string": 24,
}
UNIQUE_BYTES_PER_TEXT_BYTE = 3  # strings, on top of UNIQUE_BYTES_PER_ROW; the text kept is bounded by max_bytes


class ContractError(ValueError):
    """A contract file is invalid; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False
    required: bool = True
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None
    unique: bool | str = False  # True: compared across the file (memory grows with rows); "increasing": O(1)


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    null_values: tuple[str, ...] = ()
    formula_injection: str = "reject"


@dataclass(frozen=True)
class Screening:
    """Poisoning screen thresholds (mlvault.contracts.screen) and what happens to a batch over them."""

    feature_psi: float = 0.2
    label_psi: float = 0.1
    parity_increase: float = 0.1
    label_flip: float = 0.03  # the share of labels that may look flipped (label-conditional view) before a finding
    action: str = "hold"  # "hold": kept out of training until a human reviews it; "reject": quarantined
    baseline: str | None = None  # a pinned baseline profile, relative to the contracts directory
    baseline_rows: int = 1000  # without a pinned one: accepted rows the learned baseline needs before screening
    min_rows: int = 100  # smaller batches are screened together, per producer, once they add up to it (gate.py)


@dataclass(frozen=True)
class Contract:
    dataset: str
    version: str
    format: str
    columns: tuple[Column, ...]
    csv: CsvDialect = field(default_factory=CsvDialect)
    max_bytes: int | None = None
    min_rows: int = 1
    max_rows: int | None = None
    forbidden_columns: tuple[str, ...] = ()
    allow_extra_columns: bool = False
    label: str | None = None
    protected_attributes: tuple[str, ...] = ()
    screening: Screening = field(default_factory=Screening)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def _fail(where: str, message: str) -> ContractError:
    return ContractError(f"{where}: {message}")


def _only(where: str, data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(where, f"expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(where, f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return data


def _column(where: str, raw: Any) -> Column:
    data = _only(
        where,
        raw,
        {"name", "type", "nullable", "required", "min", "max", "allowed", "pattern", "unique", "description"},
    )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(where, "name must be a non-empty string")
    where = f"{where} ({name})"
    type_ = data.get("type")
    if type_ not in TYPES:
        raise _fail(where, f"type must be one of {', '.join(TYPES)}, got {type_!r}")
    for bound in ("min", "max"):
        if bound in data and (
            type_ not in NUMERIC or isinstance(data[bound], bool) or not isinstance(data[bound], int | float)
        ):
            raise _fail(where, f"{bound} needs a numeric column and a number, got {data[bound]!r} for {type_}")
    if "min" in data and "max" in data and data["min"] > data["max"]:
        raise _fail(where, f"min {data['min']} is above max {data['max']}")
    allowed = data.get("allowed")
    if allowed is not None and (not isinstance(allowed, list) or not allowed):
        raise _fail(where, "allowed must be a non-empty list of values")
    if allowed is not None and type_ in ("date32", "timestamp[ms]"):
        raise _fail(where, f"allowed applies to numeric, string and bool columns, not {type_} (use min/max)")
    pattern = data.get("pattern")
    if pattern is not None:
        if type_ != "string":
            raise _fail(where, "pattern applies to string columns only")
        try:
            re.compile(pattern)
        except re.error as err:
            raise _fail(where, f"pattern does not compile: {err}") from None
    for flag in ("nullable", "required"):
        if flag in data and not isinstance(data[flag], bool):
            raise _fail(where, f"{flag} must be true or false")
    if "unique" in data and data["unique"] not in (True, False, "increasing"):
        raise _fail(where, 'unique must be true, false or "increasing" (strictly increasing: constant memory)')
    if data.get("unique") == "increasing" and type_ not in (*NUMERIC, "date32", "timestamp[ms]"):
        raise _fail(where, 'unique "increasing" needs an ordered (numeric or time) column')
    if data.get("unique") == "increasing" and data.get("nullable", False):
        raise _fail(where, 'unique "increasing" needs a column that is not nullable: a null has no place in the order')
    if data.get("unique") is True and type_ == "bool":
        raise _fail(where, "unique: true on a bool column allows two rows at most")
    return Column(
        name=name,
        type=type_,
        nullable=data.get("nullable", False),
        required=data.get("required", True),
        min=data.get("min"),
        max=data.get("max"),
        allowed=tuple(allowed) if allowed else None,
        pattern=pattern,
        unique=data.get("unique", False),
    )


def parse_contract(data: Any, source: str = "contract", *, check_memory: bool = True) -> Contract:
    """A contract from its JSON; ContractError naming the field. `check_memory` (off only for the benchmark that
    measures it): refuse `unique: true` columns whose values may not fit the verifier's memory."""
    data = _only(
        source,
        data,
        {
            "dataset",
            "version",
            "description",
            "format",
            "csv",
            "max_bytes",
            "rows",
            "columns",
            "forbidden_columns",
            "allow_extra_columns",
            "label",
            "protected_attributes",
            "screening",
        },
    )
    dataset = data.get("dataset")
    if not isinstance(dataset, str) or not ID_PATTERN.match(dataset):
        raise _fail(source, f"dataset must match {ID_PATTERN.pattern}, got {dataset!r}")
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise _fail(source, "version must be a non-empty string (the envelope's contract_version names it)")
    format_ = data.get("format")
    if format_ not in FORMATS:
        raise _fail(source, f"format must be one of {', '.join(FORMATS)}, got {format_!r}")
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, list) or not raw_columns:
        raise _fail(source, "columns must be a non-empty list")
    columns = tuple(_column(f"{source} columns[{i}]", c) for i, c in enumerate(raw_columns))
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(source, f"columns declared twice: {duplicates}")
    csv = CsvDialect()
    if "csv" in data:
        if format_ != "csv":
            raise _fail(source, "csv dialect given for a non-CSV format")
        raw = _only(
            f"{source} csv", data["csv"], {"delimiter", "header", "encoding", "null_values", "formula_injection"}
        )
        delimiter = raw.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
            raise _fail(f"{source} csv", f"delimiter must be one character, got {delimiter!r}")
        if raw.get("encoding", "utf-8").lower() not in ("utf-8", "utf8"):
            raise _fail(f"{source} csv", "encoding must be utf-8 (the only encoding mlvault validates)")
        policy = raw.get("formula_injection", "reject")
        if policy not in FORMULA_POLICIES:
            raise _fail(
                f"{source} csv",
                f"formula_injection must be one of {', '.join(FORMULA_POLICIES)}; "
                "escaping would change the signed bytes, so mlvault rejects instead",
            )
        nulls = raw.get("null_values", [])
        if not isinstance(nulls, list) or not all(isinstance(n, str) for n in nulls):
            raise _fail(f"{source} csv", "null_values must be a list of strings (explicit null tokens)")
        csv = CsvDialect(
            delimiter=delimiter, header=raw.get("header", True), null_values=tuple(nulls), formula_injection=policy
        )
        if not csv.header:
            raise _fail(f"{source} csv", "header must be true (columns are matched by name)")
    rows = _only(f"{source} rows", data.get("rows", {}), {"min", "max"})
    min_rows, max_rows = rows.get("min", 1), rows.get("max")
    if (
        not isinstance(min_rows, int)
        or min_rows < 0
        or (max_rows is not None and (not isinstance(max_rows, int) or max_rows < min_rows))
    ):
        raise _fail(f"{source} rows", f"need 0 <= min <= max, got min={min_rows!r} max={max_rows!r}")
    label = data.get("label")
    if label is not None and label not in names:
        raise _fail(source, f"label {label!r} is not a declared column")
    protected = tuple(data.get("protected_attributes", []))
    missing = [p for p in protected if p not in names]
    if missing:
        raise _fail(source, f"protected_attributes {missing} are not declared columns")
    forbidden = tuple(data.get("forbidden_columns", []))
    clash = sorted(set(forbidden) & set(names))
    if clash:
        raise _fail(source, f"columns both declared and forbidden: {clash}")
    max_bytes = data.get("max_bytes")
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1):
        raise _fail(source, f"max_bytes must be a positive integer, got {max_bytes!r}")
    screening = _screening(f"{source} screening", data.get("screening", {}))
    contract = Contract(
        dataset=dataset,
        version=version,
        format=format_,
        columns=columns,
        csv=csv,
        max_bytes=max_bytes,
        min_rows=min_rows,
        max_rows=max_rows,
        forbidden_columns=forbidden,
        allow_extra_columns=bool(data.get("allow_extra_columns", False)),
        label=label,
        protected_attributes=protected,
        screening=screening,
    )
    if check_memory:
        _check_unique_memory(source, contract)
    return contract


def unique_memory(contract: Contract) -> int | None:
    """Bytes the verifier may hold for the contract's `unique: true` columns (None: unbounded, as rows.max or,
    for a text column, max_bytes is missing)."""
    unique = [c for c in contract.columns if c.unique is True]
    if not unique:
        return 0
    if contract.max_rows is None:
        return None
    total = 0
    for column in unique:
        total += contract.max_rows * UNIQUE_BYTES_PER_ROW[column.type]
        if column.type == "string":
            if contract.max_bytes is None:
                return None
            total += int(contract.max_bytes * UNIQUE_BYTES_PER_TEXT_BYTE)
    return total


def _check_unique_memory(source: str, contract: Contract) -> None:
    unique = [c for c in contract.columns if c.unique is True]
    if not unique:
        return
    names = [c.name for c in unique]
    costs = ", ".join(
        f"{c.name} ({c.type}) {UNIQUE_BYTES_PER_ROW[c.type]} bytes per row"
        + (f" + {UNIQUE_BYTES_PER_TEXT_BYTE} per byte of text" if c.type == "string" else "")
        for c in unique
    )
    need = unique_memory(contract)
    budget = f"the verifier's budget for them is {UNIQUE_MEMORY_BUDGET // 2**20} MiB of its {VERIFIER_MEMORY_MB} MB"
    if need is None:
        bound = "rows.max" if contract.max_rows is None else "max_bytes (it bounds the text kept)"
        raise _fail(
            source,
            f"unique: true column(s) {names} keep every value until the end of the file ({costs}): "
            f'the contract needs {bound} to bound that memory; {budget} (or use unique "increasing": constant '
            "memory)",
        )
    if need > UNIQUE_MEMORY_BUDGET:
        per_row = sum(UNIQUE_BYTES_PER_ROW[c.type] for c in unique)
        text = sum(int((contract.max_bytes or 0) * UNIQUE_BYTES_PER_TEXT_BYTE) for c in unique if c.type == "string")
        fits = max(0, (UNIQUE_MEMORY_BUDGET - text) // per_row)
        raise _fail(
            source,
            f"unique: true column(s) {names} may need {need // 2**20} MiB for rows.max {contract.max_rows}"
            + (f" and max_bytes {contract.max_bytes}" if text else "")
            + f" ({costs}); {budget}: lower rows.max (at most {fits} rows fit)"
            + (" or max_bytes" if text else "")
            + ', or use unique "increasing" (constant memory)',
        )


def _screening(where: str, raw: Any) -> Screening:
    data = _only(
        where,
        raw,
        {
            "feature_psi",
            "label_psi",
            "parity_increase",
            "label_flip",
            "action",
            "baseline",
            "baseline_rows",
            "min_rows",
        },
    )
    for name in ("feature_psi", "label_psi", "parity_increase", "label_flip"):
        if name in data and (
            isinstance(data[name], bool) or not isinstance(data[name], int | float) or data[name] <= 0
        ):
            raise _fail(where, f"{name} must be a positive number, got {data[name]!r}")
    if data.get("label_flip", 0) >= 1:
        raise _fail(where, f"label_flip is a share of labels, below 1, got {data['label_flip']!r}")
    if data.get("action", "hold") not in ("hold", "reject"):
        raise _fail(where, f"action must be hold or reject, got {data['action']!r}")
    for name in ("baseline_rows", "min_rows"):
        rows = data.get(name, 1)
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise _fail(where, f"{name} must be a positive integer, got {rows!r}")
    baseline = data.get("baseline")
    if baseline is not None and (
        not isinstance(baseline, str) or not re.fullmatch(r"[A-Za-z0-9_./-]+\.json", baseline) or ".." in baseline
    ):
        raise _fail(where, f"baseline must be a .json path inside the contracts directory, got {baseline!r}")
    return Screening(**data)


def load_contract(directory: str | Path, dataset: str) -> Contract:
    path = Path(directory) / f"{dataset}.json"
    if not path.is_file():
        raise ContractError(f"no contract for dataset {dataset!r} ({path} does not exist)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ContractError(f"{path}: not JSON ({err})") from None
    contract = parse_contract(data, str(path))
    if contract.dataset != dataset:
        raise ContractError(f"{path}: declares dataset {contract.dataset!r}, expected {dataset!r}")
    if contract.screening.baseline:
        from mlvault.contracts.screen import load_baseline  # pyarrow: only when a contract pins a baseline

        load_baseline(directory, contract)  # a missing or mismatched pinned baseline fails here (and at synth)
    return contract


def load_all(directory: str | Path) -> dict[str, Contract]:
    """Every contract of a directory, each validated (used by synth and the tests)."""
    return {p.stem: load_contract(directory, p.stem) for p in sorted(Path(directory).glob("*.json"))}


def resolve_contract(directory: str | Path, dataset: str, contract_version: str | None = None) -> Contract:
    """The contract a file is checked against: the dataset's, at the version the producer signed for (a
    VerificationError with a ContractReason otherwise). No pyarrow: the functions that only read contracts (sign,
    register) import this module, not the validator."""
    from mlvault.errors import ContractReason, VerificationError

    if not (Path(directory) / f"{dataset}.json").is_file():
        raise VerificationError(ContractReason.NO_CONTRACT, f"dataset {dataset!r} has no contract in {directory}")
    contract = load_contract(directory, dataset)
    if contract_version is not None and contract_version != contract.version:
        raise VerificationError(
            ContractReason.CONTRACT_VERSION_MISMATCH,
            f"produced for contract v{contract_version}; dataset {dataset} is at v{contract.version}",
        )
    return contract
