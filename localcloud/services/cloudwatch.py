"""CloudWatch: alarm state change events (gap 6), exact dimension matching of metric statistics (gap 12) and
alarm history (gap 22).

6. CloudWatch alarms. moto's state changes emit nothing. Here each change puts a `CloudWatch Alarm State
   Change` event on the default bus, shaped as AWS sends it.
12 (metric statistics). moto's GetMetricStatistics matched dimensions as a subset (asking for {Service} also
   summed {Service, Stage}); AWS matches the exact dimension set, each set being its own metric: here it does.
   The extraction of Embedded Metric Format lines into metrics is emf.py; the alarms evaluated from these
   metrics, alarms.py (which matches dimensions with the same `dimension_key`).
22. Alarm history. moto records each state update of an alarm (its previous state) but has no
   DescribeAlarmHistory. Here it answers as AWS does for `StateUpdate` items: one item per change of state
   (a SetAlarmState or an evaluation to the same state records none, as it emits no event), `Timestamp` the
   time of the new state, `HistorySummary` "Alarm updated from OLD to NEW", `HistoryData` the JSON of the old
   and new states ({"version", "oldState": {"stateValue", "stateReason"}, "newState": {...}}); filtered by
   AlarmName, StartDate and EndDate (inclusive), newest first unless ScanBy=TimestampAscending, MaxRecords
   (default and at most 100) pages with NextToken. Other item types (ConfigurationUpdate, Action) are not
   recorded.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud


def install(cloud: LocalCloud) -> None:
    _alarm_events(cloud)
    _metric_statistics()
    alarm_history()


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


# --- 22. Alarm history ------------------------------------------------------------------------------------


def alarm_history() -> None:
    """Give moto's CloudWatch DescribeAlarmHistory (StateUpdate items), in this process (idempotent)."""
    from moto.cloudwatch.models import CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    if getattr(CloudWatchResponse, "_mlvault_alarm_history", False):
        return

    def describe_alarm_history(self: Any) -> Any:
        items = self.cloudwatch_backend.alarm_history_items(
            name=self._get_param("AlarmName"),
            item_type=self._get_param("HistoryItemType"),
            start=_moment(self._get_param("StartDate")),
            end=_moment(self._get_param("EndDate")),
            ascending=self._get_param("ScanBy") == "TimestampAscending",
        )
        limit = max(1, min(int(self._get_param("MaxRecords") or 100), 100))
        offset = int(self._get_param("NextToken") or 0)
        page = items[offset : offset + limit]
        result: dict[str, Any] = {"AlarmHistoryItems": page}
        if offset + limit < len(items):
            result["NextToken"] = str(offset + limit)
        return ActionResult(result)

    def alarm_history_items(
        self: Any, *, name: str | None, item_type: str | None, start: Any, end: Any, ascending: bool
    ) -> list[dict[str, Any]]:
        if item_type not in (None, "", "StateUpdate"):
            return []
        items = []
        for alarm in self.alarms.values():
            if name and alarm.name != name:
                continue
            for item in _state_updates(alarm):
                if (start is None or item["Timestamp"] >= start) and (end is None or item["Timestamp"] <= end):
                    items.append(item)
        return sorted(items, key=lambda i: i["Timestamp"], reverse=not ascending)

    CloudWatchResponse.describe_alarm_history = describe_alarm_history
    CloudWatchBackend.alarm_history_items = alarm_history_items
    CloudWatchResponse._mlvault_alarm_history = True


def _state_updates(alarm: Any) -> list[dict[str, Any]]:
    """The alarm's changes of state: moto keeps (type, reason, reason data, state, timestamp) of each state an
    update replaced; the state after the last one is the alarm's current state."""
    states = [(h[1], h[3], h[4]) for h in alarm.history if h[0] == "StateUpdate"]
    states.append((alarm.state_reason, alarm.state_value, alarm.state_updated_timestamp))
    items = []
    for (old_reason, old, _), (new_reason, new, at) in itertools.pairwise(states):
        if old == new:
            continue
        data = {
            "version": "1.0",
            "oldState": {"stateValue": old, "stateReason": old_reason},
            "newState": {"stateValue": new, "stateReason": new_reason},
        }
        items.append(
            {
                "AlarmName": alarm.name,
                "AlarmType": "CompositeAlarm" if alarm.rule else "MetricAlarm",
                "Timestamp": _aware(at),
                "HistoryItemType": "StateUpdate",
                "HistorySummary": f"Alarm updated from {old} to {new}",
                "HistoryData": json.dumps(data),
            }
        )
    return items


def _moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return _aware(value)
    text = str(value)
    try:
        return _aware(datetime.fromtimestamp(float(text), UTC))
    except ValueError:
        return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
