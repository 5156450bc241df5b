"""CloudWatch: alarm state change events (gap 6) and exact dimension matching of metric statistics (gap 12).

6. CloudWatch alarms. moto's state changes emit nothing. Here each change puts a `CloudWatch Alarm State
   Change` event on the default bus, shaped as AWS sends it.
12 (metric statistics). moto's GetMetricStatistics matched dimensions as a subset (asking for {Service} also
   summed {Service, Stage}); AWS matches the exact dimension set, each set being its own metric: here it does.
   The extraction of Embedded Metric Format lines into metrics is emf.py; the alarms evaluated from these
   metrics, alarms.py (which matches dimensions with the same `dimension_key`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


def install(cloud: LocalCloud) -> None:
    _alarm_events(cloud)
    _metric_statistics()


# --- 6. Alarm state change events -----------------------------------------------------------------------


def _alarm_events(cloud: LocalCloud) -> None:
    from moto.cloudwatch.models import Alarm
    from moto.events.models import events_backends

    original = Alarm.update_state

    def update_state(self: Any, reason: str, reason_data: str, state_value: str) -> None:
        previous = {
            "value": self.state_value,
            "reason": self.state_reason,
            "timestamp": _iso(self.state_updated_timestamp),
        }
        original(self, reason, reason_data, state_value)
        if previous["value"] == state_value:
            return
        detail = {
            "alarmName": self.name,
            "state": {"value": state_value, "reason": reason, "timestamp": _iso(self.state_updated_timestamp)},
            "previousState": previous,
            "configuration": {
                "description": self.description or "",
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": self.namespace,
                                "name": self.metric_name,
                                "dimensions": {d.name: d.value for d in self.dimensions},
                            },
                            "period": self.period,
                            "stat": self.statistic,
                        },
                    }
                ],
            },
        }
        events_backends[cloud.account][self.region_name].put_events(
            [
                {
                    "Source": "aws.cloudwatch",
                    "DetailType": "CloudWatch Alarm State Change",
                    "Resources": [self.alarm_arn],
                    "Detail": json.dumps(detail),
                }
            ]
        )
        cloud.record({"kind": "alarm-state-change", "alarm": self.name, "from": previous["value"], "to": state_value})

    Alarm.update_state = update_state


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- 12. Metric statistics: the exact dimension set -----------------------------------------------------


def _metric_statistics() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.get_metric_statistics

    def get_metric_statistics(
        self: Any,
        namespace: str,
        metric_name: str,
        start_time: datetime,
        end_time: datetime,
        period: int,
        stats: list[str],
        dimensions: list[dict[str, str]],
        unit: str | None = None,
    ) -> Any:
        wanted = dimension_key((d["Name"], d.get("Value")) for d in dimensions or [])
        exact = _Metrics(
            [md for md in self.get_all_metrics() if dimension_key((d.name, d.value) for d in md.dimensions) == wanted]
        )  # moto's implementation reads only get_all_metrics(); without dimensions it filters no further
        return original(exact, namespace, metric_name, start_time, end_time, period, stats, [], unit)

    CloudWatchBackend.get_metric_statistics = get_metric_statistics


class _Metrics:
    def __init__(self, metrics: list[Any]) -> None:
        self._metrics = metrics

    def get_all_metrics(self) -> list[Any]:
        return self._metrics


def dimension_key(pairs: Any) -> frozenset[tuple[Any, Any]]:
    """What identifies a metric among those of its name: its set of (dimension name, value) pairs."""
    return frozenset(pairs)
