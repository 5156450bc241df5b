"""The serving function's request and response format, and the structured errors it answers with.

Request: {"rows": [{feature: value, ...}, ...]}, at most MAX_ROWS rows (an empty list is served: no
predictions). Each row is an object holding every feature of the model: a numeric feature takes a finite JSON
number (true/false count as 1/0) or null, a categorical one a string or null (null: the training mean, or
"not this category"). Fields that are not features (an id, the label) are ignored.

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
from collections.abc import Mapping
from typing import Any

from mlvault.errors import AttestationError, InvalidRequest, RequestReason
from mlvault.training.artifact import Model

MAX_ROWS = 1000  # rows per request
MAX_SHOWN = 80  # characters of a caller's value repeated in a message
_MAX_FLOAT_INT = int(sys.float_info.max)


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
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidRequest(
                RequestReason.ROW_NOT_AN_OBJECT,
                f"rows[{index}]: expected an object of feature values, got {type(row).__name__}",
                field=f"rows[{index}]",
            )
    return rows


def check_rows(model: Model, rows: list[Mapping[str, Any]]) -> None:
    """Every row holds every feature of the model, each of its kind (InvalidRequest naming the first that does
    not)."""
    for index, row in enumerate(rows):
        for feature in model.features:
            where = f"rows[{index}].{feature.name}"
            if feature.name not in row:
                raise InvalidRequest(
                    RequestReason.MISSING_FEATURE, f"rows[{index}]: missing feature {feature.name!r}", field=where
                )
            value = row[feature.name]
            if value is None:
                continue
            if feature.kind == "numeric":
                if not isinstance(value, bool | int | float):
                    raise InvalidRequest(
                        RequestReason.NOT_A_NUMBER,
                        f"{where}: expected a finite number or null, got {_shown(value)}",
                        field=where,
                    )
                if not _finite(value):
                    raise InvalidRequest(
                        RequestReason.NOT_FINITE,
                        f"{where}: expected a finite number or null, got {_shown(value)}",
                        field=where,
                    )
            elif not isinstance(value, str):
                raise InvalidRequest(
                    RequestReason.NOT_A_STRING, f"{where}: expected a string or null, got {_shown(value)}", field=where
                )


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
