"""The contract's column and file checks, applied batch by batch to what a reader parsed (CSV, JSON Lines or
Parquet: mlvault.contracts.validate), in a fixed order (docs/contracts.md, "Which code wins"): the header, then per
batch each contract column's checks (null, non-finite, range, allowed, pattern, formula, increasing key), then at
the end of the file the row count and the `unique: true` columns (sorted and compared: see
`mlvault.contracts.schema.UNIQUE_BYTES_PER_ROW`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mlvault.contracts.schema import NUMERIC, Contract
from mlvault.contracts.text_guard import fail, is_utf8
from mlvault.errors import ContractReason

SHOWN = 5
_OTHER_DELIMITERS = (",", ";", "\t", "|")
_FORMULA_START = r"^[=+\-@\t\r]"

Observer = Callable[[pa.RecordBatch], None]


@dataclass(frozen=True)
class ValidationReport:
    dataset: str
    contract_version: str
    format: str
    rows: int
    columns: tuple[str, ...]


class Checker:
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
            bad = [v for v in distinct.cast(pa.binary()).to_pylist() if v is not None and not is_utf8(v)]
            plain = values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values
            mask = pc.fill_null(pc.is_in(plain.cast(pa.binary()), value_set=pa.array(bad, pa.binary())), False)
            indices = pc.indices_nonzero(mask).to_pylist()[:SHOWN]
            raise fail(
                ContractReason.BAD_ENCODING,
                f"column {name}: rows {[self.rows + i + 1 for i in indices]} have invalid UTF-8 {bad[:SHOWN]}; "
                "expected UTF-8 text",
            ) from None

    def _check_increasing(self, name: str, values: pa.Array) -> None:
        """Strictly increasing across batches: unique in constant memory (for huge files). Each value is compared
        with the one before it, the first of a batch with the last of the batch before; the file's first row has
        none (a one-row file has no step to check)."""
        if not len(values):
            return
        previous = self._last.get(name)
        joined = values if previous is None else pa.concat_arrays([pa.array([previous], type=values.type), values])
        steps = pc.fill_null(pc.greater(joined[1:], joined[:-1]), False)  # steps[k]: joined[k + 1] > joined[k]
        # the first step that does not increase decides, found directly: pc.index answers -1 when there is none
        # (and all() of no steps is null, not true: deciding on it refused one-row files, "row 1 has 1 after 1")
        k = pc.index(steps, False).as_py()
        if k >= 0:
            index = k + 1 if previous is None else k  # the position in this batch of joined[k + 1]
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
