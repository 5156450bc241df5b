"""The serving function's request and response format, and the structured errors it answers with.

Request: {"rows": [{feature: value, ...}, ...]}, at most MAX_ROWS rows (an empty list is served: no
predictions). Each row is an object holding every input column of the model's descriptor (mlvault.model_package),
each of its input's type: `float` a finite JSON number (true/false count as 1/0) or null, `int64` an integer
(true/false count as 1/0), `string` a string or null, `bool` true or false (null: what the model makes of a
missing value, mlvault.serving.onnx_model). Fields that are not inputs (an id, the label) are ignored. Over the
function URL the same JSON is the body of a POST (mlvault.serving.function_url).

Success: {"predictions": [class, ...], "model": {"id", "digest", "version"}}, one class per row, in order.

Refusal: {"error": {"code", "field", "message", "kind"}}, never a traceback, never a function error:
- kind "client": the request is the caller's error (mlvault.errors.RequestReason); `field` names where
  ("rows", "rows[3]", "rows[3].petal_length"; "" for the request as a whole). Counted in the ClientErrors
  metric, which no alarm watches: a bad request never rolls a good model back.
- kind "model": the model this version pins is refused by runtime attestation (ModelReason, ServeReason and
  AnchorReason codes, mlvault.serving.loader); `field` is "". Counted in ModelAttestationFailed (alarmed). The
  detail, which names internal resources, is in the function's log only.
Standard library only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from mlvault.errors import AttestationError, InvalidRequest, RequestReason
from mlvault.model_package import ModelInput

MAX_ROWS = 1000  # rows per request
MAX_SHOWN = 80  # characters of a caller's value repeated in a message
_MAX_FLOAT_INT = int(sys.float_info.max)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_KINDS = frozenset({float, int, bool, type(None)})
_INT_KINDS = frozenset({int, bool})  # integral floats, being rarer, take the walk
_STRING_KINDS = frozenset({str, type(None)})
_BOOL_KINDS = frozenset({bool})
_DICT = frozenset({dict})
_QUICK: dict[str, Any] = {}  # input type -> its quick column check (below)


def parse_rows(event: Any, *, max_rows: int = MAX_ROWS) -> list[Mapping[str, Any]]:
    """The rows of a request {"rows": [{feature: value, ...}, ...]}: at most `max_rows` JSON objects."""
    if not isinstance(event, Mapping):
        raise InvalidRequest(
            RequestReason.MALFORMED_REQUEST, f'expected a request {{"rows": [...]}}, got {type(event).__name__}'
        )
    if set(event) != {"rows"}:
        fields = sorted(map(str, event))
        raise InvalidRequest(
            RequestReason.MALFORMED_REQUEST, f"expected exactly the field 'rows', got {_shown(fields)}"
        )
    rows = event["rows"]
    if not isinstance(rows, list):
        raise InvalidRequest(
            RequestReason.ROWS_NOT_A_LIST, f"rows: expected a list of objects, got {type(rows).__name__}", field="rows"
        )
    if len(rows) > max_rows:
        raise InvalidRequest(
            RequestReason.TOO_MANY_ROWS, f"rows: expected at most {max_rows} rows, got {len(rows)}", field="rows"
        )
    if set(map(type, rows)) <= _DICT:  # JSON objects, as both the runtime and the function URL parse them
        return rows
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidRequest(
                RequestReason.ROW_NOT_AN_OBJECT,
                f"rows[{index}]: expected an object of feature values, got {type(row).__name__}",
                field=f"rows[{index}]",
            )
    return rows


def check_rows(inputs: Sequence[ModelInput], rows: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Every row holds every input column of the model (the descriptor's `inputs`), each value of its input's type;
    returns column -> the rows' values, in order. The error names the first offending value, row by row and, within
    a row, in the descriptor's order (InvalidRequest: MISSING_FEATURE, NOT_A_NUMBER, NOT_FINITE, NOT_AN_INTEGER,
    NOT_A_STRING, NOT_A_BOOLEAN, NULL_NOT_ALLOWED).

    Accepted: float: a finite number, true/false (1/0) or null; int64: an integer within int64 (or a float with an
    integral value), true/false; string: a string or null; bool: true or false. Each column is checked at once
    (types by set, finiteness by one sum); only a column that fails that quick check is walked value by value, so
    a good request costs a few passes over its values, not a Python call per value."""
    columns: dict[str, list[Any]] = {}
    for item in inputs:
        name = item.column
        try:
            values = [row[name] for row in rows]
        except KeyError:
            first_error(inputs, rows)  # raises
            raise
        if not _QUICK[item.type](values):
            first_error(inputs, rows)  # raises, or the quick check was too strict (a huge finite sum)
        columns[name] = values
    return columns


def _quick_float(values: list[Any]) -> bool:
    kinds = set(map(type, values))
    if not kinds <= _FLOAT_KINDS:
        return False
    try:
        total = math.fsum(v for v in values if v is not None)
    except (OverflowError, ValueError):  # an integer too large for a float, an infinity, inf - inf
        return False
    if int in kinds:  # an integer just beyond the largest float converts to it without overflowing: not finite
        ints = [v for v in values if type(v) is int]
        if max(max(ints), -min(ints)) > _MAX_FLOAT_INT:
            return False
    return math.isfinite(total)


def _quick_int(values: list[Any]) -> bool:
    return set(map(type, values)) <= _INT_KINDS and (
        not values or _INT64_MIN <= min(values) <= max(values) <= _INT64_MAX
    )


def _quick_string(values: list[Any]) -> bool:
    return set(map(type, values)) <= _STRING_KINDS


def _quick_bool(values: list[Any]) -> bool:
    return set(map(type, values)) <= _BOOL_KINDS


def first_error(inputs: Sequence[ModelInput], rows: list[Mapping[str, Any]]) -> None:
    """Raise the first offending value's InvalidRequest (row by row, in input order); return if none is. The one
    definition of a valid value (and of each error's code, field and message): a quicker check, this module's or
    the served model's (mlvault.serving.onnx_model), only ever accepts what this walk accepts, and walks when in
    doubt."""
    for index, row in enumerate(rows):
        for item in inputs:
            where = f"rows[{index}].{item.column}"
            if item.column not in row:
                raise InvalidRequest(
                    RequestReason.MISSING_FEATURE, f"rows[{index}]: missing feature {item.column!r}", field=where
                )
            _check_value(item.type, row[item.column], where)


def _check_value(kind: str, value: Any, where: str) -> None:
    if value is None:
        if kind in ("int64", "bool"):
            raise InvalidRequest(
                RequestReason.NULL_NOT_ALLOWED,
                f"{where}: expected a value ({kind} has no missing value), got null",
                field=where,
            )
        return
    if kind in ("float", "int64"):
        integer = kind == "int64"
        expected = "an integer" if integer else "a finite number or null"
        if not isinstance(value, bool | int | float):
            raise InvalidRequest(
                RequestReason.NOT_A_NUMBER, f"{where}: expected {expected}, got {_shown(value)}", field=where
            )
        if not _finite(value):
            raise InvalidRequest(
                RequestReason.NOT_FINITE, f"{where}: expected {expected}, got {_shown(value)}", field=where
            )
        if integer and not _int64(value):
            raise InvalidRequest(
                RequestReason.NOT_AN_INTEGER,
                f"{where}: expected an integer within int64, got {_shown(value)}",
                field=where,
            )
    elif kind == "string":
        if not isinstance(value, str):
            raise InvalidRequest(
                RequestReason.NOT_A_STRING, f"{where}: expected a string or null, got {_shown(value)}", field=where
            )
    elif not isinstance(value, bool):
        raise InvalidRequest(
            RequestReason.NOT_A_BOOLEAN, f"{where}: expected true or false, got {_shown(value)}", field=where
        )


def _int64(value: bool | int | float) -> bool:
    if isinstance(value, float):
        if not value.is_integer():
            return False
        value = int(value)
    return _INT64_MIN <= value <= _INT64_MAX


_QUICK.update(float=_quick_float, int64=_quick_int, string=_quick_string, bool=_quick_bool)


def error_response(err: InvalidRequest) -> dict[str, Any]:
    """The answer to a request that is the caller's error."""
    return {"error": {"code": str(err.reason), "field": err.field, "message": err.detail, "kind": "client"}}


def refusal_response(err: AttestationError) -> dict[str, Any]:
    """The answer while the pinned model is refused (the detail stays in the log: it names internal resources)."""
    message = f"the model this version pins is not served: {err.reason} (the serving function's log has the detail)"
    return {"error": {"code": str(err.reason), "field": "", "message": message, "kind": "model"}}


def _finite(value: bool | int | float) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= _MAX_FLOAT_INT  # float(10**400) overflows
    return math.isfinite(value)


def _shown(value: Any) -> str:
    """A caller's value as a message repeats it: its repr, cut short."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an integer too long to print, a structure too deep
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} characters)"
