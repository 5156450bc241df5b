"""Alarm evaluation: metric alarms judged from their metric data, as CloudWatch does (gap 13).

13. Alarm evaluation. moto stores metric alarms and never evaluates them. Here `AlarmEvaluator` (run by the
   local cloud on a thread, about every second) evaluates each single-metric alarm over its last
   EvaluationPeriods complete periods of data put by PutMetricData or EMF (Namespace, MetricName, the exact
   Dimensions, Unit if set; Statistic Average, Sum, Maximum, Minimum or SampleCount; the four
   Greater/Less(OrEqual)Threshold comparisons): ALARM when at least DatapointsToAlarm (default
   EvaluationPeriods) periods breach. TreatMissingData: `breaching`/`notBreaching` count a period without data
   as breaching/not; `missing` (the default) and `ignore` judge the periods with data, needing
   min(DatapointsToAlarm, periods with data) breaching ones (AWS's reaching back for older datapoints, in
   short); with no data at all `missing` gives INSUFFICIENT_DATA and `ignore` keeps the state. The state
   changes through `Alarm.update_state`, so gap 6 (services/cloudwatch.py) emits the event with the previous
   and new state. Time is scaled for local runs: with `alarm_scale` s (LocalCloud / control.up `alarm_scale`,
   server `--alarm-scale`; unset, it is the `schedule_scale`), a period of P seconds lasts P / s seconds of
   wall time and the datapoints (timestamped in wall time) are bucketed by floor(epoch seconds / (P / s)); the
   window is the EvaluationPeriods buckets before the current, unfinished one.
   Differences from AWS, so that tests and demos may still force states with SetAlarmState: the evaluator
   changes an alarm only when its own verdict changes (new data, or data leaving the window), so a state set
   by hand stands until the metric says something new, where AWS reverts it at the next evaluation; an
   alarm's first verdict is taken silently unless it is ALARM (moto creates alarms in OK, AWS in
   INSUFFICIENT_DATA, and nobody acts on a first OK or INSUFFICIENT_DATA); an ALARM first verdict changes the
   state with its event. Not evaluated (recorded once as `alarm-not-evaluated`): metric math alarms
   (Metrics), percentiles (ExtendedStatistic), anomaly detection comparisons; metrics moto derives from
   other services (none for Lambda) are not read.
"""

from __future__ import annotations

import json
import math
import operator
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from localcloud.services.cloudwatch import dimension_key

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

_COMPARISONS = {
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
_STATISTICS = ("Average", "Sum", "Maximum", "Minimum", "SampleCount")


def alarm_state(
    values: list[float | None],
    *,
    threshold: float,
    comparison: str,
    datapoints_to_alarm: int,
    treat_missing_data: str | None,
) -> str | None:
    """The state an alarm's evaluation range gives (one statistic per period, None where a period has no
    data), or None when the state is to be kept (`ignore` with no data at all)."""
    compare = _COMPARISONS[comparison][0]
    treatment = treat_missing_data or "missing"
    if treatment in ("breaching", "notBreaching"):
        missing_breaches = treatment == "breaching"
        breaching = sum(1 for v in values if (missing_breaches if v is None else compare(v, threshold)))
        return "ALARM" if breaching >= datapoints_to_alarm else "OK"
    present = [v for v in values if v is not None]
    if not present:
        return "INSUFFICIENT_DATA" if treatment == "missing" else None
    breaching = sum(1 for v in present if compare(v, threshold))
    return "ALARM" if breaching >= min(datapoints_to_alarm, len(present)) else "OK"


@dataclass
class _Verdict:
    alarm: Any  # moto's Alarm object the verdict is of (PutMetricAlarm replaces it)
    key: tuple[int, int]  # (current period, number of datapoints stored): unchanged, nothing to evaluate
    state: str | None  # the evaluator's last verdict


class AlarmEvaluator:
    """Evaluates the metric alarms of the local cloud's region from their metric data (gap 13)."""

    def __init__(self, cloud: LocalCloud, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"alarm scale must be positive, got {scale}")
        self._cloud = cloud
        self.scale = scale
        self._verdicts: dict[str, _Verdict] = {}
        self._not_evaluated: set[str] = set()

    def evaluate(self, now: float | None = None) -> None:
        """One pass over every alarm; cheap when nothing changed (no new period, no new datapoint)."""
        from moto.cloudwatch.models import cloudwatch_backends

        now = time.time() if now is None else now
        backend = cloudwatch_backends[self._cloud.account][self._cloud.region]
        alarms = list(backend.alarms.values())
        for gone in set(self._verdicts) - {a.name for a in alarms}:
            del self._verdicts[gone]
        data: list[Any] | None = None
        judged: list[str] = []
        for alarm in alarms:
            why_not = _not_evaluable(alarm)
            if why_not:
                if alarm.name not in self._not_evaluated:
                    self._not_evaluated.add(alarm.name)
                    self._cloud.record({"kind": "alarm-not-evaluated", "alarm": alarm.name, "reason": why_not})
                continue
            period = int(alarm.period) / self.scale
            current = math.floor(now / period)
            key = (current, len(backend.metric_data))
            verdict = self._verdicts.get(alarm.name)
            if verdict is not None and verdict.alarm is alarm and verdict.key == key:
                continue
            if data is None:
                data = list(backend.metric_data)
            self._judge(alarm, verdict if verdict is not None and verdict.alarm is alarm else None, key, data, now)
            judged.append(alarm.name)
        if judged:  # observable: a test waits for evaluations to have happened instead of sleeping
            self._cloud.record({"kind": "alarm-evaluated", "alarms": judged})

    def _judge(self, alarm: Any, verdict: _Verdict | None, key: tuple[int, int], data: list[Any], now: float) -> None:
        from moto.cloudwatch.models import Statistics
        from moto.core.utils import utcnow

        periods = int(alarm.evaluation_periods)
        needed = int(alarm.datapoints_to_alarm or periods)
        period = int(alarm.period) / self.scale
        first = key[0] - periods
        buckets: list[list[Any]] = [[] for _ in range(periods)]
        wanted = dimension_key((d.name, d.value) for d in alarm.dimensions)
        for md in data:
            if md.namespace != alarm.namespace or md.name != alarm.metric_name:
                continue
            if alarm.unit and md.unit != alarm.unit:
                continue
            if dimension_key((d.name, d.value) for d in md.dimensions) != wanted:
                continue
            index = math.floor(md.timestamp.replace(tzinfo=UTC).timestamp() / period) - first
            if 0 <= index < periods:
                buckets[index].append(md)
        values: list[float | None] = []
        for bucket in buckets:
            statistics = Statistics([alarm.statistic], utcnow())
            statistics.metric_data = bucket
            value = statistics.get_statistics_for_type(alarm.statistic) if bucket else None
            values.append(None if value is None else float(value))
        state = alarm_state(
            values,
            threshold=float(alarm.threshold),
            comparison=alarm.comparison_operator,
            datapoints_to_alarm=needed,
            treat_missing_data=alarm.treat_missing_data,
        )
        starts = [datetime.fromtimestamp((first + i) * period, UTC) for i in range(periods)]
        if verdict is None:  # the alarm's first verdict (or one made by hand before it)
            untouched = not alarm.history and str(alarm.state_reason).startswith("Unchecked")
            if untouched and state is not None and state != alarm.state_value:
                reason, reason_data = _reason(alarm, state, values, starts, needed, now)
                if state == "ALARM":
                    alarm.update_state(reason, reason_data, state)
                else:  # taken silently: AWS would have created the alarm in this state
                    alarm.state_value, alarm.state_reason, alarm.state_reason_data = state, reason, reason_data
                    alarm.state_updated_timestamp = utcnow()
        elif state is not None and state != verdict.state and state != alarm.state_value:
            reason, reason_data = _reason(alarm, state, values, starts, needed, now)
            alarm.update_state(reason, reason_data, state)
        kept = state if state is not None else (verdict.state if verdict is not None else None)
        self._verdicts[alarm.name] = _Verdict(alarm=alarm, key=key, state=kept)


def _not_evaluable(alarm: Any) -> str:
    if alarm.metric_data_queries:
        return "metric math alarms (Metrics) are not evaluated locally"
    if alarm.extended_statistic or alarm.statistic not in _STATISTICS:
        return f"statistic {alarm.extended_statistic or alarm.statistic!r} is not evaluated locally"
    if alarm.comparison_operator not in _COMPARISONS:
        return f"comparison {alarm.comparison_operator!r} is not evaluated locally"
    if not alarm.period or not alarm.evaluation_periods:
        return "the alarm has no Period or EvaluationPeriods"
    return ""


def _reason(
    alarm: Any, state: str, values: list[float | None], starts: list[datetime], needed: int, now: float
) -> tuple[str, str]:
    """StateReason and StateReasonData as CloudWatch words them."""
    relation = _COMPARISONS[alarm.comparison_operator][1]
    recent = [(v, s) for v, s in zip(values, starts, strict=True) if v is not None][::-1]
    listing = ", ".join(f"{_number(v)} ({s:%d/%m/%y %H:%M:%S})" for v, s in recent)
    threshold = _number(float(alarm.threshold))
    compare = _COMPARISONS[alarm.comparison_operator][0]
    if state == "INSUFFICIENT_DATA":
        reason = f"Insufficient Data: {len(values)} datapoint{'s were' if len(values) > 1 else ' was'} unknown."
    else:
        alarming = state == "ALARM"
        breaches = [v is not None and compare(v, float(alarm.threshold)) for v in values]
        count = breaches.count(alarming)  # the datapoints that crossed (ALARM) or did not (OK)
        transition = f"{alarm.state_value} -> ALARM transition" if alarming else "ALARM transition"
        reason = (
            f"Threshold Crossed: {count} out of the last {len(values)} datapoints [{listing}] "
            f"{'was' if count == 1 else 'were'} {'' if alarming else 'not '}{relation} the threshold ({threshold}) "
            f"(minimum {needed} datapoint{'s' if needed > 1 else ''} for {transition})."
        )
    data = {
        "version": "1.0",
        "queryDate": _stamp(datetime.fromtimestamp(now, UTC)),
        "startDate": _stamp(starts[0]),
        "statistic": alarm.statistic,
        "period": int(alarm.period),
        "recentDatapoints": [v for v, _ in recent[::-1]],
        "threshold": float(alarm.threshold),
        "evaluatedDatapoints": [{"timestamp": _stamp(s), "value": v} for v, s in recent],
    }
    return reason, json.dumps(data)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
