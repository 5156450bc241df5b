"""Embedded Metric Format: the metrics of the lines functions print, extracted into CloudWatch (gap 12).

12. Embedded Metric Format. In AWS, CloudWatch Logs extracts the metrics of every log line in EMF (a JSON
   object with `_aws.Timestamp` in ms and `_aws.CloudWatchMetrics` directives: Namespace, Dimensions, Metrics;
   values, possibly lists, and dimension values as top-level keys), as aws-lambda-powertools Metrics prints
   them; moto has no such path. Here every line a function prints that carries `"_aws"` is parsed (runtime.py
   hands it to `put_emf`): each value of each metric is put into moto's CloudWatch once per dimension set,
   timestamped by `_aws.Timestamp`, with its Unit (`put_metric_data` semantics); a document AWS would not
   extract (no numeric Timestamp, a missing or non-string dimension value, a non-numeric value) extracts
   nothing and is recorded as `emf-rejected` in the event log (`emf-metrics` otherwise). Reading the metrics
   back by their exact dimension set, the other half of this gap, is services/cloudwatch.py.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


class EmfError(ValueError):
    """A log line in EMF that CloudWatch would not extract metrics from; the message says why."""


def put_emf(cloud: LocalCloud, function: str, line: str) -> None:
    """Extract the metrics of one line a function printed, if it is in EMF, into moto's CloudWatch."""
    from moto.cloudwatch.models import cloudwatch_backends

    try:
        document = json.loads(line)
    except ValueError:
        return  # not JSON: an ordinary log line
    if not isinstance(document, dict) or "_aws" not in document:
        return
    try:
        extracted = emf_metric_data(document)
    except EmfError as err:
        cloud.record({"kind": "emf-rejected", "function": function, "error": str(err)})
        return
    backend = cloudwatch_backends[cloud.account][cloud.region]
    datapoints = 0
    for namespace, metric_data in extracted:
        backend.put_metric_data(namespace, metric_data)
        datapoints += sum(len(m.get("Values") or [0]) for m in metric_data)
    cloud.record(
        {
            "kind": "emf-metrics",
            "function": function,
            "metrics": sorted({f"{ns}/{m['MetricName']}" for ns, data in extracted for m in data}),
            "datapoints": datapoints,
        }
    )


def emf_metric_data(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, PutMetricData MetricData) pairs of an EMF document: one member per metric and dimension set."""
    meta = document["_aws"]
    if not isinstance(meta, dict):
        raise EmfError("_aws is not an object")
    millis = meta.get("Timestamp")
    if not _is_number(millis):
        raise EmfError("_aws.Timestamp is not a number of milliseconds")
    timestamp = datetime.fromtimestamp(millis / 1000, UTC).replace(tzinfo=None)  # moto keeps naive UTC times
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        raise EmfError("_aws.CloudWatchMetrics is not a list")
    extracted = []
    for directive in directives:
        if not isinstance(directive, dict):
            raise EmfError("a CloudWatchMetrics directive is not an object")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not namespace:
            raise EmfError("a directive has no Namespace")
        dimension_sets = directive.get("Dimensions") or [[]]
        if not isinstance(dimension_sets, list) or not all(isinstance(s, list) for s in dimension_sets):
            raise EmfError(f"{namespace}: Dimensions is not a list of dimension sets")
        for key in {k for s in dimension_sets for k in s}:
            if not isinstance(key, str) or not isinstance(document.get(key), str):
                raise EmfError(f"{namespace}: dimension {key!r} has no string value")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list):
            raise EmfError(f"{namespace}: Metrics is not a list")
        metric_data = []
        for metric in metrics:
            name = metric.get("Name") if isinstance(metric, dict) else None
            if not isinstance(name, str) or not name:
                raise EmfError(f"{namespace}: a metric has no Name")
            value = document.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or not all(_is_number(v) for v in values) or any(math.isnan(v) for v in values):
                raise EmfError(f"{namespace}/{name}: the value {value!r} is not a number or a list of numbers")
            for dimension_set in dimension_sets:
                member: dict[str, Any] = {
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": document[k]} for k in dimension_set],
                    "Timestamp": timestamp,
                    "Unit": metric.get("Unit") or "None",
                }
                if isinstance(value, list):
                    member["Values"] = [float(v) for v in values]
                else:
                    member["Value"] = float(value)
                metric_data.append(member)
        extracted.append((namespace, metric_data))
    return extracted


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
