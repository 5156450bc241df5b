"""What CloudWatch says about an alarm: its current state and its history of state changes (DescribeAlarms,
DescribeAlarmHistory). The canary and the rollback function judge by this, never by an alarm's current state
alone (an alarm that went to ALARM and back during a bake is still an alarm) and never by what an event claims.

- `AlarmHistory.fired_since(names, since, now)`: the alarms that were in ALARM at any moment of [since, now]:
  in ALARM now, or a state change out of or into ALARM in that window. An alarm that does not exist counts as
  fired (fail closed: deleting an alarm must not let a canary through), and so does a history item whose states
  cannot be read.
- `AlarmHistory.latest_alarm(name)`: the alarm's current state and its most recent change into ALARM, as
  CloudWatch reports them (the rollback function keys its once-per-alarm guard on that change's timestamp).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ALARM = "ALARM"
MAX_NAMES = 100  # DescribeAlarms takes at most 100 alarm names
MAX_HISTORY_PAGES = 20  # 100 items a page: 2,000 state changes back is far beyond any flapping alarm
_SUMMARY = re.compile(r"Alarm updated from (\w+) to (\w+)")


@dataclass(frozen=True)
class Transition:
    """One state change of an alarm, as DescribeAlarmHistory reports it."""

    alarm: str
    at: datetime
    old: str
    new: str

    @property
    def touches_alarm(self) -> bool:
        return ALARM in (self.old, self.new)


@dataclass(frozen=True)
class AlarmState:
    """An alarm's current state and its most recent change into ALARM (None if CloudWatch has none)."""

    alarm: str
    state: str
    updated_at: datetime
    last_alarm: Transition | None


class AlarmHistory:
    def __init__(self, cloudwatch: Any) -> None:
        self._cw = cloudwatch

    def states(self, names: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The metric and composite alarms of these names that exist, by name (DescribeAlarms)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(names), MAX_NAMES):
            chunk = list(names[start : start + MAX_NAMES])
            kwargs: dict[str, Any] = {"AlarmNames": chunk, "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
            while True:
                page = self._cw.describe_alarms(**kwargs)
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    found[alarm["AlarmName"]] = alarm
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        return found

    def transitions(self, name: str, since: datetime, until: datetime) -> list[Transition]:
        """The alarm's state changes in [since, until], oldest first."""
        found = list(self._history(name, ScanBy="TimestampAscending", StartDate=since, EndDate=until))
        return sorted(found, key=lambda t: t.at)

    def fired_since(self, names: tuple[str, ...], since: datetime, now: datetime) -> list[tuple[str, str]]:
        """(alarm, what CloudWatch says) for each alarm that was in ALARM at some moment of [since, now]."""
        states = self.states(names)
        fired = []
        for name in sorted(names):
            alarm = states.get(name)
            if alarm is None:
                fired.append((name, "no such alarm in CloudWatch (a missing alarm cannot vouch for a canary)"))
                continue
            if alarm.get("StateValue") == ALARM:
                fired.append((name, f"in ALARM since {_iso(alarm.get('StateUpdatedTimestamp'))}"))
                continue
            changes = [t for t in self.transitions(name, since, now) if t.touches_alarm]
            if changes:
                spans = ", ".join(f"{t.old} -> {t.new} at {_iso(t.at)}" for t in changes)
                fired.append((name, f"was in ALARM during the bake ({spans}); {alarm.get('StateValue')} now"))
        return fired

    def latest_alarm(self, name: str) -> AlarmState | None:
        """The alarm's real state and its most recent change into ALARM; None if there is no such alarm."""
        alarm = self.states([name]).get(name)
        if alarm is None:
            return None
        last = next((t for t in self._history(name, ScanBy="TimestampDescending") if t.new == ALARM), None)
        return AlarmState(
            alarm=name,
            state=alarm.get("StateValue", ""),
            updated_at=_aware(alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")),
            last_alarm=last,
        )

    def _history(self, name: str, **window: Any):
        kwargs: dict[str, Any] = {"AlarmName": name, "HistoryItemType": "StateUpdate", "MaxRecords": 100, **window}
        for _ in range(MAX_HISTORY_PAGES):
            page = self._cw.describe_alarm_history(**kwargs)
            for item in page.get("AlarmHistoryItems", []):
                if item.get("HistoryItemType", "StateUpdate") == "StateUpdate":
                    yield _transition(name, item)
            if not page.get("NextToken"):
                return
            kwargs["NextToken"] = page["NextToken"]


def _transition(name: str, item: dict[str, Any]) -> Transition:
    """A history item's states: from HistoryData (JSON), else the summary; unreadable counts as ALARM."""
    old = new = ""
    try:
        data = json.loads(item.get("HistoryData") or "{}")
        old, new = data["oldState"]["stateValue"], data["newState"]["stateValue"]
    except (ValueError, KeyError, TypeError):
        match = _SUMMARY.search(item.get("HistorySummary", ""))
        if match:
            old, new = match.groups()
    if not (isinstance(old, str) and isinstance(new, str) and old and new):
        old = new = ALARM  # fail closed: a change we cannot read may have been an alarm
    return Transition(alarm=name, at=_aware(item.get("Timestamp")), old=old, new=new)


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, UTC)


def _iso(value: Any) -> str:
    return _aware(value).isoformat(timespec="seconds")
