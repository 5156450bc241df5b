"""Powertools singletons, created once per process (GUIDE.md section 4), one way to emit a metric, and the EMF
documents of the serving function's hot path.

Metrics are aws-lambda-powertools' EMF. `EmfDocument` is one document Powertools builds once (its namespace,
dimension sets, dimension values, metadata, metric names and units, serialized by Powertools itself) and that is
then printed for every request with only its timestamp and values filled in: a served request's metrics, printed
through Powertools' `EphemeralMetrics` one batch at a time, cost more than its validation, features and drift
window together (a batch object per document, and per metric, dimension set and flush its checks, warnings and a
fresh JSON encoder; about 70 us a request, 500 us when a drift window fills: nine documents), and the documents of
one function version differ only in those fields. The printed line is byte for byte what `flush_metrics` prints
(a test compares them), it is printed only when Powertools' metrics are enabled (`is_metrics_disabled`), and it
keeps Powertools' limit of 100 values per metric. Everything else (refusals, client errors, other functions)
emits through Powertools as before.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS

from mlvault.config import function_settings
from mlvault.wiring import NAMESPACE, Dimension

logger = Logger()
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # json.dumps(..., separators=(",", ":")), as Powertools prints


def metrics() -> EphemeralMetrics:
    """A metrics batch in mlvault's namespace, without Powertools' service dimension (alarms name Stage only)."""
    return EphemeralMetrics(namespace=NAMESPACE, service="")


def emit(name: str, value: float, *extra: dict[str, str], unit: str = MetricUnit.Count) -> None:
    """One EMF metric, with the dimension set [Stage] plus one set per mapping in `extra` (each with Stage)."""
    stage = function_settings().stage
    batch = metrics()
    batch.add_metric(name=name, unit=unit, value=value)
    batch.add_dimension(name=Dimension.STAGE, value=stage)
    for dimensions in extra:
        batch.add_dimensions(**{Dimension.STAGE: stage}, **dimensions)
    batch.flush_metrics()


class EmfDocument:
    """The EMF document of a `metrics()` batch of these metrics (name, unit), dimensions (`add_dimension`, in
    order), further dimension sets (`add_dimensions`) and metadata, built and serialized by Powertools once;
    `line(values)` is what that batch's `flush_metrics` prints once one value list per metric was added (in the
    order of `units`) and its timestamp set."""

    def __init__(
        self,
        units: Sequence[tuple[str, str]],
        dimensions: Mapping[str, str],
        dimension_sets: Sequence[Mapping[str, str]] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        batch = metrics()
        for name, unit in units:
            batch.add_metric(name=name, unit=unit, value=0)
        for name, value in dimensions.items():
            batch.add_dimension(name=name, value=value)
        for extra in dimension_sets:
            batch.add_dimensions(**extra)
        for key, value in (metadata or {}).items():
            batch.add_metadata(key=key, value=value)
        document = dict(batch.serialize_metric_set())
        aws = document.pop("_aws")
        if list(aws) != ["Timestamp", "CloudWatchMetrics"] or list(document)[-len(units) :] != [n for n, _ in units]:
            raise ValueError(f"not the EMF document shape this module writes: {aws} {list(document)}")
        for name, _ in units:
            del document[name]
        fixed = _ENCODER.encode(document)[1:-1]  # the dimension values and the metadata, in Powertools' order
        self._head = '{"_aws":{"Timestamp":'
        self._middle = (
            "," + _ENCODER.encode({"CloudWatchMetrics": aws["CloudWatchMetrics"]})[1:] + ("," + fixed if fixed else "")
        )
        self._keys = tuple("," + _ENCODER.encode(name) + ":" for name, _ in units)

    def line(self, values: Sequence[Sequence[float]], millis: int | None = None) -> str:
        """The document with these values (one list per metric, 1 to 99 values: Powertools prints a batch early
        at 100), timestamped `millis` (ms since the epoch; now by default)."""
        keys = self._keys
        if len(values) != len(keys):
            raise ValueError(f"expected {len(keys)} lists of values, got {len(values)}")
        stamp = int(time.time() * 1000) if millis is None else millis
        parts = [self._head, str(stamp), self._middle]
        for key, listed in zip(keys, values, strict=True):
            if not 0 < len(listed) < MAX_METRICS:
                raise ValueError(f"expected 1 to {MAX_METRICS - 1} values of a metric, got {len(listed)}")
            parts += (key, _numbers([float(v) for v in listed]))
        parts.append("}")
        return "".join(parts)


def _numbers(floats: list[float]) -> str:
    """json's encoding of a list of floats (float.__repr__ each, as its encoder writes a finite float)."""
    if all(map(math.isfinite, floats)):
        return "[" + ",".join(map(float.__repr__, floats)) + "]"
    return _ENCODER.encode(floats)  # NaN, Infinity


def print_emf(lines: Sequence[str]) -> None:
    """Print EMF lines (EmfDocument.line) as Powertools' flush_metrics would, one a line, unless metrics are
    disabled (POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV)."""
    if lines and not is_metrics_disabled():
        print("\n".join(lines))
