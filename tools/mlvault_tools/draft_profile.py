"""What `mlvault contract init` learns about one column of a sample, block by block, in constant memory: which
types every value fits (and the first value that refuted each other type), nulls, the observed range, at most
`max_allowed` + 1 distinct values, whether the values strictly increase; then the guesses, each with its evidence
(contract_draft reads the files)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

CSV_TYPES = ("bool", "int64", "float64", "date32", "timestamp[ms]", "string")  # the most specific first
JSON_TEXT_TYPES = ("timestamp[ms]", "string")  # a JSON string; mlvault reads JSON Lines dates as timestamps
ORDERED = ("int32", "int64", "float32", "float64", "date32", "timestamp[ms]")
INTEGER = ("int32", "int64")
ARROW = {"int64": pa.int64(), "float64": pa.float64(), "date32": pa.date32(), "timestamp[ms]": pa.timestamp("ms")}
FORMULA_START = r"^[=+\-@\t\r]"  # as mlvault.contracts.validate: a spreadsheet would run such a cell
MIN_ROWS_PER_VALUE = 10  # `allowed` only when the sample holds at least this many rows per distinct value
INT32 = (-(2**31), 2**31 - 1)
NULL_LIKE = ("NA", "N/A", "n/a", "NULL", "null", "None", "none", "nan", "NaN", "-", "?")  # hinted, never applied


def _shown(value: Any) -> str:
    text = str(value) if isinstance(value, datetime.date) else repr(value)  # dates and times as ISO text
    return text if len(text) <= 40 else text[:37] + "..."


def _first_failure(values: pa.Array, ok) -> int:
    """The index of the first value for which `ok(slice)` fails (it fails on the whole array): bisection."""
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(values.slice(lo, mid - lo)):
            lo = mid
        else:
            hi = mid
    return lo


def _casts(values: pa.Array, type_: pa.DataType) -> bool:
    try:
        pc.cast(values, type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


@dataclass
class ColumnProfile:
    """One column; `candidates` are the types every value seen so far fits, most specific first."""

    name: str
    candidates: list[str]
    max_allowed: int
    fixed: bool = False  # Parquet: the type is the file's schema, not a guess
    schema_nullable: bool | None = None
    rows: int = 0  # values (not null)
    nulls: int = 0
    first_null: int | None = None
    refuted: dict[str, tuple[int, Any, str]] = field(default_factory=dict)  # type -> (row, value, why)
    bounds: dict[str, list[Any]] = field(default_factory=dict)  # type -> [min, max]
    increasing: dict[str, bool] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    broke: dict[str, tuple[int, Any, Any]] = field(default_factory=dict)  # type -> (row, value, previous)
    distinct: dict[Any, int] | None = field(default_factory=dict)  # None: more than max_allowed
    leading_zero: tuple[int, str] | None = None
    formula: tuple[int, str] | None = None

    # --- observing blocks -------------------------------------------------------------------------------------

    def observe(self, values: pa.Array, offset: int, *, text: bool) -> None:
        """A block of the column (rows offset+1...): `text` values are CSV or JSON strings to classify; otherwise
        the values are typed (Parquet, JSON numbers and booleans)."""
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        nulls = values.null_count
        positions = None
        if nulls:
            valid = pc.is_valid(values)
            if self.first_null is None:
                self.first_null = offset + pc.index(valid, False).as_py() + 1
            positions = pc.indices_nonzero(valid)
            values = values.drop_null()
        self.nulls += nulls
        if nulls:
            self.increasing = dict.fromkeys(self.increasing, False)  # a key has no null
        if not len(values):
            return

        def row(i: int) -> int:
            return offset + (positions[i].as_py() if positions is not None else i) + 1

        if text:
            self._classify(values, row)
        else:
            self._typed(values, row, self.candidates[0] if self.fixed else None)
        self._count(values)
        if (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)) and self.formula is None:
            mask = pc.match_substring_regex(values, FORMULA_START)
            if pc.any(mask).as_py():
                i = pc.index(mask, True).as_py()
                self.formula = (row(i), values[i].as_py())
        self.rows += len(values)

    def _classify(self, values: pa.Array, row) -> None:
        for type_ in [t for t in self.candidates if t != "string"]:
            if type_ == "bool":
                fits = pc.is_in(values, value_set=pa.array(["true", "false"]))
                if not pc.all(fits).as_py():
                    i = pc.index(fits, False).as_py()
                    self._refute(type_, row(i), values[i].as_py())
                continue
            if not _casts(values, ARROW[type_]):
                i = _first_failure(values, lambda part, t=type_: _casts(part, ARROW[t]))
                self._refute(type_, row(i), values[i].as_py())
                continue
            typed = pc.cast(values, ARROW[type_])
            if type_ == "float64" and pc.any(pc.invert(pc.is_finite(typed))).as_py():
                i = pc.index(pc.is_finite(typed), False).as_py()
                self._refute(type_, row(i), values[i].as_py(), "not finite (mlvault refuses NaN and infinities)")
                continue
            self._stats(type_, typed, row)
            if type_ == "int64" and self.leading_zero is None:
                zero = pc.match_substring_regex(values, r"^-?0[0-9]")
                if pc.any(zero).as_py():
                    i = pc.index(zero, True).as_py()
                    self.leading_zero = (row(i), values[i].as_py())

    def _typed(self, values: pa.Array, row, fixed: str | None) -> None:
        if fixed is not None:
            if fixed in ORDERED:
                self._stats(fixed, values, row)
            return
        if pa.types.is_integer(values.type):  # a JSON integer: int64 or float64
            for type_ in [t for t in self.candidates if t in ("int64", "float64")]:
                self._stats(type_, values if type_ == "int64" else pc.cast(values, pa.float64()), row)
        elif pa.types.is_floating(values.type):  # a JSON number with a fraction or an exponent
            if "int64" in self.candidates:
                whole = pc.equal(pc.floor(values), values)
                i = pc.index(whole, False).as_py() if not pc.all(whole).as_py() else 0
                self._refute("int64", row(i), values[i].as_py(), "a number written with a fraction or an exponent")
            if "float64" in self.candidates:
                if pc.any(pc.invert(pc.is_finite(values))).as_py():
                    i = pc.index(pc.is_finite(values), False).as_py()
                    self._refute("float64", row(i), values[i].as_py(), "not finite")
                else:
                    self._stats("float64", values, row)

    def _refute(self, type_: str, row: int, value: Any, why: str = "") -> None:
        self.candidates.remove(type_)
        self.refuted[type_] = (row, value, why)
        self.bounds.pop(type_, None)
        self.increasing.pop(type_, None)

    def _stats(self, type_: str, typed: pa.Array, row) -> None:
        low_high = pc.min_max(typed).as_py()
        bounds = self.bounds.setdefault(type_, [low_high["min"], low_high["max"]])
        bounds[0], bounds[1] = min(bounds[0], low_high["min"]), max(bounds[1], low_high["max"])
        if self.nulls or not self.increasing.get(type_, True):
            self.increasing[type_] = False
            return
        previous = self.last.get(type_)
        joined = typed if previous is None else pa.concat_arrays([pa.array([previous], typed.type), typed])
        steps = pc.greater(joined[1:], joined[:-1]) if len(joined) > 1 else pa.array([], pa.bool_())
        if len(steps) and not pc.all(steps).as_py():
            k = pc.index(steps, False).as_py()
            index = k if previous is not None else k + 1
            self.increasing[type_] = False
            self.broke[type_] = (row(index), joined[k + 1].as_py(), joined[k].as_py())
        else:
            self.increasing[type_] = True
        self.last[type_] = typed[-1].as_py()

    def _count(self, values: pa.Array) -> None:
        if self.distinct is None or pa.types.is_floating(values.type):
            self.distinct = None if pa.types.is_floating(values.type) else self.distinct
            return
        for item in pc.value_counts(values).to_pylist():
            self.distinct[item["values"]] = self.distinct.get(item["values"], 0) + item["counts"]
            if len(self.distinct) > self.max_allowed:
                self.distinct = None
                return

    def absent_before(self, rows: int) -> None:
        """JSON Lines: the field first appears after `rows` rows, which the reader gives as nulls."""
        if rows:
            self.nulls += rows
            self.first_null = 1
            self.increasing = dict.fromkeys(self.increasing, False)

    # --- the guesses ------------------------------------------------------------------------------------------

    def guess(self, total_rows: int, key: str | None, csv: bool) -> tuple[dict[str, Any], list[str]]:
        """The column's contract entry and the evidence for each of its parts."""
        evidence: list[str] = []
        type_ = self.candidates[0] if self.rows else ("string" if not self.fixed else self.candidates[0])
        if self.fixed:
            evidence.append(f"{type_}: the file's schema")
        elif not self.rows:
            evidence.append("string: no value in the sample (every row is null): set the real type")
        else:
            evidence.append(self._type_evidence(type_, csv))
        column: dict[str, Any] = {"name": self.name, "type": type_}
        nullable = self.schema_nullable if self.schema_nullable is not None else self.nulls > 0
        if nullable:
            column["nullable"] = True
        null_seen = (
            f"{self.nulls} of {total_rows} rows null, the first at row {self.first_null}" if self.nulls else "no null"
        )
        if self.schema_nullable is not None:
            evidence.append(
                f"{'nullable' if nullable else 'not nullable'}: the file's schema ({null_seen}; Parquet nullability "
                "is compared exactly)"
            )
        else:
            evidence.append(f"{'nullable' if nullable else 'not nullable'}: {null_seen}")
        values = self._allowed(type_, total_rows, key, evidence)
        if values is not None:
            column["allowed"] = values
        elif type_ in ("int32", "int64", "float32", "float64") and type_ in self.bounds and key != self.name:
            low, high = self.bounds[type_]
            column["min"], column["max"] = low, high
            evidence.append(f"min {low}, max {high}: the observed range; widen it to the domain's real bounds")
        if key == self.name:
            column["unique"] = "increasing"
            low, high = self.bounds[type_]
            evidence.append(
                f'unique "increasing": the values strictly increase over {self.rows} rows ({low} to {high}): the '
                "key candidate (checked in constant memory)"
            )
        elif self.increasing.get(type_) and self.rows > 1:
            evidence.append("its values strictly increase too; not declared unique (one key is drafted)")
        elif type_ == "string" and self.distinct is None:
            evidence.append(
                "uniqueness not checked (it needs memory growing with the rows): for a key, add unique: true "
                "and bound rows.max and max_bytes"
            )
        elif type_ in self.broke and type_ not in ("float32", "float64"):
            at, value, previous = self.broke[type_]
            evidence.append(f"not increasing: row {at} has {_shown(value)} after {_shown(previous)}")
        if self.leading_zero and type_ in INTEGER:
            at, value = self.leading_zero
            evidence.append(f"row {at} has {value!r}, a leading zero an integer drops: if it is a code, make it text")
        return column, evidence

    def _type_evidence(self, type_: str, csv: bool) -> str:
        order = CSV_TYPES if csv else (*CSV_TYPES[:3], *JSON_TEXT_TYPES)
        before = order[: order.index(type_)] if type_ in order else ()
        skipped = {"bool"} | ({"int64", "date32"} if type_ == "string" else set())
        refuted = [
            f"not {t}: row {at} has {_shown(value)}" + (f" ({why})" if why else "")
            for t, (at, value, why) in self.refuted.items()
            if t in before and t not in skipped
        ]
        said = f"{type_}: every one of {self.rows} values fits"
        tokens = sorted({v for t, (_, v, _) in self.refuted.items() if t in before and v in NULL_LIKE})
        if csv and tokens:
            refuted.append(f"if {tokens[0]!r} means null, give --null-value {tokens[0]!r}")
        if type_ == "int64" and type_ in self.bounds:
            low, high = self.bounds[type_]
            if csv and INT32[0] <= low and high <= INT32[1]:
                said += " (text has no width: int32 would fit too)"
        return "; ".join([said, *refuted])

    def _allowed(self, type_: str, total_rows: int, key: str | None, evidence: list[str]) -> list[Any] | None:
        if type_ not in ("string", "int32", "int64") or key == self.name or not self.rows:
            return None
        if self.distinct is None:
            evidence.append(f"no allowed values: more than {self.max_allowed} distinct values")
            return None
        count = len(self.distinct)
        if self.rows < MIN_ROWS_PER_VALUE * count:
            evidence.append(
                f"no allowed values: {count} distinct in only {self.rows} values (fewer than {MIN_ROWS_PER_VALUE} "
                "per value: too few to tell a domain)"
            )
            return None
        values = sorted({int(v) if type_ in INTEGER and isinstance(v, str) else v for v in self.distinct})  # '07' is 7
        evidence.append(
            f"allowed {values}: {count} distinct values in {self.rows} (at most {self.max_allowed} make a domain; "
            "add the values the sample lacks)"
        )
        return values


def key_candidate(profiles: list[ColumnProfile], types: dict[str, str]) -> str | None:
    """The column drafted as the key: strictly increasing without a null, an integer first."""
    ordered = [
        p
        for p in profiles
        if types[p.name] in ORDERED and p.increasing.get(types[p.name]) and not p.nulls and p.rows > 1
    ]
    ordered.sort(key=lambda p: types[p.name] not in INTEGER)
    return ordered[0].name if ordered else None
